// Package kalaja is the root of the Kalaja module. It holds no code: this
// comment tours the packages. The binary is built from cmd/kalaja; the
// repository format is specified in docs/design.md.
//
// Packages, lowest layer first (a package imports only packages above it in
// this list; layers_test.go enforces it):
//
//	internal/atomicfile  replace a file whole and durably: temporary file, fsync, rename, fsync the folder
//	internal/blob        IDs, blob types, sentinel errors
//	internal/chunker     content-defined chunking, FastCDC with a keyed table (pure)
//	internal/crypto      key hierarchy, Argon2id key files, sealed objects, pack keys
//	internal/pack        pack codec: encrypted blobs, header, trailer (pure)
//	internal/index       blob -> pack location: sorted runs in a local cache, mmapped; index file codec
//	internal/snapshot    snapshot, tree and node records and their codecs (pure)
//	internal/store       role interfaces for object storage (no Delete in Store), the rule of object names
//	internal/admin       administrator requests signed with the offline key: delete, retention (pure)
//	internal/store/local a repository in a local directory
//	internal/store/s3    a repository in an S3 bucket with Object Lock (MinIO, Ceph RGW, AWS)
//	internal/store/remote a repository behind kalaja serve, over HTTPS with a pinned certificate
//	internal/repo        keys + index + packs over a store: save and load blobs, snapshots
//	internal/detect      ransomware and wiper scoring over file events: signals, windows, alerts (pure)
//	internal/health      snapshot health: changes against the parent, damage, renames, notes, verdict with a baseline (pure)
//	internal/archiver    backup: walk, detect changes, chunk, save, fingerprint, health
//	internal/ledger      tamper-evident log (tlog + note): append, verify, witness, export; a client's pin of it
//	internal/event       the wire of POST /v1/events: a host's heartbeats and alerts for the vault, and their bounds (pure)
//	internal/fleet       the vault's view of its hosts: heartbeats, silence, alerts into the ledger, snapshots, storage, ledger status
//	internal/dashboard   the read-only web page of kalaja serve: hosts, alerts, ledger, storage (embedded templates)
//	internal/server      kalaja serve: append-only HTTPS API over a store, tokens, credentials, events, dashboard, metrics
//	internal/restorer    restore: lay out, parallel content, metadata, reading through a narrow Source
//	internal/checker     check: indexes, packs, snapshots, reachability, data
//	internal/prune       forget and prune: policy decisions carried out, removals logged first, deletion as retention allows
//	internal/fswatch     file event sources: fanotify (with PIDs, raw disk writes) and inotify
//	internal/watcher     kalaja watch: events + content samples + process trees -> detect -> stop, alert
//	internal/outbox      the host's on-disk queue of alerts and heartbeats for the vault, and its sender: in order, exactly once with the server's ack
//	internal/alert       where alerts go: JSON lines on stdout and in an alert log, syslog, webhook; reading the log back
//	internal/parentcache a write-only host's own last snapshot and its trees, sealed at rest, for incremental backups
//	internal/backup      the backup use case: ledger check, trusted parent, archive, ledger record; protective snapshots after alerts
//	internal/drill       attack and benign workload simulators in a sandbox folder, for kalaja drill
//	internal/recovery    back to the last clean snapshot: health with alerts, the choice, in-place repair into a quarantine, verified; stopped holders
//	cmd/kalaja           the command line: one file per subcommand
//
// Test support: internal/testtree (generates and compares file trees),
// internal/store/storetest (the conformance suite every store passes),
// internal/store/faulty (a store that injects faults) and
// internal/store/s3/s3test (the S3 test server scripts/minio.sh starts).
package kalaja

// Package ledger is a repository's tamper-evident log: a Merkle tree of
// records, one for every snapshot, pack and index file the repository
// holds, with checkpoints signed by the log's key and co-signed by
// witnesses, so that deleting, changing, rolling back or forking the
// repository is detected by any client or witness (docs/design.md, section
// 13, "Ledger"). The tree is RFC 6962's, built with
// golang.org/x/mod/sumdb/tlog; checkpoints and co-signatures are
// golang.org/x/mod/sumdb/note notes (Ed25519). The log is stored in the
// repository, not encrypted, and is checked without the password. Appends
// take no lock: they coordinate through exclusive creation of names only
// (store.Saver never replaces an object).
//
// # Format (version 1)
//
// This section restates docs/design.md section 13 for this package's
// encodings; the two must agree.
//
// Objects. All live under ledger/ in the store:
//
//	ledger/keys/signer            the signing key, a sealed object of type "ledger-signer"
//	ledger/keys/verifier          the verifier key, for readers without the password
//	ledger/entries/<start>        a batch of records starting at log index <start>
//	ledger/tiles/<L>-<N>[.p<W>]   a hash tile of height 8
//	ledger/checkpoints/<size>     a checkpoint of the first <size> records, signed by the log key
//	ledger/witness/<size>.<hash>  that checkpoint co-signed by the witness whose key hash is <hash>
//	ledger/removals/<sha256>      an administrator's signed request that removal records name
//
// <start> and <size> are 20 decimal digits with leading zeros, so names sort
// in log order; <hash> is the witness key's 4-byte key hash as 8 lowercase
// hex digits. No name is ever written twice.
//
// Record. One leaf of the tree: one line of JSON (without the newline),
// fields in this order, no spaces:
//
//	{"v":1,"kind":"pack","id":"<64 hex>","size":16777216,"time":"2026-11-23T12:05:55.98695254Z","host":"db-01"}
//
// v is 1 (RecordVersion). kind is "snapshot", "pack" or "index" for an
// object stored, "snapshot-removed", "pack-removed" or "index-removed" for
// one forget or prune is about to delete, an event kind ("alert",
// "silent", "back", "resolved", below), and never empty. id is the
// object's name, the lowercase hex SHA-256 of its stored bytes; size its
// length in bytes, not negative; time when the client logged it, in UTC as
// Go's time.RFC3339Nano writes it (fractional seconds without trailing
// zeros, none when zero); host the host that logged it, a JSON string as
// Go's encoding/json writes it (so <, > and & appear as \u003c, \u003e and
// \u0026). A record is at most 4096 bytes. A reader accepts only this
// canonical encoding: re-encoding what it parsed must give the same bytes
// (ParseRecord). Verify passes over records of kinds it does not know.
//
// Version 2 is a snapshot record with "health" (its verdict) after host.
// Version 3 (RecordRemovalVersion) is a removal record with "auth" after
// host, the lowercase hex SHA-256 of the administrator's signed request
// (internal/admin) stored as ledger/removals/<auth>:
//
//	{"v":3,"kind":"pack-removed","id":"<64 hex>","size":16777216,"time":"2026-11-23T12:05:55.98695254Z","host":"db-01","auth":"<64 hex>"}
//
// A record is version 3 exactly when it carries auth, which only removal
// kinds may. Verify counts an object removed only under a removal record
// whose request is stored, hashes to auth, is signed by the
// administrator's key (VerifyOptions.Admin) and deletes that object;
// otherwise it reports ProblemUnauthorised, and the object as missing if
// it is gone.
//
// Events. An event record names no object: its id is the SHA-256 of the
// event's bytes, which its writer keeps, and size their length. "alert",
// "silent" and "back" are written only by the vault (ServerOnly), with the
// vault's time and the host they concern; "resolved" by a host's recover,
// naming its alert log's resolved line. Verify looks for no object for
// them.
//
// Batch. The object ledger/entries/<start> is the header line
//
//	kalaja ledger batch v1 <start> <count>
//
// followed by <count> records, each ending in "\n". <start> and <count> are
// decimal without leading zeros; <start> is the object's name as a number,
// and <count> is 1 to 2^20. The batches of a log follow each other without
// gaps: the batch after ledger/entries/<start> is
// ledger/entries/<start+count>.
//
// Hashes. Record i of the log is leaf i of the tree. A leaf's hash is
// SHA-256(0x00 || record) and an interior node's SHA-256(0x01 || left ||
// right) (tlog.RecordHash, tlog.NodeHash).
//
// Tiles. The tree's stored hashes are kept in tlog tiles of height 8
// (Height): tile <L>-<N> holds the 256 hashes at level 8·L of the tree
// that start at hash 256·N of that level, each 32 bytes, concatenated (the
// bytes tlog.ReadTileData returns). A partial tile <L>-<N>.p<W> holds the
// first W (1 to 255) of them. L and N are decimal without leading zeros.
// Tiles are a cache of what the records determine: readers authenticate
// them against a signed checkpoint (tlog.TileHashReader), and verify
// recomputes every hash from the records.
//
// Checkpoint. A note whose text is three lines, each ending in "\n" (the
// C2SP tlog-checkpoint body without extension lines):
//
//	kalaja.ledger/<repository ID, 64 lowercase hex digits>
//	<size, decimal without leading zeros>
//	<root hash, standard base64 with padding>
//
// then a blank line and one signature line per signer,
// "— <key name> <base64(4-byte key hash || 64-byte Ed25519 signature of the text)>".
// The log key's name is "kalaja-log-" followed by the first 16 hex digits
// of the repository ID (KeyName). Its verifier key is
// "<name>+<key hash, 8 hex>+<base64(0x01 || 32-byte public key)>", where
// the key hash is the first 4 bytes of SHA-256(name || "\n" || 0x01 ||
// public key), as note defines it. A checkpoint stored as
// ledger/checkpoints/<size> must say that size and be signed by the log
// key; readers pass over those that are not (anyone with write access to
// the storage can plant one), and verify reports them.
//
// Co-signature. A witness that checked the log extends the checkpoint it
// co-signed last adds its own signature line to the log's signed note and
// stores the result as ledger/witness/<size>.<its key hash>. It carries
// only the log's signature and the witness's: ordinary note signatures,
// not C2SP's cosignature/v1.
//
// Keys. The plaintext of ledger/keys/signer is the note signer key, "\n",
// the note verifier key, "\n", sealed for the repository's full keys
// (docs/design.md, section 3.3, kind 1), so a host that cannot open it
// cannot sign. ledger/keys/verifier is the verifier key and "\n"; it is not
// authenticated, and readers pin it on first use or take it from the
// owner.
//
// Export. Export's JSON, format "kalaja-ledger-export/v1" (ExportFormat),
// carries the verifier key, the newest checkpoint, its co-signed copies,
// and chosen records with RFC 6962 inclusion proofs, so that it can be
// checked with nothing but SHA-256 and Ed25519 (docs/design.md, 13.7).
//
// # Appending
//
// Append reads the newest valid checkpoint and the tiles below it, hashes
// the batches stored after it, creates ledger/entries/<end> exclusively
// (if another client created it first, it reads that batch and tries after
// it), checks with a consistency proof that the new tree extends the
// checkpoint the caller saw last, stores the new tiles exclusively (an
// existing tile must hold the same bytes), and signs and stores
// ledger/checkpoints/<new size>. An existing checkpoint of that size with
// another root is a fork; one that does not verify was planted to squat the
// name, and the append goes on without storing its checkpoint. A crash at
// any step leaves a log the next append completes.
//
// AppendUnsigned, for the vault, which has the public key only, does the
// same up to the exclusive creation of the batch and stops there: no
// tiles, no checkpoint. The next Append hashes that batch from its records
// in the catching up it does anyway and signs a checkpoint covering it.
package ledger

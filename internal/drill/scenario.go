package drill

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// Kinds of scenario.
const (
	KindAttack = "attack"
	KindBenign = "benign"
)

// Scenario describes one attack or benign workload of the drill.
type Scenario struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`   // KindAttack or KindBenign
	Family string `json:"family"` // ransomware, wiper, or what the workload is
	About  string `json:"about"`

	prepare func(ctx context.Context, st *stage) error
	start   func(ctx context.Context, st *stage) (*exec.Cmd, error)
}

// stage is what a scenario's preparation and start see.
type stage struct {
	cfg     *Config
	sb      *Sandbox
	progs   Programs
	child   Child
	device  string // wipe-raw's loop device, once attached
	mounted string // move-fs's file system, once mounted
	// hostFiles counts the files of the host stand-in, once laid out.
	hostFiles int
}

// attack returns the start function of a named attack.
func attack(name string) func(context.Context, *stage) (*exec.Cmd, error) {
	return func(ctx context.Context, st *stage) (*exec.Cmd, error) {
		args := []string{"attack"}
		switch name {
		case SlowEncrypt:
			args = append(args, "--interval", st.cfg.SlowInterval.String())
		case WipeRaw:
			args = append(args, "--device", st.device)
		}
		return st.child.Command(ctx, append(args, name, st.sb.Root())...), nil
	}
}

// rawImageSize is the size of wipe-raw's disk image.
const rawImageSize = 32 << 20

// prepareRaw writes the disk image (text-like content, as a file system
// full of documents) and attaches a loop device to it.
func prepareRaw(ctx context.Context, st *stage) error {
	f, err := st.sb.OpenFile(RawImage, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	block := []byte(newGen(st.cfg.Tree.Seed + 5).text(1 << 20))[:1<<20]
	for off := 0; off < rawImageSize; off += len(block) {
		if _, err := f.Write(block); err != nil {
			_ = f.Close() // the write error is the one to report
			return fmt.Errorf("write disk image: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write disk image: %w", err)
	}
	dev, err := st.progs.Output(ctx, st.sb.Root(), "losetup", "--find", "--show", st.sb.Path(RawImage))
	if err != nil {
		return fmt.Errorf("attach loop device: %w", err)
	}
	st.device = dev
	return nil
}

// detach detaches wipe-raw's loop device, if one is attached, after
// writing what it buffered into the disk image: a killed wiper leaves
// dirty pages in the device's cache, which would otherwise reach the image
// at some later writeback, after the damage was counted or the image
// recovered.
func (st *stage) detach(ctx context.Context) error {
	if st.device == "" {
		return nil
	}
	if f, err := os.Open(st.device); err == nil {
		_ = f.Sync() // best effort: losetup -d flushes what it can too
		_ = f.Close()
	}
	err := st.progs.Run(context.WithoutCancel(ctx), st.sb.Root(), "", "losetup", "-d", st.device)
	st.device = ""
	return err
}

// unmount detaches move-fs's file system, if one is mounted, lazily: the
// watcher may still hold it open, and the sandbox must be free of mounts
// before it is reset.
func (st *stage) unmount(ctx context.Context) error {
	if st.mounted == "" {
		return nil
	}
	err := st.progs.Run(context.WithoutCancel(ctx), st.sb.Root(), "", "umount", "--lazy", st.mounted)
	st.mounted = ""
	return err
}

func noPrepare(context.Context, *stage) error { return nil }

// Scenarios lists every scenario, attacks first, in the order Run runs
// them.
func Scenarios() []Scenario {
	a := func(name, family, about string) Scenario {
		return Scenario{Name: name, Kind: KindAttack, Family: family, About: about, prepare: noPrepare, start: attack(name)}
	}
	return []Scenario{
		a(EncryptRename, "ransomware", "whole-file AES encryption, renamed to a new extension, ransom note in every folder"),
		a(EncryptInPlace, "ransomware", "whole-file encryption in place, names kept"),
		a(Intermittent, "ransomware", "every other 16-byte block encrypted in place, as LockFile and BlackCat do"),
		a(EncodeBase64, "ransomware", "ciphertext written back as base64 text: low entropy"),
		a(SlowEncrypt, "ransomware", "one file per interval (default 3 s), renamed"),
		a(MultiProcess, "ransomware", "encryption split over many short processes of two files each"),
		spread(a(SplitSetsid, "ransomware", "encryption split over eight workers at once, each in a session of its own (setsid)")),
		spread(a(SplitDetached, "ransomware", "encryption split over eight double-forked workers reparented to init, as cron, at or systemd-run start them")),
		a(WipeRandom, "wiper", "every file overwritten with random bytes"),
		a(WipeZero, "wiper", "every file overwritten with zeros"),
		a(WipeTruncate, "wiper", "every file truncated to zero length"),
		a(WipeDelete, "wiper", "every file deleted"),
		{Name: WipeRm, Kind: KindAttack, Family: "wiper", About: "rm -rf of every folder of the tree", prepare: noPrepare, start: startRm},
		{Name: WipeFind, Kind: KindAttack, Family: "wiper", About: "find -type f -delete over the tree", prepare: noPrepare, start: startFind},
		{Name: WipeUnlink, Kind: KindAttack, Family: "wiper", About: "a C program's unlinkat loop over the tree, built with gcc", prepare: prepareUnlink, start: startUnlink},
		{Name: WipeRaw, Kind: KindAttack, Family: "wiper", About: "raw writes over a loop block device whose backing file is in the sandbox",
			prepare: prepareRaw, start: attack(WipeRaw)},
		{Name: BackupDelete, Kind: KindAttack, Family: FamilyBackup, About: "rm -rf of the local repository, guarded by the watcher as Kalaja's own",
			prepare: prepareHost, start: startBackupDelete},
		{Name: BackupOverwrite, Kind: KindAttack, Family: FamilyBackup, About: "the shell overwrites the ledger pin, its cache, the alert log and the password file",
			prepare: prepareHost, start: startBackupOverwrite},
		{Name: Compress, Kind: KindBenign, Family: "archive", About: "tar | zstd, then tar -z, of the tree and a log dataset",
			prepare: prepareCompress, start: startCompress},
		{Name: GitClone, Kind: KindBenign, Family: "development", About: "checkout of an older commit and back in a clone older than the watcher, then a fresh clone of a local bare repository, the same there, gc",
			prepare: prepareGit, start: startGit},
		{Name: GoBuild, Kind: KindBenign, Family: "development", About: "go build of a generated module with an empty build cache",
			prepare: prepareGo, start: startGo},
		{Name: SQLite, Kind: KindBenign, Family: "database", About: "sqlite3 loads a WAL database and updates and vacuums another",
			prepare: prepareSQLite, start: startSQLite},
		{Name: OfficeSave, Kind: KindBenign, Family: "office", About: "Word documents saved to a temporary file and renamed over the original",
			prepare: noPrepare, start: startOffice},
		{Name: LogRotate, Kind: KindBenign, Family: "system", About: "log rotation: rename, gzip, new log",
			prepare: prepareLogs, start: startLogs},
		{Name: BulkMove, Kind: KindBenign, Family: "system", About: "files and folders moved into an archive folder with mv, then sorted out of it one mv per file",
			prepare: noPrepare, start: startMoves},
		{Name: Expire, Kind: KindBenign, Family: "system", About: "find -mtime +7 -delete of old session files, find -mtime +0 -delete of fifty day-old mail in a Maildir Trash",
			prepare: prepareExpire, start: startExpire},
		{Name: LogrotateW, Kind: KindBenign, Family: "system", About: "three forced rotations by logrotate: oldest generation dropped, others shifted, log gzipped",
			prepare: prepareLogrotate, start: startLogrotate},
		{Name: Convert, Kind: KindBenign, Family: "office", About: "gzip -r over a folder with canaries, gunzip -r of a compressed archive, iconv of every note, sed -i of every Go file",
			prepare: prepareConvert, start: startConvert},
		{Name: Unpack, Kind: KindBenign, Family: "system", About: "tar -x of Go module source trees with their test data and Debian's CA certificates into the tree",
			prepare: prepareUnpack, start: startUnpack},
		{Name: Mirror, Kind: KindBenign, Family: "backup", About: "rsync -a --checksum --delete of the tree to three mirrors made before files were moved, edited and deleted",
			prepare: prepareMirror, start: startMirror},
		{Name: Upgrade, Kind: KindBenign, Family: "system", About: "a package upgrade as dpkg does it: NAME.dpkg-new renamed over each file, obsolete files removed",
			prepare: prepareUpgrade, start: startUpgrade},
		{Name: MailStore, Kind: KindBenign, Family: "mail", About: "Maildir delivery, flag changes and expunge, mbox compaction through a temporary file",
			prepare: prepareMail, start: startMail},
		{Name: Quarantine, Kind: KindBenign, Family: "antivirus", About: "clamscan --move of test samples to a quarantine folder",
			prepare: prepareQuarantine, start: startQuarantine},
		{Name: MoveFS, Kind: KindBenign, Family: "system", About: "mv of two folders of the tree and an archive of three older versions of it onto another file system (a tmpfs mounted in the sandbox): copy, then delete",
			prepare: prepareMoveFS, start: startMoveFS},
	}
}

// spread makes a a split attack, which runs from a copy of the drill's
// executable (prepareSplit).
func spread(a Scenario) Scenario {
	a.prepare = prepareSplit
	return a
}

// selectScenarios returns the scenarios named in names (all if empty), in
// the order of Scenarios.
func selectScenarios(names []string) ([]Scenario, error) {
	all := Scenarios()
	if len(names) == 0 {
		return all, nil
	}
	var out []Scenario
	for _, n := range names {
		if !slices.ContainsFunc(all, func(s Scenario) bool { return s.Name == n }) {
			var known []string
			for _, s := range all {
				known = append(known, s.Name)
			}
			return nil, fmt.Errorf("%w: unknown scenario %q (known: %s)", ErrUsage, n, strings.Join(known, ", "))
		}
	}
	for _, s := range all {
		if slices.Contains(names, s.Name) {
			out = append(out, s)
		}
	}
	return out, nil
}

// tail keeps the last bytes written to it, for error messages.
type tail struct{ b bytes.Buffer }

func (t *tail) Write(p []byte) (int, error) {
	t.b.Write(p)
	if t.b.Len() > 8192 {
		rest := t.b.Bytes()[t.b.Len()-4096:]
		t.b = *bytes.NewBuffer(append([]byte(nil), rest...))
	}
	return len(p), nil
}

func (t *tail) String() string { return strings.TrimSpace(t.b.String()) }

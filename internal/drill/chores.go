package drill

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// The benign workloads of a server's everyday administration, by the name
// the report uses (docs/design.md, "Drill").
const (
	Expire     = "expire"
	LogrotateW = "logrotate"
	Convert    = "convert"
	Unpack     = "unpack"
	Mirror     = "rsync-mirror"
	Upgrade    = "upgrade"
	MailStore  = "mail"
	Quarantine = "quarantine"
	MoveFS     = "move-fs"
)

// usbDir is where move-fs mounts the other file system (a tmpfs).
const usbDir = WorkDir + "/usb"

// mailDirs are the Maildir folders of the tree's mail store.
const (
	mailInbox = DataDir + "/Mail/INBOX"
	mailTrash = DataDir + "/Mail/Trash"
)

// writeAged writes data to rel and sets its modification time to age ago.
func writeAged(sb *Sandbox, rel string, data []byte, age time.Duration) error {
	if err := sb.MkdirAll(path.Dir(rel)); err != nil {
		return err
	}
	if err := sb.WriteFile(rel, data, 0o644); err != nil {
		return err
	}
	t := time.Now().Add(-age)
	return os.Chtimes(sb.Path(rel), t, t)
}

// mailMessage returns an RFC 5322 message and the name Dovecot gives it in
// a Maildir (delivery time, a unique part, the host, the size; ":2,FLAGS"
// in cur/).
func (g *gen) mailMessage(n int, delivered time.Time, flags string) (name string, body []byte) {
	var b strings.Builder
	fmt.Fprintf(&b, "Return-Path: <%s@example.org>\nDelivered-To: registry@example.org\nMessage-ID: <%d.%d@example.org>\n", g.word(), delivered.Unix(), n)
	fmt.Fprintf(&b, "Date: %s\nFrom: %s <%s@example.org>\nTo: registry@example.org\nSubject: %s\nContent-Type: text/plain; charset=utf-8\n\n",
		delivered.Format(time.RFC1123Z), g.word(), g.word(), g.sentence())
	b.WriteString(g.text(g.between(600, 12_000)))
	body = []byte(b.String())
	name = fmt.Sprintf("%d.M%dP%d.mail,S=%d,W=%d", delivered.Unix(), 100_000+n, 4000+n, len(body), len(body)+40)
	if flags != "" {
		name += ":2," + flags
	}
	return name, body
}

// prepareExpire lays out what a nightly clean-up finds: a cache of
// session files, most ten days old, and a mail store whose Trash holds
// fifty messages a day old beside newer ones, in the tree.
func prepareExpire(ctx context.Context, st *stage) error {
	g := newGen(st.cfg.Tree.Seed + 10)
	for i := range 300 {
		age := 10 * 24 * time.Hour
		if i%5 == 0 {
			age = time.Hour
		}
		body := fmt.Sprintf("user_id|i:%d;office|s:%d:\"%s\";expires|i:%d;token|s:64:\"%x\";\n", g.between(1, 5000), 6, g.word(), 1700000000+i, g.r.Uint64())
		if err := writeAged(st.sb, path.Join(WorkDir, "cache", fmt.Sprintf("sess_%016x", g.r.Uint64())), []byte(body), age); err != nil {
			return err
		}
	}
	return writeMailbox(st.sb, g, mailTrash, 50, 20)
}

// writeMailbox writes old messages a day and an hour old into dir/cur
// (seen) and recent ones into dir/new.
func writeMailbox(sb *Sandbox, g *gen, dir string, old, recent int) error {
	now := time.Now()
	for i := range old + recent {
		age, sub, flags := 25*time.Hour, "cur", "S"
		if i >= old {
			age, sub, flags = time.Duration(i)*time.Minute, "new", ""
		}
		name, body := g.mailMessage(i, now.Add(-age), flags)
		if err := writeAged(sb, path.Join(dir, sub, name), body, age); err != nil {
			return err
		}
	}
	return sb.MkdirAll(path.Join(dir, "tmp"))
}

// startExpire runs the clean-up as cron jobs do: session files older than
// seven days, then mail in the Trash older than a day.
func startExpire(ctx context.Context, st *stage) (*exec.Cmd, error) {
	return st.shell(ctx, `find work/cache -type f -mtime +7 -delete
find `+mailTrash+` -type f -mtime +0 -delete`)
}

// prepareLogrotate writes three application logs, the four compressed
// generations an earlier rotation left, and a logrotate configuration.
func prepareLogrotate(ctx context.Context, st *stage) error {
	if err := prepareLogs(ctx, st); err != nil {
		return err
	}
	dir := path.Join(WorkDir, "logs")
	for _, name := range []string{"app", "access", "error"} {
		for i := 1; i <= 4; i++ {
			old := fmt.Sprintf("%s/%s.log.%d", dir, name, i)
			if err := writeAged(st.sb, old, []byte(strings.Repeat(fmt.Sprintf("2024-04-%02d 12:00:00 INFO %s rotated generation %d\n", 28-i, name, i), 4000)), time.Duration(i)*24*time.Hour); err != nil {
				return err
			}
			if err := st.progs.Run(ctx, st.sb.Root(), "", "gzip", "-6", old); err != nil {
				return err
			}
		}
	}
	conf := fmt.Sprintf("%s/*.log {\n\trotate 4\n\tcompress\n\tmissingok\n\tcreate 0644\n}\n", st.sb.Path(dir))
	return st.sb.WriteFile(path.Join(WorkDir, "logrotate.conf"), []byte(conf), 0o644)
}

// startLogrotate forces three rotations with the real logrotate while
// the application goes on logging in between: each drops the oldest
// generation, shifts the others, and gzips the log just rotated.
func startLogrotate(ctx context.Context, st *stage) (*exec.Cmd, error) {
	return st.shell(ctx, `for round in 1 2 3; do
	logrotate -f -s work/logrotate.state work/logrotate.conf
	for name in app access error; do
		seq 1 20000 | sed "s/^/2024-05-0$round 12:00:00 INFO $name request id=/" >>"work/logs/$name.log"
	done
done`, "logrotate")
}

// prepareConvert makes a compressed archive of the tree's projects, as an
// earlier gzip -r left it, for convert to decompress.
func prepareConvert(ctx context.Context, st *stage) error {
	return st.progs.RunEnv(ctx, st.sb.Root(), workEnv(st.sb), "", "sh", "-ec", `cp -a files/Projects work/gzarchive
gzip -r work/gzarchive`)
}

// startConvert converts documents in place over whole folders, canaries
// included: every file of the tree's Shared folder compressed with gzip
// -r, the compressed archive of projects decompressed with gunzip -r, the
// notes re-encoded with iconv through a temporary file, and every Go
// source file edited with sed -i.
func startConvert(ctx context.Context, st *stage) (*exec.Cmd, error) {
	return st.shell(ctx, `gzip -r files/Shared
gunzip -r work/gzarchive
find files -name '*.txt' | while read -r f; do
	iconv -f UTF-8 -t ISO-8859-1//TRANSLIT "$f" >"$f.conv"
	mv "$f.conv" "$f"
done
find files/Projects -name '*.go' -exec sed -i 's/returns the/gives back the/' {} +`, "gzip", "iconv", "sed")
}

// prepareUnpack archives real-world files: the source trees of Go modules
// in the module cache, with their test data (compressed and random
// fixtures, certificates, keys), and Debian's CA certificates.
func prepareUnpack(ctx context.Context, st *stage) error {
	cache, err := st.progs.Output(ctx, st.sb.Root(), "go", "env", "GOMODCACHE")
	if err != nil {
		return err
	}
	args := []string{"-cf", st.sb.Path(path.Join(WorkDir, "import.tar")), "--mode=u+w"}
	n := 0
	for _, mod := range []string{"github.com/klauspost/compress@*", "golang.org/x/crypto@*", "golang.org/x/text@*"} {
		found, _ := filepath.Glob(filepath.Join(cache, mod))
		if len(found) > 0 {
			last := found[len(found)-1]
			args = append(args, "-C", filepath.Dir(last), filepath.Base(last))
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("no Go module in the module cache %s (run go mod download in the kalaja source)", cache)
	}
	if _, err := os.Stat("/usr/share/ca-certificates"); err == nil {
		args = append(args, "-C", "/usr/share", "ca-certificates")
	}
	return st.progs.Run(ctx, st.sb.Root(), "", "tar", args...)
}

// startUnpack unpacks the archive into a new folder of the tree.
func startUnpack(ctx context.Context, st *stage) (*exec.Cmd, error) {
	return st.shell(ctx, `mkdir files/Imports
tar -xf work/import.tar -C files/Imports`)
}

// prepareMirror makes mirrors of the tree as it was, then changes the
// tree as a day of work does: files moved into another folder, notes
// edited, two files deleted. The mirror is older than the watcher.
func prepareMirror(ctx context.Context, st *stage) error {
	for i := 1; i <= mirrors; i++ {
		if err := st.progs.Run(ctx, st.sb.Root(), "", "cp", "-a", DataDir, path.Join(WorkDir, fmt.Sprint("mirror", i))); err != nil {
			return err
		}
	}
	files, err := st.sb.Files(DataDir)
	if err != nil {
		return err
	}
	if err := st.sb.MkdirAll(path.Join(DataDir, "Archive", "2023")); err != nil {
		return err
	}
	moved, edited, deleted := 0, 0, 0
	for i, f := range files {
		switch {
		case i%7 == 3 && moved < 20:
			if err := st.sb.Rename(f, path.Join(DataDir, "Archive", "2023", path.Base(f))); err != nil {
				return err
			}
			moved++
		case strings.HasSuffix(f, ".txt") && edited < 10:
			b, err := st.sb.ReadFile(f)
			if err != nil {
				return err
			}
			if err := st.sb.WriteFile(f, append(b, "\nReviewed.\n"...), 0o644); err != nil {
				return err
			}
			edited++
		case strings.HasSuffix(f, ".csv") && deleted < 2:
			if err := st.sb.Remove(f); err != nil {
				return err
			}
			deleted++
		}
	}
	return nil
}

// mirrors is how many mirrors rsync-mirror brings up to date: one would
// take too short a time to measure a slowdown.
const mirrors = 3

// startMirror brings the mirrors up to date with rsync --delete,
// comparing every file's content (--checksum), as a careful mirror job
// does.
func startMirror(ctx context.Context, st *stage) (*exec.Cmd, error) {
	return st.shell(ctx, `for m in work/mirror*; do rsync -a --checksum --delete files/ "$m/"; done`, "rsync")
}

// prepareUpgrade installs version 1 of a package (a tree of source
// files and data under work/pkg/root) and stages version 2, with most
// files changed, some new and three gone.
func prepareUpgrade(ctx context.Context, st *stage) error {
	g := newGen(st.cfg.Tree.Seed + 11)
	for i := range 160 {
		dir := fmt.Sprintf("usr/lib/registry/mod%02d", i%12)
		name := fmt.Sprintf("%s/part%03d.py", dir, i)
		v1 := g.source("py", "", g.between(1_000, 12_000))
		if i < 157 {
			if err := writeAged(st.sb, path.Join(WorkDir, "pkg", "root", name), v1, 30*24*time.Hour); err != nil {
				return err
			}
		}
		if i >= 3 {
			v2 := append(v1, fmt.Sprintf("\n# version 2: %s\n", g.sentence())...)
			if err := writeAged(st.sb, path.Join(WorkDir, "pkg", "v2", name), v2, time.Hour); err != nil {
				return err
			}
		}
	}
	return nil
}

// startUpgrade upgrades as dpkg does: every file of the new version is
// unpacked next to the old one as NAME.dpkg-new, then each is renamed
// over the old one, then the files the new version no longer has are
// removed.
func startUpgrade(ctx context.Context, st *stage) (*exec.Cmd, error) {
	return st.shell(ctx, `cd work/pkg
(cd v2 && find . -type f) | sort >new.list
(cd root && find . -type f) | sort >old.list
while read -r f; do mkdir -p "root/${f%/*}"; cp -p "v2/$f" "root/$f.dpkg-new"; done <new.list
while read -r f; do mv "root/$f.dpkg-new" "root/$f"; done <new.list
comm -23 old.list new.list | while read -r f; do rm "root/$f"; done`)
}

// prepareMail writes a Maildir inbox in the tree and an mbox archive.
func prepareMail(ctx context.Context, st *stage) error {
	g := newGen(st.cfg.Tree.Seed + 12)
	if err := writeMailbox(st.sb, g, mailInbox, 150, 50); err != nil {
		return err
	}
	var mbox strings.Builder
	now := time.Now()
	for i := range 300 {
		t := now.Add(-time.Duration(300-i) * 24 * time.Hour)
		_, body := g.mailMessage(i, t, "")
		fmt.Fprintf(&mbox, "From %s@example.org %s\n%s\n\n", g.word(), t.Format(time.ANSIC), body)
	}
	return writeAged(st.sb, path.Join(DataDir, "Mail", "archive.mbox"), []byte(mbox.String()), 48*time.Hour)
}

// startMail does what a mail server and its clients do to a store: new
// messages delivered to cur/ with the seen flag, flags changed (answered),
// deleted messages expunged, and the mbox archive compacted without its
// deleted messages (rewritten to a temporary file, renamed over).
func startMail(ctx context.Context, st *stage) (*exec.Cmd, error) {
	return st.shell(ctx, `cd `+mailInbox+`
for f in new/*; do n=${f#new/}; mv "$f" "cur/$n:2,S"; done
i=0
for f in cur/*:2,S; do
	i=$((i + 1))
	case $((i % 4)) in
	0) rm "$f" ;;
	1) mv "$f" "${f%:2,S}:2,RS" ;;
	esac
done
cd ..
awk 'BEGIN { n = 0 } /^From / { n++ } n % 3 != 0' archive.mbox >.archive.mbox.compact
mv .archive.mbox.compact archive.mbox`)
}

// quarantined names the files the quarantine workload plants and its
// scanner moves away: executables and documents carrying the EICAR test
// string, the standard harmless test of antivirus programs.
var quarantined = []string{"Desktop/invoice-2024.pdf.exe", "Shared/Procurement/offer.docm", "Documents/Notes/setup.exe",
	"Shared/Council/minutes.js", "Desktop/update.scr", "Documents/Scans/scan-help.hta"}

// eicar is the EICAR anti-virus test file.
const eicar = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// prepareQuarantine plants the infected files in the tree and writes a
// ClamAV hash signature database (MD5:size:name) that matches them, so
// clamscan needs no downloaded database.
func prepareQuarantine(ctx context.Context, st *stage) error {
	var sigs strings.Builder
	for i, f := range quarantined {
		body := []byte(fmt.Sprintf("%s\r\n# sample %d\r\n", eicar, i))
		if err := writeAged(st.sb, path.Join(DataDir, f), body, 24*time.Hour); err != nil {
			return err
		}
		sum := md5.Sum(body)
		fmt.Fprintf(&sigs, "%s:%d:Drill.Test.Sample-%d\n", hex.EncodeToString(sum[:]), len(body), i)
	}
	if err := st.sb.MkdirAll(path.Join(WorkDir, "quarantine")); err != nil {
		return err
	}
	return st.sb.WriteFile(path.Join(WorkDir, "drill.hdb"), []byte(sigs.String()), 0o644)
}

// startQuarantine scans the tree with clamscan and moves what it finds to
// the quarantine folder (--move). clamscan exits 1 when it found something.
func startQuarantine(ctx context.Context, st *stage) (*exec.Cmd, error) {
	return st.shell(ctx, `rc=0
clamscan -r --quiet --no-summary -d work/drill.hdb --move=work/quarantine files || rc=$?
[ "$rc" -le 1 ]
[ "$(ls work/quarantine | wc -l)" = `+fmt.Sprint(len(quarantined))+` ]`, "clamscan")
}

// prepareMoveFS mounts a tmpfs inside the sandbox, standing for a disk the
// files are moved to (root only; the stage unmounts it after the
// scenario), and makes an archive of three older versions of the tree
// (each file with a line of its own appended, so no two are copies).
func prepareMoveFS(ctx context.Context, st *stage) error {
	files, err := st.sb.Files(DataDir)
	if err != nil {
		return err
	}
	for v := 1; v <= 3; v++ {
		for _, f := range files {
			b, err := st.sb.ReadFile(f)
			if err != nil {
				return err
			}
			dst := path.Join(WorkDir, "archive", fmt.Sprint("v", v), strings.TrimPrefix(f, DataDir+"/"))
			if err := writeAged(st.sb, dst, append(b, fmt.Sprintf("\narchived version %d\n", v)...), time.Duration(v)*30*24*time.Hour); err != nil {
				return err
			}
		}
	}
	if err := st.sb.MkdirAll(usbDir); err != nil {
		return err
	}
	if err := st.progs.Run(ctx, st.sb.Root(), "", "mount", "-t", "tmpfs", "-o", "size=1g,mode=0755", "kalaja-drill-usb", st.sb.Path(usbDir)); err != nil {
		return fmt.Errorf("mount a tmpfs (needs root): %w", err)
	}
	st.mounted = st.sb.Path(usbDir)
	return nil
}

// startMoveFS moves the pictures and documents folders of the tree and the
// archive onto the other file system with mv, which copies every file
// there and then deletes it here.
func startMoveFS(ctx context.Context, st *stage) (*exec.Cmd, error) {
	return st.shell(ctx, `mv files/Pictures files/Documents work/archive `+usbDir+`/`)
}

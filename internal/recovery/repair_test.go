package recovery

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/index"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/testtree"
)

// damage is what an attack left: the live entries that must be found in
// the quarantine afterwards (relative path below the live tree -> content,
// or the target of a symlink for kept symlinks), and what the report must
// count.
type damage struct {
	kept     map[string][]byte
	links    map[string]string // quarantined symlinks -> target
	restored int               // regular files the repair must write, -1: any
	metadata int               // entries whose metadata alone must be fixed, -1: any
}

// victims returns n regular files of the generated tree, by path relative
// to the live tree: bulk files of at least 1 KiB with one name.
func victims(t *testing.T, f *fixture, n int) []string {
	t.Helper()
	var out []string
	for _, e := range f.manifest.Entries {
		if e.Kind != testtree.File || e.Traits&testtree.HardLink != 0 || !strings.HasPrefix(e.Path, "tree/") {
			continue
		}
		if fi, err := os.Lstat(filepath.Join(f.live, e.Path)); err == nil && fi.Size() >= 1024 {
			out = append(out, e.Path)
		}
		if len(out) == n {
			return out
		}
	}
	t.Fatalf("only %d victims", len(out))
	return nil
}

func read(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// encrypt is what a ransomware makes of data: unreadable, 16 bytes longer.
func encrypt(data []byte) []byte {
	out := make([]byte, len(data), len(data)+16)
	rng := rand.New(rand.NewPCG(uint64(len(data)), 9))
	for i := range data {
		out[i] = data[i] ^ byte(rng.UintN(256))
	}
	return append(out, "KALAJA-RANSOM-TAG"[:16]...)
}

// overwriteKeepingSize writes b over the file at p in place, without
// truncating: the size and inode stay, only ctime and content tell.
func overwriteKeepingSize(t *testing.T, p string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	must(t, err)
	defer f.Close()
	_, err = f.WriteAt(b, 0)
	must(t, err)
}

const note = "Your files are encrypted. Pay 1 BTC.\n"

var attacks = []struct {
	name string
	do   func(t *testing.T, f *fixture) damage
}{
	{"whole-file encryption in place", func(t *testing.T, f *fixture) damage {
		d := damage{kept: map[string][]byte{}, restored: 9} // the linked file is written once, linked twice
		for _, v := range append(victims(t, f, 8), "hardlinks/a/one") {
			p := filepath.Join(f.live, v)
			enc := encrypt(read(t, p))
			must(t, os.WriteFile(p, enc, 0o644))
			d.kept[v] = enc
		}
		// The other two names of the hard-linked file changed with it.
		for _, v := range []string{"hardlinks/b/two", "hardlinks/c/d/three"} {
			d.kept[v] = d.kept["hardlinks/a/one"]
		}
		return d
	}},
	{"encryption with rename to .locked and a note per folder", func(t *testing.T, f *fixture) damage {
		d := damage{kept: map[string][]byte{}, restored: 8}
		for _, v := range victims(t, f, 8) {
			p := filepath.Join(f.live, v)
			enc := encrypt(read(t, p))
			must(t, os.WriteFile(p+".locked", enc, 0o644))
			must(t, os.Remove(p))
			d.kept[v+".locked"] = enc
			n := filepath.Join(filepath.Dir(v), "README-DECRYPT.txt")
			writeFile(t, filepath.Join(f.live, n), note)
			d.kept[n] = []byte(note)
		}
		return d
	}},
	{"intermittent encryption keeping the size", func(t *testing.T, f *fixture) damage {
		d := damage{kept: map[string][]byte{}, restored: 8}
		for _, v := range victims(t, f, 8) {
			p := filepath.Join(f.live, v)
			b := read(t, p)
			for off := 0; off < len(b); off += 8192 {
				for i := off; i < min(off+512, len(b)); i++ {
					b[i] ^= 0xa5
				}
			}
			overwriteKeepingSize(t, p, b)
			d.kept[v] = b
		}
		return d
	}},
	{"zeroing keeping the size", func(t *testing.T, f *fixture) damage {
		d := damage{kept: map[string][]byte{}, restored: 8}
		for _, v := range victims(t, f, 8) {
			p := filepath.Join(f.live, v)
			z := make([]byte, len(read(t, p)))
			overwriteKeepingSize(t, p, z)
			d.kept[v] = z
		}
		return d
	}},
	{"truncation", func(t *testing.T, f *fixture) damage {
		d := damage{kept: map[string][]byte{}, restored: 8}
		for _, v := range victims(t, f, 8) {
			p := filepath.Join(f.live, v)
			b := read(t, p)
			must(t, os.Truncate(p, int64(len(b)/3)))
			d.kept[v] = b[:len(b)/3]
		}
		return d
	}},
	{"deletion", func(t *testing.T, f *fixture) damage {
		for _, v := range victims(t, f, 8) {
			must(t, os.Remove(filepath.Join(f.live, v)))
		}
		return damage{restored: 8}
	}},
	{"random overwrite with the old mtime set back", func(t *testing.T, f *fixture) damage {
		d := damage{kept: map[string][]byte{}, restored: 8}
		rng := rand.New(rand.NewPCG(5, 5))
		for _, v := range victims(t, f, 8) {
			p := filepath.Join(f.live, v)
			fi, err := os.Lstat(p)
			must(t, err)
			b := make([]byte, fi.Size())
			for i := range b {
				b[i] = byte(rng.UintN(256))
			}
			overwriteKeepingSize(t, p, b)
			must(t, os.Chtimes(p, fi.ModTime(), fi.ModTime()))
			d.kept[v] = b
		}
		return d
	}},
	{"folder deleted", func(t *testing.T, f *fixture) damage {
		must(t, os.RemoveAll(filepath.Join(f.live, "deep")))
		must(t, os.RemoveAll(filepath.Join(f.live, "hardlinks")))
		return damage{restored: -1}
	}},
	{"file replaced by a folder", func(t *testing.T, f *fixture) damage {
		v := victims(t, f, 1)[0]
		p := filepath.Join(f.live, v)
		must(t, os.Remove(p))
		writeFile(t, filepath.Join(p, "inside"), "a folder now")
		return damage{kept: map[string][]byte{v + "/inside": []byte("a folder now")}, restored: 1}
	}},
	{"folder replaced by a symlink", func(t *testing.T, f *fixture) damage {
		must(t, os.RemoveAll(filepath.Join(f.live, "content")))
		must(t, os.Symlink(f.outside, filepath.Join(f.live, "content")))
		return damage{links: map[string]string{"content": f.outside}, restored: -1}
	}},
	{"special files and symlinks changed", func(t *testing.T, f *fixture) damage {
		fifo := filepath.Join(f.live, "special", "fifo")
		must(t, os.Remove(fifo))
		writeFile(t, fifo, "not a fifo")
		rel := filepath.Join(f.live, "links", "relative")
		must(t, os.Remove(rel))
		must(t, os.Symlink("/etc/shadow", rel))
		return damage{kept: map[string][]byte{"special/fifo": []byte("not a fifo")},
			links: map[string]string{"links/relative": "/etc/shadow"}}
	}},
	{"a benign program's file written after the snapshot", func(t *testing.T, f *fixture) damage {
		writeFile(t, filepath.Join(f.live, "tree", "report-2027.txt"), "written after the backup")
		return damage{kept: map[string][]byte{"tree/report-2027.txt": []byte("written after the backup")}}
	}},
	{"metadata only", func(t *testing.T, f *fixture) damage {
		vs := victims(t, f, 4)
		must(t, os.Chmod(filepath.Join(f.live, vs[0]), 0o777))
		must(t, os.Chown(filepath.Join(f.live, vs[1]), 4242, 4343))
		must(t, unix.Setxattr(filepath.Join(f.live, vs[2]), "user.evil", []byte("x"), 0))
		old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
		must(t, os.Chtimes(filepath.Join(f.live, vs[3]), old, old))
		must(t, os.Chmod(filepath.Join(f.live, "special", "fifo"), 0o600))
		return damage{metadata: 5}
	}},
	{"nothing", func(t *testing.T, f *fixture) damage { return damage{} }},
}

// TestRepairAttacks backs up a generated tree with every kind of file,
// damages it as an attack would, repairs it, and checks that the tree is
// the snapshot's again in content and metadata, that everything the
// attack left is in the quarantine with its path and content, that files
// the attack did not touch were not rewritten, and that nothing outside
// changed.
func TestRepairAttacks(t *testing.T) {
	for _, tc := range attacks {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, generated(1, 200))
			before := inodes(t, f.live)
			d := tc.do(t, f)
			touched := changed(before, inodes(t, f.live))
			rep, err := f.run(t, nil, RepairOptions{})
			f.wantClean(t, rep, err)
			f.wantSnapshot(t)
			f.wantOutsideIntact(t)
			for rel, data := range d.kept {
				wantFile(t, f.inQuarantine(rel), data)
			}
			for rel, target := range d.links {
				wantSymlink(t, f.inQuarantine(rel), target)
			}
			after := inodes(t, f.live)
			for p, ino := range before {
				if !touched[p] && after[p] != ino {
					t.Errorf("%s was rewritten, although the attack left it alone", p)
				}
			}
			if d.restored >= 0 && rep.FilesRestored != d.restored {
				t.Errorf("%d files restored, want %d", rep.FilesRestored, d.restored)
			}
			if tc.name == "nothing" && (rep.ContentChecked != 0 || rep.Quarantined != 0 || rep.MetadataRepaired != 0) {
				t.Errorf("untouched tree: report %+v, want nothing read, moved or fixed", rep)
			}
			if rep.Verified == 0 && len(touched) > 0 {
				t.Error("nothing verified")
			}
			if d.metadata > 0 && (rep.Quarantined != 0 || rep.MetadataRepaired < d.metadata) {
				t.Errorf("metadata changes: %d quarantined, %d repaired, want 0 and %d", rep.Quarantined, rep.MetadataRepaired, d.metadata)
			}
		})
	}
}

// inodes maps every regular file below root to its inode and ctime.
func inodes(t *testing.T, root string) map[string][2]int64 {
	t.Helper()
	out := map[string][2]int64{}
	for p, l := range listing(t, root) {
		if strings.HasPrefix(l, "file ") {
			var st unix.Stat_t
			must(t, unix.Lstat(filepath.Join(root, p), &st))
			out[p] = [2]int64{int64(st.Ino), st.Ctim.Nano()}
		}
	}
	return out
}

// changed returns the files of before that are gone or whose inode or
// ctime differ in after.
func changed(before, after map[string][2]int64) map[string]bool {
	out := map[string]bool{}
	for p, v := range before {
		if a, ok := after[p]; !ok || a != v {
			out[p] = true
		}
	}
	return out
}

// TestDryRun: a dry run changes nothing, and plans what the repair then
// does.
func TestDryRun(t *testing.T) {
	f := newFixture(t, generated(2, 200))
	for _, a := range attacks {
		if strings.HasPrefix(a.name, "encryption with rename") || a.name == "folder deleted" || a.name == "special files and symlinks changed" {
			a.do(t, f)
		}
	}
	before := listing(t, f.base)
	plan, err := f.run(t, nil, RepairOptions{DryRun: true})
	if err != nil || len(f.problems) > 0 {
		t.Fatalf("dry run: %v, %v", err, f.problems)
	}
	wantSame(t, "after a dry run", before, listing(t, f.base))
	if len(plan.Actions) == 0 || plan.Verified != 0 {
		t.Errorf("plan: %d actions, %d verified", len(plan.Actions), plan.Verified)
	}
	var reasons []string
	for _, a := range plan.Actions {
		reasons = append(reasons, a.Do+": "+a.Reason)
	}
	for _, want := range []string{"quarantine: not in the snapshot", "restore: missing", "replace: kind differs", "replace: target differs"} {
		if !slices.Contains(reasons, want) {
			t.Errorf("plan lacks %q: %v", want, reasons)
		}
	}
	rep, err := f.run(t, nil, RepairOptions{})
	f.wantClean(t, rep, err)
	f.wantSnapshot(t)
	type counts struct{ files, links, other, dirs, meta, quar, quarFiles, unchanged int }
	c := func(r *Report) counts {
		return counts{r.FilesRestored, r.LinksRestored, r.OtherRestored, r.DirsCreated, r.MetadataRepaired, r.Quarantined, r.QuarantinedFiles, r.Unchanged}
	}
	if c(plan) != c(rep) || plan.BytesRestored != rep.BytesRestored || plan.QuarantinedBytes != rep.QuarantinedBytes {
		t.Errorf("planned %+v, did %+v", c(plan), c(rep))
	}
	if len(plan.Actions) != len(rep.Actions) {
		t.Errorf("planned %d actions, did %d", len(plan.Actions), len(rep.Actions))
	}
}

// lyingSource hands out altered content for one blob, as a bug in the
// pipeline would: the file written cannot verify.
type lyingSource struct {
	Source
	bad blob.ID
}

func (s lyingSource) OpenBlob(loc index.Location, ct, buf []byte) ([]byte, error) {
	plain, err := s.Source.OpenBlob(loc, ct, buf)
	if err == nil && loc.ID == s.bad && len(plain) > 0 {
		plain[0] ^= 1
	}
	return plain, err
}

// TestVerifyFailure: a file written wrong is reported, wrapping ErrVerify,
// and counted; the others verify.
func TestVerifyFailure(t *testing.T) {
	f := newFixture(t, generated(3, 150))
	vs := victims(t, f, 3)
	for _, v := range vs {
		must(t, os.Remove(filepath.Join(f.live, v)))
	}
	node := findNode(t, f, filepath.Join(f.live, vs[1]))
	rep, err := f.run(t, lyingSource{f.r, node.Content[0]}, RepairOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.VerifyFailed != 1 || rep.Verified < 2 {
		t.Errorf("%d verified, %d failed; want 1 failure", rep.Verified, rep.VerifyFailed)
	}
	if len(f.problems) != 1 || f.problems[0].Path != filepath.Join(f.live, vs[1]) || !strings.Contains(f.problems[0].Error, ErrVerify.Error()) {
		t.Errorf("reported %v, want %s failing verification", f.problems, vs[1])
	}
}

// TestCancel cuts a repair short while content is being written: Repair
// says so, nothing the attack left is lost (each damaged file is still in
// place or in the quarantine), and a second repair finishes the work.
func TestCancel(t *testing.T) {
	f := newFixture(t, generated(4, 200))
	d := attacks[0].do(t, f) // encryption in place
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	src := cancelling{Source: f.r, cancel: cancel}
	rep, err := Repair(ctx, src, f.sn, RepairOptions{Paths: []string{f.live}, Quarantine: f.q})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), f.q) {
		t.Fatalf("Repair: %v, want it cancelled, naming the quarantine", err)
	}
	if rep == nil {
		t.Fatal("no report")
	}
	for rel, data := range d.kept {
		live, _ := os.ReadFile(filepath.Join(f.live, rel))
		kept, _ := os.ReadFile(f.inQuarantine(rel))
		if !bytes.Equal(live, data) && !bytes.Equal(kept, data) {
			t.Errorf("%s: the damaged file is neither in place nor in the quarantine", rel)
		}
	}
	f.q += "2"
	rep, err = f.run(t, nil, RepairOptions{})
	f.wantClean(t, rep, err)
	f.wantSnapshot(t)
}

// cancelling cancels the repair at its first pack read.
type cancelling struct {
	Source
	cancel context.CancelFunc
}

func (s cancelling) ReadPack(ctx context.Context, id blob.ID, p []byte, off int64) error {
	s.cancel()
	return s.Source.ReadPack(ctx, id, p, off)
}

// TestQuarantineAcrossFileSystems moves into a quarantine on another file
// system: entries are copied with their metadata, then removed.
func TestQuarantineAcrossFileSystems(t *testing.T) {
	var a, b unix.Stat_t
	if unix.Stat("/dev/shm", &b) != nil || unix.Stat(t.TempDir(), &a) != nil || a.Dev == b.Dev {
		t.Skip("no second file system at /dev/shm")
	}
	f := newFixture(t, smallTree)
	q, err := os.MkdirTemp("/dev/shm", "recovery-test-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(q) })
	f.q = filepath.Join(q, "q")
	added := filepath.Join(f.live, "docs", "added")
	writeFile(t, filepath.Join(added, "note.txt"), note)
	must(t, os.Symlink("../a.txt", filepath.Join(added, "link")))
	must(t, unix.Mkfifo(filepath.Join(added, "fifo"), 0o640))
	must(t, os.Chmod(filepath.Join(added, "note.txt"), 0o604))
	old := time.Date(2010, 5, 6, 7, 8, 9, 10, time.UTC)
	must(t, os.Chtimes(filepath.Join(added, "note.txt"), old, old))
	enc := encrypt([]byte("alpha"))
	must(t, os.WriteFile(filepath.Join(f.live, "docs", "a.txt"), enc, 0o644))
	rep, err := f.run(t, nil, RepairOptions{})
	f.wantClean(t, rep, err)
	f.wantSnapshot(t)
	wantFile(t, f.inQuarantine("docs/added/note.txt"), []byte(note))
	wantFile(t, f.inQuarantine("docs/a.txt"), enc)
	wantSymlink(t, f.inQuarantine("docs/added/link"), "../a.txt")
	if fi, err := os.Lstat(f.inQuarantine("docs/added/fifo")); err != nil || fi.Mode().Type() != os.ModeNamedPipe || fi.Mode().Perm() != 0o640 {
		t.Errorf("fifo in the quarantine: %v, %v", fi, err)
	}
	if fi, err := os.Lstat(f.inQuarantine("docs/added/note.txt")); err != nil || fi.Mode().Perm() != 0o604 || !fi.ModTime().Equal(old) {
		t.Errorf("note in the quarantine: %v, %v; want mode 0604 and mtime %v", fi, err, old)
	}
	if rep.QuarantinedFiles != 2 || rep.QuarantinedBytes != int64(len(note)+len(enc)) {
		t.Errorf("quarantined %d files, %d bytes", rep.QuarantinedFiles, rep.QuarantinedBytes)
	}
}

// TestQuarantineNames: a name already taken in the quarantine gets a
// numeric suffix; nothing there is replaced.
func TestQuarantineNames(t *testing.T) {
	f := newFixture(t, smallTree)
	for i := range 3 {
		writeFile(t, filepath.Join(f.live, "docs", "note"), strings.Repeat("n", i+1))
		rep, err := f.run(t, nil, RepairOptions{})
		f.wantClean(t, rep, err)
	}
	for i, name := range []string{"note", "note.1", "note.2"} {
		wantFile(t, f.inQuarantine("docs/"+name), []byte(strings.Repeat("n", i+1)))
	}
	f.wantSnapshot(t)
}

// TestQuarantineInside: a quarantine inside the repaired tree, in a folder
// named snapshot.QuarantineName, is allowed and left alone by the walk.
func TestQuarantineInside(t *testing.T) {
	f := newFixture(t, smallTree)
	writeFile(t, filepath.Join(f.live, "docs", "x.locked"), "x")
	// Making the quarantine changes the live folder's times; they are put
	// back.
	n := findNode(t, f, f.live)
	wantMtime := func() {
		t.Helper()
		if fi, err := os.Lstat(f.live); err != nil || !fi.ModTime().Equal(time.Unix(n.MTime.Sec, n.MTime.Nsec)) {
			t.Errorf("live folder: %v, %v; want mtime %v", fi.ModTime(), err, n.MTime)
		}
	}
	f.q = filepath.Join(f.live, snapshot.QuarantineName, "T1")
	rep, err := f.run(t, nil, RepairOptions{})
	f.wantClean(t, rep, err)
	wantFile(t, filepath.Join(f.q, f.live, "docs", "x.locked"), []byte("x"))
	wantMtime()
	// A second repair leaves the first quarantine where it is.
	writeFile(t, filepath.Join(f.live, "docs", "y.locked"), "y")
	f.q = filepath.Join(f.live, snapshot.QuarantineName, "T2")
	rep, err = f.run(t, nil, RepairOptions{})
	f.wantClean(t, rep, err)
	wantFile(t, filepath.Join(f.live, snapshot.QuarantineName, "T1", f.live, "docs", "x.locked"), []byte("x"))
	wantFile(t, filepath.Join(f.q, f.live, "docs", "y.locked"), []byte("y"))
	if rep.Quarantined != 1 {
		t.Errorf("%d quarantined, want 1", rep.Quarantined)
	}
	wantMtime()
}

// TestPaths repairs single entries and folders: a file the snapshot has, a
// file it lacks, a path neither has, and a path below a missing folder.
func TestPaths(t *testing.T) {
	f := newFixture(t, smallTree)
	must(t, os.WriteFile(filepath.Join(f.live, "docs", "a.txt"), []byte("ALPHA"), 0o644))
	must(t, os.WriteFile(filepath.Join(f.live, "docs", "b.txt"), []byte("BRAVO"), 0o644))
	writeFile(t, filepath.Join(f.live, "new.txt"), "new")
	must(t, os.RemoveAll(filepath.Join(f.live, "docs", "sub")))
	rep, err := f.run(t, nil, RepairOptions{Paths: []string{
		filepath.Join(f.live, "docs", "a.txt"),
		filepath.Join(f.live, "new.txt"),
		filepath.Join(f.live, "none"),
		filepath.Join(f.live, "docs", "sub", "c.txt"),
	}})
	f.wantClean(t, rep, err)
	wantFile(t, filepath.Join(f.live, "docs", "a.txt"), []byte("alpha"))
	wantFile(t, filepath.Join(f.live, "docs", "b.txt"), []byte("BRAVO")) // not asked for
	wantFile(t, filepath.Join(f.live, "docs", "sub", "c.txt"), []byte("charlie"))
	wantFile(t, f.inQuarantine("new.txt"), []byte("new"))
	if rep.FilesRestored != 2 || rep.Quarantined != 2 || rep.DirsCreated != 1 {
		t.Errorf("report %+v", rep)
	}
	want := map[string]bool{"docs/sub": true, "docs/sub/c.txt": true}
	got := map[string]bool{}
	for _, a := range rep.Actions {
		if a.Do == DoRestore {
			rel, _ := filepath.Rel(f.live, a.Path)
			got[rel] = true
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("restored %v, want %v", got, want)
	}
}

// TestRepairIntoRoot: a repair with Root restores the snapshot into a new
// folder, verified, and repairs a damaged copy there as in place.
func TestRepairIntoRoot(t *testing.T) {
	f := newFixture(t, generated(11, 200))
	root := filepath.Join(f.base, "target")
	rep, err := f.run(t, nil, RepairOptions{Root: root, Quarantine: filepath.Join(root, snapshot.QuarantineName, "q")})
	f.wantClean(t, rep, err)
	if rep.FilesRestored == 0 || rep.Verified < rep.FilesRestored || rep.Quarantined != 0 {
		t.Fatalf("into a new folder: %+v; want every file restored and verified, nothing quarantined", rep)
	}
	for _, d := range testtree.Compare(f.live, filepath.Join(root, f.live), testtree.CompareOptions{}) {
		t.Errorf("the restored copy differs from the live tree: %v", d)
	}
	// Damage the copy, not the live tree: repaired under Root, the live
	// tree is not touched.
	before := listing(t, f.live)
	victim := victims(t, f, 1)[0]
	copyVictim := filepath.Join(root, f.live, victim)
	must(t, os.WriteFile(copyVictim, []byte("encrypted"), 0o644))
	rep, err = f.run(t, nil, RepairOptions{Root: root, Quarantine: filepath.Join(root, snapshot.QuarantineName, "q2")})
	f.wantClean(t, rep, err)
	if rep.FilesRestored != 1 || rep.Quarantined != 1 {
		t.Errorf("repair of the copy: %d restored, %d quarantined; want 1 and 1", rep.FilesRestored, rep.Quarantined)
	}
	wantFile(t, filepath.Join(root, snapshot.QuarantineName, "q2", root, f.live, victim), []byte("encrypted"))
	wantSame(t, "live", before, listing(t, f.live))
	if _, err := Repair(t.Context(), f.r, f.sn, RepairOptions{Paths: []string{f.live}, Root: "relative", Quarantine: f.q}); err == nil {
		t.Error("a relative root was accepted")
	}
}

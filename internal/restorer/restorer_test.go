package restorer

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/snapshot"
)

var _ Source = (*fake)(nil)

var mtime = snapshot.Time{Sec: 1_700_000_000, Nsec: 123_456_789}

func randomBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.UintN(255) + 1) // no zero block, so nothing is a hole
	}
	return b
}

func fileNode(name string, mode uint32, content []blob.ID, data ...[]byte) snapshot.Node {
	var size int
	for _, d := range data {
		size += len(d)
	}
	return snapshot.Node{Name: snapshot.Name(name), Kind: snapshot.File, Mode: mode, Size: uint64(size), MTime: mtime, Content: content}
}

func dirNode(name string, mode uint32, tree blob.ID) snapshot.Node {
	return snapshot.Node{Name: snapshot.Name(name), Kind: snapshot.Dir, Mode: mode, MTime: mtime, Subtree: &tree}
}

// sorted returns nodes in tree order, as snapshot.DecodeTree requires.
func sorted(nodes ...snapshot.Node) []snapshot.Node {
	t := snapshot.Tree{Nodes: nodes}
	t.Sort()
	return t.Nodes
}

// report is one OnError call.
type report struct {
	path string
	err  error
}

func (r report) String() string { return r.path + ": " + r.err.Error() }

type outcome struct {
	stats   Stats
	err     error
	reports []report
	prog    *Progress
}

// run restores tree root into target.
func run(ctx context.Context, t *testing.T, src Source, root blob.ID, target string, include func(string) bool) outcome {
	t.Helper()
	var o outcome
	var mu sync.Mutex
	o.prog = &Progress{}
	opts := Options{Target: target, Include: include, Progress: o.prog, OnError: func(p string, err error) {
		mu.Lock()
		defer mu.Unlock()
		o.reports = append(o.reports, report{p, err})
	}}
	o.stats, o.err = Restore(ctx, src, &snapshot.Snapshot{Tree: root}, opts)
	if o.stats.Errors != len(o.reports) {
		t.Errorf("Stats.Errors = %d, OnError called %d times", o.stats.Errors, len(o.reports))
	}
	return o
}

// listTree returns the snapshot paths of everything below dir.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			out = append(out, strings.TrimPrefix(p, dir))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func wantContent(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Error(err)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: %d bytes, not the %d bytes backed up", path, len(got), len(want))
	}
}

func wantMeta(t *testing.T, path string, mode uint32, mt snapshot.Time) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Error(err)
		return
	}
	if got := st.Mode & 0o7777; got != mode {
		t.Errorf("%s: mode %o, want %o", path, got, mode)
	}
	if st.Mtim.Sec != mt.Sec || st.Mtim.Nsec != mt.Nsec {
		t.Errorf("%s: mtime %d.%09d, want %d.%09d", path, st.Mtim.Sec, st.Mtim.Nsec, mt.Sec, mt.Nsec)
	}
}

// TestRestoreKinds restores one of every kind of node and checks content,
// holes, links and metadata.
func TestRestoreKinds(t *testing.T) {
	f := newFake()
	isRoot := os.Geteuid() == 0

	m1, m2, m3 := randomBytes(1, 100<<10), randomBytes(2, 50<<10), randomBytes(3, 70<<10)
	multiIDs, _ := f.pack(m1, m2) // adjacent in one pack
	multiIDs = append(multiIDs, f.blobs(m3)...)

	// Three chunks of 3 MiB: more than jobBytes, so two jobs.
	b1, b2, b3 := randomBytes(4, 3<<20), randomBytes(5, 3<<20), randomBytes(6, 3<<20)
	bigIDs, _ := f.pack(b1, b2, b3)

	// A data block, a chunk of zeros, and a chunk half zero: only the data
	// blocks may take space.
	s1 := randomBytes(7, 4<<10)
	s2 := make([]byte, 1<<20)
	s3 := append(make([]byte, 4<<10), randomBytes(8, 4<<10)...)
	sparseIDs, _ := f.pack(s1, s2, s3)

	linked := randomBytes(9, 10<<10)
	linkedIDs := f.blobs(linked)
	link := func(name string) snapshot.Node {
		n := fileNode(name, 0o604, linkedIDs, linked)
		n.Links, n.Device, n.Inode = 2, 7, 42
		return n
	}
	inner := randomBytes(10, 1000)

	sub := f.tree(fileNode("f", 0o600, f.blobs(inner), inner))
	nodes := []snapshot.Node{
		fileNode("multi", 0o644, multiIDs, m1, m2, m3),
		fileNode("big", 0o755, bigIDs, b1, b2, b3),
		fileNode("empty", 0o640, nil),
		fileNode("sparse", 0o600, sparseIDs, s1, s2, s3),
		link("link1"),
		link("link2"),
		{Name: "sym", Kind: snapshot.Symlink, Target: "multi", MTime: mtime},
		{Name: "fifo", Kind: snapshot.FIFO, Mode: 0o620, MTime: mtime},
		dirNode("sub", 0o700, sub),
	}
	owned := fileNode("owned", 0o4750, f.blobs(inner), inner)
	owned.UID, owned.GID = 1234, 5678
	if isRoot {
		nodes = append(nodes, owned,
			snapshot.Node{Name: "null", Kind: snapshot.CharDev, Mode: 0o666, MTime: mtime, Rdev: unix.Mkdev(1, 3)})
	}
	d := f.tree(sorted(nodes...)...)
	root := f.tree(dirNode("d", 0o750, d))

	target := t.TempDir()
	o := run(t.Context(), t, f, root, target, nil)
	if o.err != nil || len(o.reports) > 0 {
		t.Fatalf("Restore: %v, reports %v", o.err, o.reports)
	}
	dir := filepath.Join(target, "d")
	wantContent(t, filepath.Join(dir, "multi"), slices.Concat(m1, m2, m3))
	wantContent(t, filepath.Join(dir, "big"), slices.Concat(b1, b2, b3))
	wantContent(t, filepath.Join(dir, "empty"), nil)
	wantContent(t, filepath.Join(dir, "sparse"), slices.Concat(s1, s2, s3))
	wantContent(t, filepath.Join(dir, "link1"), linked)
	wantContent(t, filepath.Join(dir, "sub", "f"), inner)
	for name, mode := range map[string]uint32{"multi": 0o644, "big": 0o755, "empty": 0o640, "sparse": 0o600, "link1": 0o604, "fifo": 0o620, "sub": 0o700, "sub/f": 0o600, ".": 0o750} {
		wantMeta(t, filepath.Join(dir, name), mode, mtime)
	}

	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(dir, "sparse"), &st); err != nil {
		t.Fatal(err)
	}
	if used, data := st.Blocks*512, int64(len(s1)+len(s3)); used > 4*data {
		t.Errorf("sparse: %d bytes allocated for %d bytes of data: holes were written", used, data)
	}

	a, _ := os.Stat(filepath.Join(dir, "link1"))
	b, _ := os.Stat(filepath.Join(dir, "link2"))
	if a == nil || b == nil || !os.SameFile(a, b) {
		t.Error("link1 and link2 are not one file")
	}
	if tgt, err := os.Readlink(filepath.Join(dir, "sym")); err != nil || tgt != "multi" {
		t.Errorf("sym -> %q, %v; want multi", tgt, err)
	}
	if err := unix.Lstat(filepath.Join(dir, "sym"), &st); err != nil || st.Mtim.Sec != mtime.Sec {
		t.Errorf("sym: mtime %d, %v; want %d", st.Mtim.Sec, err, mtime.Sec)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "fifo")); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
		t.Errorf("fifo: %v, %v", fi, err)
	}

	want := Stats{Files: 7, Dirs: 2, Other: 2, Bytes: int64(len(m1) + len(m2) + len(m3) + 3*(3<<20) + len(s1) + len(s2) + len(s3) + 2*len(linked) + len(inner))}
	if isRoot {
		want.Files++
		want.Other++
		want.Bytes += int64(len(inner))
		if err := unix.Stat(filepath.Join(dir, "owned"), &st); err != nil || st.Uid != 1234 || st.Gid != 5678 || st.Mode&0o7777 != 0o4750 {
			t.Errorf("owned: uid %d gid %d mode %o (%v), want 1234 5678 4750", st.Uid, st.Gid, st.Mode&0o7777, err)
		}
		if err := unix.Stat(filepath.Join(dir, "null"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
			t.Errorf("null: mode %o rdev %d (%v), want a character device 1,3", st.Mode, st.Rdev, err)
		}
	}
	// A hard link counts as a file but its bytes once.
	want.Bytes -= int64(len(linked))
	if o.stats != want {
		t.Errorf("Stats = %+v, want %+v", o.stats, want)
	}
	if got, wantFiles := o.prog.Files.Load(), int64(want.Files-1); got != wantFiles {
		t.Errorf("Progress.Files = %d, want %d (every file but the second link)", got, wantFiles)
	}
	if got := o.prog.Bytes.Load(); got != want.Bytes {
		t.Errorf("Progress.Bytes = %d, want %d", got, want.Bytes)
	}
}

// TestRestoreXattrs restores extended attributes of a file and a directory,
// where the file system takes them.
func TestRestoreXattrs(t *testing.T) {
	target := t.TempDir()
	if err := unix.Setxattr(target, "user.probe", []byte("x"), 0); err != nil {
		t.Skipf("file system has no user xattrs: %v", err)
	}
	f := newFake()
	data := []byte("content")
	x := []snapshot.Xattr{{Name: "user.kalaja", Value: []byte("value\x00with nul")}}
	file := fileNode("f", 0o644, f.blobs(data), data)
	file.Xattrs = x
	d := dirNode("d", 0o755, f.tree(file))
	d.Xattrs = x
	o := run(t.Context(), t, f, f.tree(d), target, nil)
	if o.err != nil || len(o.reports) > 0 {
		t.Fatalf("Restore: %v, reports %v", o.err, o.reports)
	}
	for _, p := range []string{"d", "d/f"} {
		buf := make([]byte, 64)
		n, err := unix.Getxattr(filepath.Join(target, p), "user.kalaja", buf)
		if err != nil || !bytes.Equal(buf[:n], x[0].Value) {
			t.Errorf("%s: xattr %q, %v; want %q", p, buf[:max(n, 0)], err, x[0].Value)
		}
	}
}

// TestReadsAdjacentBlobsOnce: blobs next to each other in one pack are read
// with one call; others with one call each.
func TestReadsAdjacentBlobsOnce(t *testing.T) {
	f := newFake()
	a, b, c, d, e := randomBytes(1, 1000), randomBytes(2, 2000), randomBytes(3, 3000), randomBytes(4, 4000), randomBytes(5, 5000)
	p, _ := f.pack(a, b, e, d) // a, b adjacent; d apart from them
	q := f.blobs(c)
	content := []blob.ID{p[0], p[1], q[0], p[3]}
	root := f.tree(fileNode("f", 0o644, content, a, b, c, d))
	target := t.TempDir()
	o := run(t.Context(), t, f, root, target, nil)
	if o.err != nil || len(o.reports) > 0 {
		t.Fatalf("Restore: %v, reports %v", o.err, o.reports)
	}
	wantContent(t, filepath.Join(target, "f"), slices.Concat(a, b, c, d))
	if n := f.reads.Load(); n != 3 {
		t.Errorf("%d pack reads, want 3", n)
	}
}

// TestInclude: Include selects files and whole directories by snapshot
// path; the directories leading to them are made, nothing else.
func TestInclude(t *testing.T) {
	f := newFake()
	data := []byte("x")
	ids := f.blobs(data)
	file := func(name string) snapshot.Node { return fileNode(name, 0o644, ids, data) }
	c := f.tree(file("z"))
	root := f.tree(sorted(
		dirNode("a", 0o755, f.tree(file("x"), file("y"))),
		dirNode("b", 0o755, f.tree(dirNode("c", 0o755, c))),
		file("top"),
	)...)
	for _, tc := range []struct {
		name    string
		include func(string) bool
		want    []string
	}{
		{"all", nil, []string{"/a", "/a/x", "/a/y", "/b", "/b/c", "/b/c/z", "/top"}},
		{"one file", func(p string) bool { return p == "/a/x" }, []string{"/a", "/a/x"}},
		{"by name", func(p string) bool { return filepath.Base(p) == "y" || filepath.Base(p) == "top" }, []string{"/a", "/a/y", "/top"}},
		{"a directory", func(p string) bool { return p == "/b" }, []string{"/b", "/b/c", "/b/c/z"}},
		{"a deep file", func(p string) bool { return p == "/b/c/z" }, []string{"/b", "/b/c", "/b/c/z"}},
		{"nothing", func(string) bool { return false }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := t.TempDir()
			o := run(t.Context(), t, f, root, target, tc.include)
			if o.err != nil || len(o.reports) > 0 {
				t.Fatalf("Restore: %v, reports %v", o.err, o.reports)
			}
			if got := listTree(t, target); !slices.Equal(got, tc.want) {
				t.Errorf("restored %q, want %q", got, tc.want)
			}
		})
	}
}

// TestDamage: what cannot be read is reported under its snapshot path and
// counted, a blob that does not verify is never written, and everything
// else is restored.
func TestDamage(t *testing.T) {
	good := randomBytes(1, 20<<10)
	bad1, bad2 := randomBytes(2, 8<<10), randomBytes(3, 8<<10)
	inDir := randomBytes(4, 100)
	for _, tc := range []struct {
		name    string
		damage  func(f *fake, bad []blob.ID, sub blob.ID)
		path    string   // reported
		wantErr error    // wrapped by the report
		zero    [][2]int // byte ranges of /bad that must be holes
	}{
		{"missing data blob", func(f *fake, bad []blob.ID, _ blob.ID) { f.forget(bad[1]) },
			"/bad", blob.ErrNotFound, [][2]int{{0, 16 << 10}}},
		{"missing pack", func(f *fake, bad []blob.ID, _ blob.ID) {
			p, _ := f.where(bad[0])
			f.mu.Lock()
			delete(f.packs, p)
			f.mu.Unlock()
		}, "/bad", blob.ErrNotFound, [][2]int{{0, 16 << 10}}},
		{"corrupt blob", func(f *fake, bad []blob.ID, _ blob.ID) {
			p, off := f.where(bad[1])
			f.flip(p, off+100)
		}, "/bad", blob.ErrCorrupt, [][2]int{{8 << 10, 16 << 10}}},
		{"missing tree", func(f *fake, _ []blob.ID, sub blob.ID) {
			f.mu.Lock()
			delete(f.trees, sub)
			f.mu.Unlock()
		}, "/dir", blob.ErrNotFound, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			badIDs, _ := f.pack(bad1, bad2)
			sub := f.tree(fileNode("f", 0o644, f.blobs(inDir), inDir))
			root := f.tree(
				fileNode("bad", 0o644, badIDs, bad1, bad2),
				dirNode("dir", 0o755, sub),
				fileNode("good", 0o644, f.blobs(good), good),
			)
			tc.damage(f, badIDs, sub)
			target := t.TempDir()
			o := run(t.Context(), t, f, root, target, nil)
			if o.err != nil {
				t.Fatalf("Restore: %v", o.err)
			}
			if len(o.reports) != 1 || o.reports[0].path != tc.path || !errors.Is(o.reports[0].err, tc.wantErr) {
				t.Fatalf("reports %v, want one for %s wrapping %v", o.reports, tc.path, tc.wantErr)
			}
			wantContent(t, filepath.Join(target, "good"), good)
			wantMeta(t, filepath.Join(target, "good"), 0o644, mtime)
			if tc.path != "/dir" {
				wantContent(t, filepath.Join(target, "dir", "f"), inDir)
			} else if got := listTree(t, filepath.Join(target, "dir")); len(got) > 0 {
				t.Errorf("unreadable directory holds %q", got)
			}
			if tc.path != "/bad" {
				wantContent(t, filepath.Join(target, "bad"), slices.Concat(bad1, bad2))
				return
			}
			// The damaged file keeps its size and the mode it was created
			// with: its metadata is not applied, which marks it incomplete.
			got, err := os.ReadFile(filepath.Join(target, "bad"))
			if err != nil || len(got) != len(bad1)+len(bad2) {
				t.Fatalf("bad: %d bytes, %v", len(got), err)
			}
			for _, r := range tc.zero {
				if !isZero(got[r[0]:r[1]]) {
					t.Errorf("bad: bytes %d..%d were written", r[0], r[1])
				}
			}
			if fi, err := os.Stat(filepath.Join(target, "bad")); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("bad: %v, %v; want mode 0600 (no metadata)", fi, err)
			}
		})
	}
}

// TestHostileNames hands the restorer trees that snapshot.DecodeTree would
// reject: names that are not one path element, and a name used twice (a
// symlink out of the target, then a directory through it). Nothing may be
// written outside the target, and each such node is reported.
func TestHostileNames(t *testing.T) {
	f := newFake()
	data := []byte("evil")
	ids := f.blobs(data)
	base := t.TempDir()
	target, outside := filepath.Join(base, "target"), filepath.Join(base, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	file := func(name string) snapshot.Node { return fileNode(name, 0o644, ids, data) }
	below := f.tree(file(".."), file("../../x"), file("ok"))
	root := f.tree(
		file(""),
		file("."),
		file(".."),
		file("../outside/x"),
		file("a/b"),
		snapshot.Node{Name: "d", Kind: snapshot.Symlink, Target: snapshot.Name(outside), MTime: mtime},
		dirNode("d", 0o755, f.tree(file("x"))),
		file("ok"),
		dirNode("sub", 0o755, below),
	)
	o := run(t.Context(), t, f, root, target, nil)
	if o.err != nil {
		t.Fatalf("Restore: %v", o.err)
	}
	wantReports := []string{"/", "/", "/", "/", "/", "/", "/sub", "/sub"}
	var got []string
	for _, r := range o.reports {
		got = append(got, r.path)
		if !errors.Is(r.err, blob.ErrCorrupt) {
			t.Errorf("report for %s: %v, want blob.ErrCorrupt", r.path, r.err)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, wantReports) {
		t.Errorf("reported %q, want %q", got, wantReports)
	}
	if got := listTree(t, outside); len(got) > 0 {
		t.Errorf("restore wrote %q outside its target", got)
	}
	if got := listTree(t, base); !slices.Equal(got, []string{"/outside", "/target", "/target/d", "/target/ok", "/target/sub", "/target/sub/ok"}) {
		t.Errorf("restore left %q", got)
	}
}

// TestCancel ends a restore by its context while files are being written:
// Restore returns the context's error, reports nothing, and closes every
// file it opened.
func TestCancel(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before bool // cancel before Restore starts
	}{{"during", false}, {"before", true}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			var nodes []snapshot.Node
			for i := range 200 {
				d := randomBytes(uint64(i), 5000)
				nodes = append(nodes, fileNode(string(rune('a'+i%26))+string(rune('a'+i/26)), 0o644, f.blobs(d), d))
			}
			root := f.tree(sorted(nodes...)...)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tc.before {
				cancel()
			} else {
				f.onRead = func(blob.ID, int64) { cancel() }
			}
			fds := openFiles(t)
			o := run(ctx, t, f, root, t.TempDir(), nil)
			if !errors.Is(o.err, context.Canceled) {
				t.Errorf("Restore: %v, want context.Canceled", o.err)
			}
			if len(o.reports) > 0 {
				t.Errorf("reports %v after cancellation", o.reports)
			}
			if n := openFiles(t); n != fds {
				t.Errorf("%d files open after Restore, %d before", n, fds)
			}
		})
	}
}

func openFiles(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count open files: %v", err)
	}
	return len(ents)
}

// TestReplace: restoring over an earlier restore replaces every node.
func TestReplace(t *testing.T) {
	f := newFake()
	data := []byte("new content")
	root := f.tree(
		fileNode("f", 0o644, f.blobs(data), data),
		snapshot.Node{Name: "s", Kind: snapshot.Symlink, Target: "f", MTime: mtime},
	)
	target := t.TempDir()
	if err := os.WriteFile(filepath.Join(target, "f"), []byte("old content, longer"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("elsewhere", filepath.Join(target, "s")); err != nil {
		t.Fatal(err)
	}
	o := run(t.Context(), t, f, root, target, nil)
	if o.err != nil || len(o.reports) > 0 {
		t.Fatalf("Restore: %v, reports %v", o.err, o.reports)
	}
	wantContent(t, filepath.Join(target, "f"), data)
	if tgt, _ := os.Readlink(filepath.Join(target, "s")); tgt != "f" {
		t.Errorf("s -> %q, want f", tgt)
	}
	if fi, err := os.Stat(filepath.Join(target, "f")); err != nil || !fi.ModTime().Equal(time.Unix(mtime.Sec, mtime.Nsec)) {
		t.Errorf("f: %v, %v", fi, err)
	}
}

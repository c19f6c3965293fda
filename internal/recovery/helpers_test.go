package recovery

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/archiver"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/restorer"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store/local"
	"github.com/kalaja/kalaja/internal/testtree"
)

var _ Source = (*repo.Repository)(nil)

// newRepo makes a repository in a temporary folder, with a cheap key.
func newRepo(tb testing.TB) *repo.Repository {
	tb.Helper()
	st, err := local.Create(filepath.Join(tb.TempDir(), "repo"))
	if err != nil {
		tb.Fatal(err)
	}
	r, err := repo.Init(tb.Context(), st, []byte("pw"), crypto.KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1, Salt: make([]byte, 16)})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// fixture is a live tree backed up into a repository, a folder outside it
// (where planted symlinks point), and a quarantine folder beside it.
type fixture struct {
	r                *repo.Repository
	base             string
	live, outside, q string
	sn               *snapshot.Snapshot
	manifest         testtree.Manifest
	problems         []Problem // reported to OnError by the last repair
	problemsMu       sync.Mutex
	outsideBefore    map[string]string
}

// newFixture fills a live folder with fill, makes the outside folder and
// backs the live folder up.
func newFixture(t *testing.T, fill func(t *testing.T, live string) testtree.Manifest) *fixture {
	t.Helper()
	base := t.TempDir()
	t.Cleanup(func() { testtree.MakeRemovable(base) })
	f := &fixture{r: newRepo(t), base: base, live: filepath.Join(base, "live"), outside: filepath.Join(base, "outside"), q: filepath.Join(base, "q")}
	for _, d := range []string{f.live, f.outside, filepath.Join(f.outside, "sub"), filepath.Join(f.outside, "docs")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range map[string]string{"a.txt": "OUTSIDE a", "secret": "OUTSIDE secret", "sub/x": "OUTSIDE x", "docs/a.txt": "OUTSIDE docs a"} {
		writeFile(t, filepath.Join(f.outside, name), data)
	}
	f.manifest = fill(t, f.live)
	sn, err := archiver.Backup(t.Context(), f.r, []string{f.live}, archiver.Options{Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if sn.Summary.Errors > 0 {
		t.Fatalf("backup: %d errors", sn.Summary.Errors)
	}
	f.sn = sn
	f.outsideBefore = listing(t, f.outside)
	return f
}

// generated fills live with a generated tree of every kind of file.
func generated(seed int64, files int) func(t *testing.T, live string) testtree.Manifest {
	return func(t *testing.T, live string) testtree.Manifest {
		m, err := testtree.Generate(live, testtree.Options{Seed: seed, Files: files, MaxFileSize: 64 << 10, Devices: true})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
}

// run repairs o.Paths (f.live if none) into o.Quarantine (f.q if empty),
// recording what OnError receives.
func (f *fixture) run(t *testing.T, src Source, o RepairOptions) (*Report, error) {
	t.Helper()
	if o.Paths == nil {
		o.Paths = []string{f.live}
	}
	if o.Quarantine == "" {
		o.Quarantine = f.q
	}
	f.problems = nil
	o.OnError = func(p string, err error) {
		f.problemsMu.Lock()
		defer f.problemsMu.Unlock()
		f.problems = append(f.problems, Problem{p, err.Error()})
	}
	if src == nil {
		src = f.r
	}
	rep, err := Repair(t.Context(), src, f.sn, o)
	if rep != nil && rep.Errors != len(f.problems) {
		t.Errorf("report counts %d errors, OnError received %d", rep.Errors, len(f.problems))
	}
	return rep, err
}

// wantClean fails t unless the repair reported no problem.
func (f *fixture) wantClean(t *testing.T, rep *Report, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("Repair: %v", err)
	}
	for _, p := range f.problems {
		t.Errorf("reported %s: %s", p.Path, p.Error)
	}
	if rep.VerifyFailed > 0 {
		t.Errorf("%d verify failures", rep.VerifyFailed)
	}
}

// wantSnapshot fails t unless the live tree is, in content and metadata,
// what the snapshot holds: the snapshot restored beside it compares equal.
func (f *fixture) wantSnapshot(t *testing.T) {
	t.Helper()
	want := filepath.Join(t.TempDir(), "want")
	t.Cleanup(func() { testtree.MakeRemovable(want) })
	stats, err := restorer.Restore(t.Context(), f.r, f.sn, restorer.Options{Target: want})
	if err != nil || stats.Errors > 0 {
		t.Fatalf("restore for comparison: %v, %d errors", err, stats.Errors)
	}
	for _, d := range testtree.Compare(filepath.Join(want, f.live), f.live, testtree.CompareOptions{}) {
		t.Errorf("live differs from the snapshot: %v", d)
	}
}

// wantOutsideIntact fails t if anything in the outside folder changed.
func (f *fixture) wantOutsideIntact(t *testing.T) {
	t.Helper()
	wantSame(t, "outside", f.outsideBefore, listing(t, f.outside))
}

// inQuarantine is where the live entry at rel (below f.live) is kept.
func (f *fixture) inQuarantine(rel string) string {
	return filepath.Join(f.q, f.live, rel)
}

func wantSame(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for p, b := range before {
		if a, ok := after[p]; !ok {
			t.Errorf("%s: %q disappeared (was %s)", what, p, b)
		} else if a != b {
			t.Errorf("%s: %q changed:\n  was %s\n  now %s", what, p, b, a)
		}
	}
	for p, a := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s: %q appeared: %s", what, p, a)
		}
	}
}

// listing describes everything below root (root itself as "."), without
// following symlinks: kind, mode, owner, size, mtime, ctime, inode, and a
// hash of the content or the link target. Access times are left out.
func listing(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		what := ""
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			what = hex.EncodeToString(sum[:8])
		case unix.S_IFLNK:
			what, _ = os.Readlink(p)
		}
		out[rel] = fmt.Sprintf("%s %#o %d:%d size=%d mtime=%d.%d ctime=%d.%d ino=%d %s", kindOf(st.Mode), st.Mode&0o7777,
			st.Uid, st.Gid, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec, st.Ino, what)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func writeFile(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func wantFile(t *testing.T, p string, data []byte) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil {
		t.Errorf("want %s: %v", p, err)
		return
	}
	if string(got) != string(data) {
		t.Errorf("%s: %d bytes, not the %d expected", p, len(got), len(data))
	}
}

func wantSymlink(t *testing.T, p, target string) {
	t.Helper()
	got, err := os.Readlink(p)
	if err != nil {
		t.Errorf("want symlink %s: %v", p, err)
		return
	}
	if got != target {
		t.Errorf("%s -> %q, want %q", p, got, target)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// findNode returns the snapshot's node at live path p.
func findNode(t *testing.T, f *fixture, p string) *snapshot.Node {
	t.Helper()
	tree, err := f.r.LoadTree(t.Context(), f.sn.Tree)
	must(t, err)
	names := strings.Split(p[1:], "/")
	for i, name := range names {
		n := tree.Find(name)
		if n == nil {
			t.Fatalf("the snapshot has no %s", p)
		}
		if i == len(names)-1 {
			return n
		}
		tree, err = f.r.LoadTree(t.Context(), *n.Subtree)
		must(t, err)
	}
	return nil
}

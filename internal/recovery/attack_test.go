package recovery

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/testtree"
)

// smallTree is a live tree small enough to name every entry.
func smallTree(t *testing.T, live string) testtree.Manifest {
	writeFile(t, filepath.Join(live, "top.txt"), "top")
	writeFile(t, filepath.Join(live, "docs", "a.txt"), "alpha")
	writeFile(t, filepath.Join(live, "docs", "b.txt"), "bravo")
	writeFile(t, filepath.Join(live, "docs", "sub", "c.txt"), "charlie")
	return testtree.Manifest{}
}

// TestAttacks plants symlinks and FIFOs where the snapshot has files and
// folders. Each planted entry must end up in the quarantine as it is (a
// symlink stays a symlink), the tree must be the snapshot's again, and
// nothing outside the live tree may change, although every symlink points
// there and the outside folder holds entries of the same names.
func TestAttacks(t *testing.T) {
	for _, tc := range []struct {
		name    string
		plant   func(t *testing.T, f *fixture)
		planted string // below f.live, quarantined
		target  string // of the planted symlink, "" for a FIFO
	}{
		{"folder replaced by a symlink", func(t *testing.T, f *fixture) {
			must(t, os.RemoveAll(filepath.Join(f.live, "docs")))
			must(t, os.Symlink(f.outside, filepath.Join(f.live, "docs")))
		}, "docs", "outside"},
		{"file replaced by a symlink", func(t *testing.T, f *fixture) {
			must(t, os.Remove(filepath.Join(f.live, "docs", "a.txt")))
			must(t, os.Symlink(filepath.Join(f.outside, "a.txt"), filepath.Join(f.live, "docs", "a.txt")))
		}, "docs/a.txt", "outside/a.txt"},
		{"file replaced by a dangling symlink", func(t *testing.T, f *fixture) {
			must(t, os.Remove(filepath.Join(f.live, "top.txt")))
			must(t, os.Symlink(filepath.Join(f.outside, "new.txt"), filepath.Join(f.live, "top.txt")))
		}, "top.txt", "outside/new.txt"},
		{"file replaced by a FIFO", func(t *testing.T, f *fixture) {
			must(t, os.Remove(filepath.Join(f.live, "docs", "b.txt")))
			must(t, unix.Mkfifo(filepath.Join(f.live, "docs", "b.txt"), 0o644))
		}, "docs/b.txt", ""},
		{"symlink to a folder added", func(t *testing.T, f *fixture) {
			must(t, os.Symlink(f.outside, filepath.Join(f.live, "docs", "sub", "evil")))
		}, "docs/sub/evil", "outside"},
		{"repaired path replaced by a symlink", func(t *testing.T, f *fixture) {
			must(t, os.RemoveAll(f.live))
			must(t, os.Symlink(f.outside, f.live))
		}, "", "outside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, smallTree)
			tc.plant(t, f)
			rep, err := f.run(t, nil, RepairOptions{})
			f.wantClean(t, rep, err)
			f.wantSnapshot(t)
			f.wantOutsideIntact(t)
			q := f.inQuarantine(tc.planted)
			if tc.target != "" {
				wantSymlink(t, q, filepath.Join(f.base, tc.target))
			} else if fi, err := os.Lstat(q); err != nil || fi.Mode().Type() != os.ModeNamedPipe {
				t.Errorf("quarantine holds %v (%v), want the FIFO", fi, err)
			}
			if rep.Quarantined != 1 {
				t.Errorf("%d entries quarantined, want 1", rep.Quarantined)
			}
		})
	}
}

// TestRefusals: a quarantine reached through a symlink, and a path whose
// ancestor became a symlink, are refused before anything is changed.
func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name    string
		plant   func(t *testing.T, f *fixture) RepairOptions
		fails   bool   // Repair returns an error; otherwise one is reported
		problem string // in the error or the one reported
	}{
		{"quarantine folder planted as a symlink", func(t *testing.T, f *fixture) RepairOptions {
			must(t, os.Remove(filepath.Join(f.live, "top.txt"))) // something to do
			must(t, os.Symlink(f.outside, filepath.Join(f.live, snapshot.QuarantineName)))
			return RepairOptions{Quarantine: filepath.Join(f.live, snapshot.QuarantineName, "T")}
		}, true, "not followed"},
		{"ancestor replaced by a symlink", func(t *testing.T, f *fixture) RepairOptions {
			must(t, os.Rename(f.live, f.live+".moved"))
			must(t, os.Symlink(f.outside, f.live))
			return RepairOptions{Paths: []string{filepath.Join(f.live, "docs")}}
		}, false, "not followed"},
		{"quarantine inside the path", func(t *testing.T, f *fixture) RepairOptions {
			return RepairOptions{Quarantine: filepath.Join(f.live, "q")}
		}, true, "lies in"},
		{"relative path", func(t *testing.T, f *fixture) RepairOptions {
			return RepairOptions{Paths: []string{"live"}}
		}, true, "absolute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, smallTree)
			o := tc.plant(t, f)
			before := listing(t, f.base)
			rep, err := f.run(t, nil, o)
			switch {
			case tc.fails && (err == nil || !strings.Contains(err.Error(), tc.problem)):
				t.Errorf("Repair: %v, want an error saying %q", err, tc.problem)
			case !tc.fails && err != nil:
				t.Errorf("Repair: %v", err)
			case !tc.fails && (len(f.problems) != 1 || !strings.Contains(f.problems[0].Error, tc.problem)):
				t.Errorf("reported %v, want one problem saying %q", f.problems, tc.problem)
			}
			if !tc.fails && rep.Quarantined+rep.FilesRestored+rep.DirsCreated > 0 {
				t.Errorf("report %+v: something was done", rep)
			}
			wantSame(t, "the tree", before, listing(t, f.base))
		})
	}
}

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/checker"
	"github.com/kalaja/kalaja/internal/index"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store/local"
)

// repoModel is what a healthy repository holds, read in-process before a
// test damages a copy of it. It is the oracle for what check must report
// and what restore must still bring back.
type repoModel struct {
	src   string
	snaps []*snapshot.Snapshot // in the order they were made
	trees map[blob.ID]*snapshot.Tree
	locs  map[blob.Handle]index.Location
	packs map[blob.ID][]blob.Handle
	sums  []map[string][32]byte // per snapshot: file path -> SHA-256 of its content then
}

// damaged is one path of one snapshot that check reports, keyed as
// "snapshot-id path".
type damaged = map[string]bool

func damageKey(snap, p string) string { return snap + " " + p }

// loadModel opens the repository of e in-process and reads every snapshot
// in ids (in that order), every tree and the index.
func loadModel(t *testing.T, e *testEnv, src string, ids []string, sums []map[string][32]byte) *repoModel {
	t.Helper()
	ctx := context.Background()
	st, err := local.Open(e.repo)
	must(t, err)
	r, err := repo.Open(ctx, st, []byte("test password"))
	must(t, err)
	must(t, r.LoadIndex(ctx))
	m := &repoModel{src: src, trees: map[blob.ID]*snapshot.Tree{}, locs: map[blob.Handle]index.Location{},
		packs: map[blob.ID][]blob.Handle{}, sums: sums}
	for id, p := range r.Index().ByPack() {
		for _, en := range p.Entries {
			m.locs[en.Handle()] = index.Location{Pack: id, Ephemeral: p.Ephemeral, Entry: en}
			m.packs[id] = append(m.packs[id], en.Handle())
		}
	}
	var load func(id blob.ID)
	load = func(id blob.ID) {
		if m.trees[id] != nil {
			return
		}
		tr, err := r.LoadTree(ctx, id)
		must(t, err)
		m.trees[id] = tr
		for _, n := range tr.Nodes {
			if n.Kind == snapshot.Dir {
				load(*n.Subtree)
			}
		}
	}
	for _, s := range ids {
		id, err := blob.ParseID(s)
		must(t, err)
		sn, err := r.LoadSnapshot(ctx, id)
		must(t, err)
		m.snaps = append(m.snaps, sn)
		load(sn.Tree)
	}
	return m
}

// walk calls fn for every node of snapshot i below the root, depth first;
// fn returns whether to descend into a directory.
func (m *repoModel) walk(i int, fn func(p string, n *snapshot.Node) bool) {
	var rec func(id blob.ID, dir string)
	rec = func(id blob.ID, dir string) {
		for _, n := range m.trees[id].Nodes {
			p := path.Join(dir, string(n.Name))
			if fn(p, &n) && n.Kind == snapshot.Dir {
				rec(*n.Subtree, p)
			}
		}
	}
	rec(m.snaps[i].Tree, "/")
}

// damage returns what check must report when the blobs in bad cannot be
// read: for each snapshot not in lost, a directory whose tree is bad (and
// nothing below it; "/" for the root) and every file with a bad content blob.
func (m *repoModel) damage(bad map[blob.Handle]bool, lost []int) damaged {
	out := damaged{}
	for i, sn := range m.snaps {
		if slices.Contains(lost, i) {
			continue
		}
		id := sn.ID.String()
		if bad[blob.Handle{Type: blob.Tree, ID: sn.Tree}] {
			out[damageKey(id, "/")] = true
			continue
		}
		m.walk(i, func(p string, n *snapshot.Node) bool {
			switch n.Kind {
			case snapshot.Dir:
				if bad[blob.Handle{Type: blob.Tree, ID: *n.Subtree}] {
					out[damageKey(id, p)] = true
					return false
				}
			case snapshot.File:
				for _, c := range n.Content {
					if bad[blob.Handle{Type: blob.Data, ID: c}] {
						out[damageKey(id, p)] = true
						break
					}
				}
			}
			return true
		})
	}
	return out
}

// node returns the node at path rel below the source in
// snapshot i.
func (m *repoModel) node(t *testing.T, i int, rel string) *snapshot.Node {
	t.Helper()
	var found *snapshot.Node
	want := path.Join(m.src, rel)
	m.walk(i, func(p string, n *snapshot.Node) bool {
		if p == want {
			found = n
		}
		return strings.HasPrefix(want, p+"/")
	})
	if found == nil {
		t.Fatalf("%s is not in snapshot %d", want, i)
	}
	return found
}

// packPath returns the file of pack id in repository dir.
func packPath(dir string, id blob.ID) string {
	s := id.String()
	return filepath.Join(dir, "data", s[:2], s)
}

// flipBit flips one bit in the middle of the stored blob h.
func (m *repoModel) flipBit(t *testing.T, dir string, h blob.Handle) {
	t.Helper()
	loc := m.locs[h]
	f, err := os.OpenFile(packPath(dir, loc.Pack), os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	b := make([]byte, 1)
	off := int64(loc.Offset + loc.Length/2)
	_, err = f.ReadAt(b, off)
	must(t, err)
	b[0] ^= 0x08
	_, err = f.WriteAt(b, off)
	must(t, err)
}

// inPack returns every blob stored in the pack that holds h.
func (m *repoModel) inPack(h blob.Handle) map[blob.Handle]bool {
	out := map[blob.Handle]bool{}
	for _, b := range m.packs[m.locs[h].Pack] {
		out[b] = true
	}
	return out
}

// harm is what a corruption costs.
type harm struct {
	bad  map[blob.Handle]bool // blobs that can no longer be read
	lost []int                // snapshots (by position) that can no longer be loaded
	// suspect, if not nil, is what check without --read-data must take for
	// bad instead: it cannot tell which blobs of a damaged pack still read.
	suspect map[blob.Handle]bool
}

// corruption damages the repository copy in dir.
type corruption func(t *testing.T, m *repoModel, dir string) harm

// TestCheckFindsCorruption builds a repository with three snapshots, then
// for each kind of damage works on a fresh copy of it: check --read-data
// must exit 1 and name exactly the damaged snapshots and paths (computed
// from the healthy repository), plain check must find the same damage when
// it can see it and pass otherwise, and restore must bring back every
// undamaged file byte-identical and name the damaged ones.
func TestCheckFindsCorruption(t *testing.T) {
	e := newEnv(t)
	e.must("init")
	src := filepath.Join(t.TempDir(), "src")
	must(t, os.MkdirAll(filepath.Join(src, "docs"), 0o755))
	must(t, os.MkdirAll(filepath.Join(src, "keep"), 0o755))
	bigSize, midSize := 20<<20, 3<<20
	if testing.Short() {
		bigSize, midSize = 4<<20, 2<<20
	}
	write := func(rel string, data []byte) {
		must(t, os.WriteFile(filepath.Join(src, rel), data, 0o644))
	}
	write("big.bin", randomBytes(bigSize))
	write("docs/a.txt", []byte(strings.Repeat("unchanged text\n", 1000)))
	write("keep/x.txt", []byte("kept\n"))

	var ids []string
	var sums []map[string][32]byte
	for i, added := range []string{"", "added2.bin", "added3.bin"} {
		if added != "" {
			write(added, randomBytes(midSize))
		}
		write("docs/rev.txt", []byte(strings.Repeat("revision "+string(rune('1'+i))+"\n", 100)))
		ids = append(ids, e.backup(src))
		sums = append(sums, fileSums(t, src))
	}
	for _, args := range [][]string{{"check"}, {"check", "--read-data"}} {
		if rep := runCheck(t, e, args...); !rep.OK() {
			t.Fatalf("%v on the healthy repository: %+v", args, rep)
		}
	}
	m := loadModel(t, e, src, ids, sums)
	data := func(t *testing.T, i int, rel string, k int) blob.Handle {
		c := m.node(t, i, rel).Content
		return blob.Handle{Type: blob.Data, ID: c[k%len(c)]}
	}

	for _, tc := range []struct {
		name       string
		corrupt    corruption
		plainFinds bool   // whether check without --read-data sees it
		report     string // in the errors, or the notes when there are none
		after      func(t *testing.T, e *testEnv)
	}{
		{
			name: "bit flip in a data blob",
			corrupt: func(t *testing.T, m *repoModel, dir string) harm {
				h := data(t, 1, "added2.bin", 1)
				m.flipBit(t, dir, h)
				return harm{bad: map[blob.Handle]bool{h: true}}
			},
			report: "1 of",
		},
		{
			name: "bit flip in a tree blob",
			corrupt: func(t *testing.T, m *repoModel, dir string) harm {
				h := blob.Handle{Type: blob.Tree, ID: *m.node(t, 1, "docs").Subtree}
				m.flipBit(t, dir, h)
				return harm{bad: map[blob.Handle]bool{h: true}}
			},
			plainFinds: true,
			report:     "1 of",
		},
		{
			name: "truncated pack",
			corrupt: func(t *testing.T, m *repoModel, dir string) harm {
				h := data(t, 0, "big.bin", 0)
				p := packPath(dir, m.locs[h].Pack)
				fi, err := os.Stat(p)
				must(t, err)
				cut := fi.Size() / 2
				must(t, os.Truncate(p, cut))
				hs := m.inPack(h)
				beyond := map[blob.Handle]bool{}
				for b := range hs {
					if loc := m.locs[b]; int64(loc.Offset+loc.Length) > cut {
						beyond[b] = true
					}
				}
				return harm{bad: beyond, suspect: hs}
			},
			plainFinds: true,
			report:     "truncated",
		},
		{
			name: "deleted pack",
			corrupt: func(t *testing.T, m *repoModel, dir string) harm {
				h := data(t, 1, "added2.bin", 0)
				must(t, os.Remove(packPath(dir, m.locs[h].Pack)))
				return harm{bad: m.inPack(h)}
			},
			plainFinds: true,
			report:     "is missing",
		},
		{
			name: "deleted index files",
			corrupt: func(t *testing.T, m *repoModel, dir string) harm {
				ents, err := os.ReadDir(filepath.Join(dir, "index"))
				must(t, err)
				for _, en := range ents {
					must(t, os.Remove(filepath.Join(dir, "index", en.Name())))
				}
				bad := map[blob.Handle]bool{}
				for h := range m.locs {
					bad[h] = true
				}
				return harm{bad: bad}
			},
			plainFinds: true,
			report:     "not in any index",
			after: func(t *testing.T, e *testEnv) {
				e.backup(src)
				if rep := runCheck(t, e, "check", "--read-data"); !rep.OK() {
					t.Errorf("check after the next backup re-indexed the packs: %+v", rep)
				}
			},
		},
		{
			name: "swapped snapshot files",
			corrupt: func(t *testing.T, m *repoModel, dir string) harm {
				a := filepath.Join(dir, "snapshots", m.snaps[0].ID.String())
				b := filepath.Join(dir, "snapshots", m.snaps[1].ID.String())
				must(t, os.Rename(a, a+".tmp"))
				must(t, os.Rename(b, a))
				must(t, os.Rename(a+".tmp", b))
				return harm{lost: []int{0, 1}}
			},
			plainFinds: true,
			report:     "does not match its name",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "repo")
			ce := envAt(t, dir)
			must(t, os.CopyFS(ce.repo, os.DirFS(e.repo)))
			h := tc.corrupt(t, m, ce.repo)
			want := m.damage(h.bad, h.lost)
			t.Logf("expected damage: %v", slices.Sorted(maps.Keys(want)))

			rep := runCheck(t, ce, "check", "--read-data")
			assertDamage(t, "check --read-data", rep, want)
			assertNamed(t, rep, tc.report, m, h.lost)
			plain := runCheck(t, ce, "check")
			switch {
			case tc.plainFinds && h.suspect != nil:
				assertDamage(t, "check", plain, m.damage(h.suspect, h.lost))
			case tc.plainFinds:
				assertDamage(t, "check", plain, want)
			case !plain.OK():
				t.Errorf("check without --read-data reported %+v", plain)
			}
			assertNamed(t, plain, "", m, h.lost)

			for i := range m.snaps {
				m.assertRestore(t, ce, i, want, slices.Contains(h.lost, i))
			}
			if tc.after != nil {
				tc.after(t, ce)
			}
		})
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// fileSums returns the SHA-256 of every regular file below root by path.
func fileSums(t *testing.T, root string) map[string][32]byte {
	t.Helper()
	sums := map[string][32]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		sums[p] = sha256.Sum256(b)
		return err
	})
	must(t, err)
	return sums
}

// runCheck runs kalaja check with args and --json and returns its report;
// the exit code must be 0 for a clean report and 1 otherwise.
func runCheck(t *testing.T, e *testEnv, args ...string) *checker.Report {
	t.Helper()
	r := e.run(append(args, "--json")...)
	var rep checker.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("%v: exit %d, %v\nstdout:\n%s\nstderr:\n%s", args, r.code, err, r.stdout, r.stderr)
	}
	want := map[bool]int{true: exitOK, false: exitFailure}[rep.OK()]
	if rep.Tampered {
		want = exitTampered
	}
	if r.code != want {
		t.Errorf("%v: exit %d for a report with %d errors and %d damaged paths, want %d", args, r.code, len(rep.Errors), len(rep.Damaged), want)
	}
	return &rep
}

// assertDamage requires rep to list exactly the damage in want.
func assertDamage(t *testing.T, what string, rep *checker.Report, want damaged) {
	t.Helper()
	got := damaged{}
	for _, d := range rep.Damaged {
		k := damageKey(d.Snapshot, d.Path)
		if got[k] {
			t.Errorf("%s: %s listed twice", what, k)
		}
		got[k] = true
		if d.Blob == "" || d.Reason == "" {
			t.Errorf("%s: %+v lacks the blob or the reason", what, d)
		}
	}
	for k := range want {
		if !got[k] {
			t.Errorf("%s: damage to %s not reported", what, k)
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("%s: %s reported damaged but is not", what, k)
		}
	}
}

// assertNamed requires an error (or, when there is none, a note) of rep to
// contain s, and the errors to name each lost snapshot.
func assertNamed(t *testing.T, rep *checker.Report, s string, m *repoModel, lost []int) {
	t.Helper()
	lines := rep.Errors
	if len(lines) == 0 {
		lines = rep.Notes
	}
	if !strings.Contains(strings.Join(lines, "\n"), s) {
		t.Errorf("no error or note says %q: errors %q, notes %q", s, rep.Errors, rep.Notes)
	}
	for _, i := range lost {
		id := m.snaps[i].ID.Short()
		if !slices.ContainsFunc(rep.Errors, func(e string) bool { return strings.Contains(e, id) }) {
			t.Errorf("no error names snapshot %s: %q", id, rep.Errors)
		}
	}
}

// assertRestore restores snapshot i and requires every file that is not in
// want (nor below a directory in want) to come back byte-identical, each
// damaged path to be named on stderr, and the exit code to be 1 exactly when
// something is damaged or the snapshot is lost.
func (m *repoModel) assertRestore(t *testing.T, e *testEnv, i int, want damaged, lost bool) {
	t.Helper()
	id := m.snaps[i].ID.String()
	target := t.TempDir()
	r := e.run("restore", id, "--target", target)
	if lost {
		if r.code != exitFailure {
			t.Errorf("restore of lost snapshot %d: exit %d", i, r.code)
		}
		return
	}
	var hurt []string
	intact := 0
	if want[damageKey(id, "/")] {
		hurt = append(hurt, "/")
	} else {
		m.walk(i, func(p string, n *snapshot.Node) bool {
			if want[damageKey(id, p)] {
				hurt = append(hurt, p)
				return false
			}
			if n.Kind == snapshot.File {
				b, err := os.ReadFile(filepath.Join(target, p))
				if err != nil || sha256.Sum256(b) != m.sums[i][p] {
					t.Errorf("snapshot %d: undamaged %s not restored intact (%v)", i, p, err)
				}
				intact++
			}
			return true
		})
	}
	t.Logf("snapshot %d: %d files restored intact, damaged %q", i, intact, hurt)
	if wantCode := map[bool]int{true: exitFailure, false: exitOK}[len(hurt) > 0]; r.code != wantCode {
		t.Errorf("restore of snapshot %d: exit %d, want %d\nstderr:\n%s", i, r.code, wantCode, r.stderr)
	}
	for _, p := range hurt {
		if !strings.Contains(r.stderr, p) {
			t.Errorf("restore of snapshot %d does not name damaged %s:\n%s", i, p, r.stderr)
		}
	}
}

// TestBackupUnreadableSource backs up, as an unprivileged user, a tree
// holding a file and a directory that user cannot read: the backup must name
// both, exit 3 and still save a snapshot of everything else.
func TestBackupUnreadableSource(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run kalaja as another user and to make files it cannot read")
	}
	const nobody = 65534
	// t.TempDir is private to root; this directory lets nobody in.
	base, err := os.MkdirTemp("", "kalaja-unreadable-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	must(t, os.Chmod(base, 0o755))
	bin := filepath.Join(base, "kalaja")
	b, err := os.ReadFile(kalajaBin)
	must(t, err)
	must(t, os.WriteFile(bin, b, 0o755))

	e := &testEnv{t: t, repo: filepath.Join(base, "repo")}
	state := filepath.Join(base, "state")
	must(t, os.Mkdir(state, 0o700))
	must(t, os.Chown(state, nobody, nobody))
	e.vars = []string{"KALAJA_REPOSITORY=" + e.repo, "KALAJA_PASSWORD=test password", "KALAJA_STATE_DIR=" + state}
	e.must("init")
	must(t, filepath.WalkDir(e.repo, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, nobody, nobody)
	}))

	src := filepath.Join(base, "src")
	must(t, os.MkdirAll(filepath.Join(src, "locked"), 0o700))
	must(t, os.MkdirAll(filepath.Join(src, "open"), 0o755))
	must(t, os.Chmod(src, 0o755))
	readable := map[string][]byte{"ok.txt": []byte("readable\n"), "open/big.bin": randomBytes(3 << 20)}
	for rel, data := range readable {
		must(t, os.WriteFile(filepath.Join(src, rel), data, 0o644))
	}
	must(t, os.WriteFile(filepath.Join(src, "secret"), []byte("root only\n"), 0o600))
	must(t, os.WriteFile(filepath.Join(src, "locked", "inside"), []byte("root only\n"), 0o644))

	cmd := exec.Command(bin, "backup", "--json", src)
	cmd.Dir = base
	cmd.Env = append(os.Environ(), e.vars...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Skipf("cannot run kalaja as uid %d: %v", nobody, err)
	}
	if code := cmd.ProcessState.ExitCode(); code != exitPartial {
		t.Fatalf("backup as uid %d: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", nobody, code, exitPartial, stdout.String(), stderr.String())
	}
	for _, p := range []string{filepath.Join(src, "secret"), filepath.Join(src, "locked")} {
		if !strings.Contains(stderr.String(), p+": permission denied") {
			t.Errorf("stderr does not name %s:\n%s", p, stderr.String())
		}
	}
	var out struct {
		Snapshot string
		Summary  struct{ Errors int }
	}
	if err := json.Unmarshal([]byte(stdout.String()), &out); err != nil || out.Snapshot == "" || out.Summary.Errors != 2 {
		t.Fatalf("backup printed %q (%v), want a snapshot with 2 errors", stdout.String(), err)
	}

	if rep := runCheck(t, e, "check", "--read-data"); !rep.OK() {
		t.Errorf("check: %+v", rep)
	}
	target := t.TempDir()
	e.must("restore", out.Snapshot, "--target", target)
	for rel, data := range readable {
		if got, err := os.ReadFile(filepath.Join(target, src, rel)); err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s not restored intact (%v)", rel, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(target, src, "secret")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("unreadable file restored: %v", err)
	}
	if ents, err := os.ReadDir(filepath.Join(target, src, "locked")); err != nil || len(ents) != 0 {
		t.Errorf("unreadable directory restored as %v (%v), want it empty", ents, err)
	}
}

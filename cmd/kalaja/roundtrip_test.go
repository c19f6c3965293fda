package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/testtree"
)

// generate fills the new directory dir with testtree.Generate and makes sure
// the test's cleanup can remove it even without root.
func generate(t *testing.T, dir string, o testtree.Options) testtree.Manifest {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := testtree.MakeRemovable(dir); err != nil {
			t.Error(err)
		}
	})
	m, err := testtree.Generate(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range m.Skipped {
		t.Logf("testtree skipped %s", s)
	}
	return m
}

// assertSameTree fails t for every difference testtree.Compare finds between
// the trees at want and got, holes included.
func assertSameTree(t *testing.T, want, got string) {
	t.Helper()
	n := 0
	for _, d := range testtree.Compare(want, got, testtree.CompareOptions{Sparse: true}) {
		if n++; n <= 30 {
			t.Error(d)
		}
	}
	if n > 30 {
		t.Errorf("... %d differences in all", n)
	}
}

// ancestors returns the directories from "/" (excluded) down to p
// (excluded): ancestors("/a/b/c") is ["/a", "/a/b"].
func ancestors(p string) []string {
	var out []string
	for d := path.Dir(p); d != "/"; d = path.Dir(d) {
		out = append(out, d)
	}
	slices.Reverse(out)
	return out
}

// walkPaths returns the absolute paths of root and everything below it in
// depth-first, byte order: the order kalaja ls prints a snapshot in.
func walkPaths(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		out = append(out, p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// kindName returns the snapshot node type ls --json prints for mode.
func kindName(mode fs.FileMode) string {
	switch {
	case mode.IsDir():
		return "dir"
	case mode&fs.ModeSymlink != 0:
		return "symlink"
	case mode&fs.ModeNamedPipe != 0:
		return "fifo"
	case mode&fs.ModeSocket != 0:
		return "socket"
	case mode&fs.ModeCharDevice != 0:
		return "chardev"
	case mode&fs.ModeDevice != 0:
		return "dev"
	}
	return "file"
}

// jsonLines decodes one JSON document per line of out into a slice of T.
func jsonLines[T any](t *testing.T, out string) []T {
	t.Helper()
	var vs []T
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var v T
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("decode %q: %v", out, err)
		}
		vs = append(vs, v)
	}
	return vs
}

// roundTripOptions is the tree TestRoundTrip backs up: a few hundred files,
// the largest several chunks (1 MiB on average) long.
func roundTripOptions() testtree.Options {
	o := testtree.Options{Seed: 7, Files: 300, MaxFileSize: 5 << 20, Devices: true}
	if testing.Short() {
		o.Files, o.MaxFileSize = 150, 3<<20
	}
	return o
}

// mutation changes a backed-up tree; it returns the diff code it expects
// for each path it touches, relative to the tree's root.
type mutation struct {
	name string
	do   func(t *testing.T, root string) map[string]string
}

// mutations edit, add, delete, chmod, rename and retype parts of a tree made
// by testtree.Generate. Parent directories whose entries change get "U"
// because their mtime changes.
var mutations = []mutation{
	{"edit keeping size and mtime", func(t *testing.T, root string) map[string]string {
		p := filepath.Join(root, "content/text.txt")
		var st unix.Stat_t
		must(t, unix.Lstat(p, &st))
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		must(t, err)
		_, err = f.WriteAt([]byte("EDITED"), 100)
		must(t, err)
		must(t, f.Close())
		must(t, unix.UtimesNano(p, []unix.Timespec{st.Atim, st.Mtim}))
		return map[string]string{"content/text.txt": "M"}
	}},
	{"flip one byte of a multi-chunk file", func(t *testing.T, root string) map[string]string {
		p := filepath.Join(root, "content/large-random.bin")
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		must(t, err)
		b := make([]byte, 1)
		_, err = f.ReadAt(b, 3<<19)
		must(t, err)
		b[0] ^= 0x40
		_, err = f.WriteAt(b, 3<<19)
		must(t, err)
		must(t, f.Close())
		return map[string]string{"content/large-random.bin": "M"}
	}},
	{"add a file and a directory", func(t *testing.T, root string) map[string]string {
		must(t, os.WriteFile(filepath.Join(root, "content/added.txt"), []byte("new file\n"), 0o640))
		must(t, os.MkdirAll(filepath.Join(root, "added-dir/sub"), 0o750))
		must(t, os.WriteFile(filepath.Join(root, "added-dir/sub/f"), make([]byte, 3<<20), 0o600))
		return map[string]string{"content/added.txt": "+", "content": "U", ".": "U",
			"added-dir": "+", "added-dir/sub": "+", "added-dir/sub/f": "+"}
	}},
	{"delete a file and a directory tree", func(t *testing.T, root string) map[string]string {
		must(t, os.Remove(filepath.Join(root, "sizes/0000512")))
		must(t, os.RemoveAll(filepath.Join(root, "empty-nested")))
		return map[string]string{"sizes/0000512": "-", "sizes": "U", ".": "U",
			"empty-nested": "-", "empty-nested/a": "-", "empty-nested/a/b": "-",
			"empty-nested/a/b/c": "-", "empty-nested/a/sibling": "-"}
	}},
	{"chmod", func(t *testing.T, root string) map[string]string {
		must(t, os.Chmod(filepath.Join(root, "perms/mode-0644"), 0o604))
		return map[string]string{"perms/mode-0644": "U"}
	}},
	{"set an xattr", func(t *testing.T, root string) map[string]string {
		must(t, unix.Lsetxattr(filepath.Join(root, "xattrs/binary-value"), "user.kalaja.added", []byte("v"), 0))
		return map[string]string{"xattrs/binary-value": "U"}
	}},
	{"rename", func(t *testing.T, root string) map[string]string {
		must(t, os.Rename(filepath.Join(root, "content/random.bin"), filepath.Join(root, "content/renamed.bin")))
		return map[string]string{"content/random.bin": "-", "content/renamed.bin": "+", "content": "U"}
	}},
	{"replace a file with a symlink", func(t *testing.T, root string) map[string]string {
		p := filepath.Join(root, "content/one-byte")
		must(t, os.Remove(p))
		must(t, os.Symlink("text.txt", p))
		return map[string]string{"content/one-byte": "T", "content": "U"}
	}},
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRoundTrip backs up a tree, changes it and backs it up again, then
// restores both snapshots and requires each to be identical to its source,
// content and metadata, holes included. It also checks that ls lists every
// path and diff reports exactly the changes.
func TestRoundTrip(t *testing.T) {
	e := newEnv(t)
	e.must("init")
	// Every directory exists before the first backup, so that the
	// directories above src do not change between the two snapshots.
	base := t.TempDir()
	src, orig := filepath.Join(base, "src"), filepath.Join(base, "orig")
	out1, out2 := filepath.Join(base, "out1"), filepath.Join(base, "out2")
	o := roundTripOptions()
	generate(t, src, o)
	generate(t, orig, o)
	for _, d := range []string{out1, out2} {
		must(t, os.Mkdir(d, 0o700))
		t.Cleanup(func() { testtree.MakeRemovable(d) })
	}
	snap1 := e.backup(src)

	want := map[string]string{}
	for _, m := range mutations {
		for p, code := range m.do(t, src) {
			if c, ok := want[p]; ok && c != code {
				t.Fatalf("mutation %s: %s is both %s and %s", m.name, p, c, code)
			}
			want[p] = code
		}
	}
	snap2 := e.backup(src)

	e.must("restore", snap1, "--target", out1)
	assertSameTree(t, orig, filepath.Join(out1, src))
	// The second restore of snap2 replaces every entry the first made.
	e.must("restore", snap2, "--target", out2)
	e.must("restore", snap2, "--target", out2)
	assertSameTree(t, src, filepath.Join(out2, src))

	t.Run("ls", func(t *testing.T) {
		paths := append(ancestors(src), walkPaths(t, src)...)
		wantText := strings.Join(paths, "\n") + "\n"
		if got := e.must("ls", snap2).stdout; got != wantText {
			t.Errorf("ls printed %d bytes in %d lines, want %d bytes in %d lines", len(got), strings.Count(got, "\n"), len(wantText), len(paths))
		}
		entries := jsonLines[lsJSON](t, e.must("ls", "--json", snap2).stdout)
		if len(entries) != len(paths) {
			t.Fatalf("ls --json printed %d entries, want %d", len(entries), len(paths))
		}
		for i, p := range paths {
			fi, err := os.Lstat(p)
			must(t, err)
			if got := entries[i]; got.Path != snapshot.Name(p) || got.Type != kindName(fi.Mode()) {
				t.Errorf("ls entry %d is %q (%s), want %q (%s)", i, got.Path, got.Type, p, kindName(fi.Mode()))
			}
		}
	})

	t.Run("diff", func(t *testing.T) {
		type change struct {
			Change string
			Path   snapshot.Name
		}
		got := map[string]string{}
		for _, c := range jsonLines[change](t, e.must("diff", "--json", snap1, snap2).stdout) {
			got[string(c.Path)] = c.Change
		}
		above := ancestors(src)
		for p, code := range got {
			if slices.Contains(above, p) && code == "U" {
				delete(got, p) // other programs may add to /tmp meanwhile
			}
		}
		wantAbs := map[string]string{}
		for p, code := range want {
			wantAbs[path.Join(src, p)] = code
		}
		for p, code := range wantAbs {
			if got[p] != code {
				t.Errorf("diff: %s is %q, want %q", p, got[p], code)
			}
		}
		for p, code := range got {
			if _, ok := wantAbs[p]; !ok {
				t.Errorf("diff: unexpected %s %s", code, p)
			}
		}
	})

	t.Run("include", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			patterns []string
		}{
			{"name glob", []string{"*.txt"}},
			{"directory name", []string{"dir ë ç 日本 🎉"}},
			{"path globs", []string{src + "/perms/*-0555", src + "/content/large-*"}},
			{"name and path", []string{"mode-04??", src + "/tree/*/*.md"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				testInclude(t, e, snap2, src, tc.patterns)
			})
		}
	})
}

// testInclude restores snapshot id of src with --include patterns and
// requires exactly the matching paths, everything below them and their
// parent directories, each identical to its source.
func testInclude(t *testing.T, e *testEnv, id, src string, patterns []string) {
	want := map[string]bool{}
	for _, p := range walkPaths(t, src) {
		sel := matchAny(patterns, p)
		for _, a := range ancestors(p) {
			sel = sel || matchAny(patterns, a)
		}
		if sel {
			want[p] = true
			for _, a := range ancestors(p) {
				want[a] = true
			}
		}
	}
	if !want[src] {
		t.Fatalf("patterns %q select nothing", patterns)
	}
	target := t.TempDir()
	t.Cleanup(func() { testtree.MakeRemovable(target) })
	args := []string{"restore", id, "--target", target}
	for _, p := range patterns {
		args = append(args, "--include", p)
	}
	e.must(args...)
	got := map[string]bool{}
	for _, p := range walkPaths(t, target)[1:] {
		got[strings.TrimPrefix(p, target)] = true
	}
	for p := range want {
		if !got[p] {
			t.Errorf("%q not restored", p)
		}
	}
	for p := range got {
		if !want[p] {
			t.Errorf("%q restored but not selected", p)
		}
	}
	for _, d := range testtree.Compare(src, filepath.Join(target, src), testtree.CompareOptions{Sparse: true}) {
		if d.What != "missing" {
			t.Error(d)
		}
	}
}

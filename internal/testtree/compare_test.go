package testtree

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestCompareCopy(t *testing.T) {
	cp, err := exec.LookPath("cp")
	if err != nil {
		t.Skip("no cp")
	}
	a, _ := generate(t, Options{Seed: 9, Devices: true})
	b := t.TempDir()
	t.Cleanup(func() { MakeRemovable(b) })
	if out, err := exec.Command(cp, "-a", a+"/.", b).CombinedOutput(); err != nil {
		t.Skipf("cp -a is not GNU cp or failed: %v\n%s", err, out)
	}
	for _, d := range Compare(a, b, CompareOptions{Sparse: true}) {
		t.Error(d)
	}
}

// A mutation changes one property of tree b, restoring every mtime it
// touches as a side effect, and names the differences Compare must report.
type mutation struct {
	name string
	do   func(t *testing.T, b string)
	want []string // "path what", in Compare's order
	opts CompareOptions
	need Trait // skip unless the manifest has an entry with these traits
	root bool  // needs root
}

func TestCompareMutations(t *testing.T) {
	o := Options{Seed: 3, Files: 120, MaxFileSize: 256 << 10, Devices: true}
	a, m := generate(t, o)
	hasDevice := slices.ContainsFunc(m.Entries, func(e Entry) bool { return e.Path == "special/char-1-3" })
	for _, mu := range mutations() {
		t.Run(mu.name, func(t *testing.T) {
			if mu.root && os.Geteuid() != 0 {
				t.Skip("needs root")
			}
			if mu.need != 0 && len(m.Paths(mu.need)) == 0 {
				t.Skip("host could not make the property")
			}
			if strings.HasPrefix(mu.name, "rdev") && !hasDevice {
				t.Skip("no device nodes")
			}
			b, _ := generate(t, o)
			mu.do(t, b)
			var got []string
			for _, d := range Compare(a, b, mu.opts) {
				t.Log(d)
				got = append(got, d.Path+" "+d.What)
			}
			if !slices.Equal(got, mu.want) {
				t.Errorf("got  %q\nwant %q", got, mu.want)
			}
		})
	}
}

func mutations() []mutation {
	return []mutation{
		{
			name: "content one byte",
			do:   func(t *testing.T, b string) { flipByte(t, b, "content/random.bin", 12345) },
			want: []string{"content/random.bin content"},
		},
		{
			name: "content last byte of a large file",
			do:   func(t *testing.T, b string) { flipByte(t, b, "content/large-random.bin", 256<<10-1) },
			want: []string{"content/large-random.bin content"},
		},
		{
			name: "content inside a hole",
			do:   func(t *testing.T, b string) { flipByte(t, b, "sparse/64MiB-few-extents", 40<<20) },
			want: []string{"sparse/64MiB-few-extents content"},
		},
		{
			name: "size grows",
			do: func(t *testing.T, b string) {
				defer keep(t, b, "content/text.txt")()
				appendTo(t, filepath.Join(b, "content/text.txt"), "x")
			},
			want: []string{"content/text.txt size"},
		},
		{
			name: "size one byte to empty",
			do: func(t *testing.T, b string) {
				defer keep(t, b, "content/one-byte")()
				check(t, os.Truncate(filepath.Join(b, "content/one-byte"), 0))
			},
			want: []string{"content/one-byte size"},
		},
		{
			name: "mode",
			do:   func(t *testing.T, b string) { check(t, unix.Chmod(filepath.Join(b, "perms/mode-0644"), 0o640)) },
			want: []string{"perms/mode-0644 mode"},
		},
		{
			name: "mode setuid lost",
			do:   func(t *testing.T, b string) { check(t, unix.Chmod(filepath.Join(b, "perms/mode-4755"), 0o755)) },
			want: []string{"perms/mode-4755 mode"},
		},
		{
			name: "mode sticky dir lost",
			do:   func(t *testing.T, b string) { check(t, unix.Chmod(filepath.Join(b, "perms/sticky-1777"), 0o777)) },
			want: []string{"perms/sticky-1777 mode"},
		},
		{
			name: "uid",
			do:   func(t *testing.T, b string) { check(t, unix.Lchown(filepath.Join(b, "owners/1234-5678"), 1235, -1)) },
			want: []string{"owners/1234-5678 uid"},
			root: true, need: Owner,
		},
		{
			name: "gid",
			do:   func(t *testing.T, b string) { check(t, unix.Lchown(filepath.Join(b, "owners/1234-5678"), -1, 5679)) },
			want: []string{"owners/1234-5678 gid"},
			root: true, need: Owner,
		},
		{
			name: "owner of a symlink",
			do:   func(t *testing.T, b string) { check(t, unix.Lchown(filepath.Join(b, "links/owned-1234-5678"), 0, 0)) },
			want: []string{"links/owned-1234-5678 uid", "links/owned-1234-5678 gid"},
			root: true, need: Owner,
		},
		{
			name: "mtime one nanosecond",
			do:   func(t *testing.T, b string) { shiftMtime(t, b, "times/1960-01-01-with-ns", time.Nanosecond) },
			want: []string{"times/1960-01-01-with-ns mtime"},
		},
		{
			name: "mtime of a dir",
			do:   func(t *testing.T, b string) { shiftMtime(t, b, "empty-nested/a", time.Second) },
			want: []string{"empty-nested/a mtime"},
		},
		{
			name: "mtime of a symlink",
			do:   func(t *testing.T, b string) { shiftMtime(t, b, "links/relative", -time.Nanosecond) },
			want: []string{"links/relative mtime"},
		},
		{
			name: "symlink target",
			do: func(t *testing.T, b string) {
				defer keep(t, b, "links", "links/dangling")()
				p := filepath.Join(b, "links/dangling")
				check(t, os.Remove(p))
				check(t, os.Symlink("does/not/exist/either", p))
			},
			want: []string{"links/dangling target"},
		},
		{
			name: "kind symlink to file",
			do: func(t *testing.T, b string) {
				defer keep(t, b, "links")()
				p := filepath.Join(b, "links/relative")
				check(t, os.Remove(p))
				check(t, os.WriteFile(p, nil, 0o644))
			},
			want: []string{"links/relative kind"},
		},
		{
			name: "kind fifo to file",
			do: func(t *testing.T, b string) {
				defer keep(t, b, "special")()
				p := filepath.Join(b, "special/fifo")
				check(t, os.Remove(p))
				check(t, os.WriteFile(p, nil, 0o644))
			},
			want: []string{"special/fifo kind"},
		},
		{
			name: "hard link broken",
			do:   func(t *testing.T, b string) { breakLink(t, b, "hardlinks/b/two") },
			want: []string{"hardlinks/a/one hardlinks", "hardlinks/b/two hardlinks", "hardlinks/c/d/three hardlinks"},
		},
		{
			name: "hard link added",
			do: func(t *testing.T, b string) {
				defer keep(t, b, "content")()
				check(t, os.Remove(filepath.Join(b, "content/empty-too")))
				check(t, os.Link(filepath.Join(b, "content/empty"), filepath.Join(b, "content/empty-too")))
			},
			want: []string{"content/empty hardlinks", "content/empty-too mode", "content/empty-too mtime", "content/empty-too hardlinks"},
		},
		{
			name: "xattr removed",
			do: func(t *testing.T, b string) {
				check(t, unix.Lremovexattr(filepath.Join(b, "xattrs/binary-value"), "user.kalaja.test"))
			},
			want: []string{"xattrs/binary-value xattr"},
			need: XAttr,
		},
		{
			name: "xattr value on a dir",
			do: func(t *testing.T, b string) {
				check(t, unix.Lsetxattr(filepath.Join(b, "xattrs/dir"), "user.kalaja.test", []byte("other"), 0))
			},
			want: []string{"xattrs/dir xattr"},
			need: XAttr,
		},
		{
			name: "xattr empty value removed",
			do: func(t *testing.T, b string) {
				check(t, unix.Lremovexattr(filepath.Join(b, "xattrs/empty-value"), "user.kalaja.test"))
			},
			want: []string{"xattrs/empty-value xattr"},
			need: XAttr,
		},
		{
			name: "xattr added",
			do: func(t *testing.T, b string) {
				check(t, unix.Lsetxattr(filepath.Join(b, "content/text.txt"), "user.other", nil, 0))
			},
			want: []string{"content/text.txt xattr"},
			need: XAttr,
		},
		{
			name: "empty dir removed",
			do: func(t *testing.T, b string) {
				defer keep(t, b, "empty-nested/a/b")()
				check(t, os.Remove(filepath.Join(b, "empty-nested/a/b/c")))
			},
			want: []string{"empty-nested/a/b/c missing"},
		},
		{
			name: "dir with content removed",
			do: func(t *testing.T, b string) {
				defer keep(t, b, "names")()
				check(t, os.RemoveAll(filepath.Join(b, "names/dir ë ç 日本 🎉")))
			},
			want: []string{"names/dir ë ç 日本 🎉 missing"},
		},
		{
			name: "file added",
			do: func(t *testing.T, b string) {
				defer keep(t, b, "empty")()
				check(t, os.WriteFile(filepath.Join(b, "empty/new"), nil, 0o644))
			},
			want: []string{"empty/new extra"},
		},
		{
			name: "socket removed",
			do: func(t *testing.T, b string) {
				defer keep(t, b, "special")()
				check(t, os.Remove(filepath.Join(b, "special/socket")))
			},
			want: []string{"special/socket missing"},
		},
		{
			name: "deep file removed",
			do: func(t *testing.T, b string) {
				defer keep(t, b, filepath.Dir(deepBottom))()
				check(t, os.Remove(filepath.Join(b, deepBottom)))
			},
			want: []string{deepBottom + " missing"},
		},
		{
			name: "name normalised to NFD",
			do: func(t *testing.T, b string) {
				defer keep(t, b, "names")()
				check(t, os.Rename(filepath.Join(b, "names/çelës-Ë-Ç.txt"), filepath.Join(b, "names/c\u0327ele\u0308s-E\u0308-C\u0327.txt")))
			},
			want: []string{"names/c\u0327ele\u0308s-E\u0308-C\u0327.txt extra", "names/çelës-Ë-Ç.txt missing"},
		},
		{
			name: "invalid UTF-8 name replaced",
			do: func(t *testing.T, b string) {
				defer keep(t, b, "names")()
				check(t, os.Rename(filepath.Join(b, "names/\xff\xfe-invalid-utf8"), filepath.Join(b, "names/\ufffd\ufffd-invalid-utf8")))
			},
			want: []string{"names/\ufffd\ufffd-invalid-utf8 extra", "names/\xff\xfe-invalid-utf8 missing"},
		},
		{
			name: "rdev",
			do: func(t *testing.T, b string) {
				defer keep(t, b, "special", "special/char-1-3")()
				p := filepath.Join(b, "special/char-1-3")
				check(t, os.Remove(p))
				check(t, unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))))
				check(t, unix.Chmod(p, 0o666))
			},
			want: []string{"special/char-1-3 rdev"},
			root: true,
		},
		{
			name: "sparse lost",
			do:   func(t *testing.T, b string) { fillHoles(t, b, "sparse/hole-at-end") },
			want: []string{"sparse/hole-at-end sparse"},
			opts: CompareOptions{Sparse: true},
			need: Sparse,
		},
		{
			name: "sparse lost but not asked",
			do:   func(t *testing.T, b string) { fillHoles(t, b, "sparse/hole-at-end") },
			need: Sparse,
		},
	}
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// keep records the times of rels below root and returns a func restoring
// them.
func keep(t *testing.T, root string, rels ...string) func() {
	t.Helper()
	saved := make([][]unix.Timespec, len(rels))
	for i, rel := range rels {
		var st unix.Stat_t
		check(t, unix.Lstat(filepath.Join(root, rel), &st))
		saved[i] = []unix.Timespec{st.Atim, st.Mtim}
	}
	return func() {
		for i, rel := range rels {
			check(t, unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(root, rel), saved[i], unix.AT_SYMLINK_NOFOLLOW))
		}
	}
}

func shiftMtime(t *testing.T, root, rel string, d time.Duration) {
	var st unix.Stat_t
	p := filepath.Join(root, rel)
	check(t, unix.Lstat(p, &st))
	mtime := time.Unix(st.Mtim.Sec, st.Mtim.Nsec).Add(d)
	check(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{st.Atim, timespec(mtime)}, unix.AT_SYMLINK_NOFOLLOW))
}

func flipByte(t *testing.T, root, rel string, off int64) {
	defer keep(t, root, rel)()
	f, err := os.OpenFile(filepath.Join(root, rel), os.O_RDWR, 0)
	check(t, err)
	defer f.Close()
	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	check(t, err)
	b[0] ^= 0x5a
	_, err = f.WriteAt(b, off)
	check(t, err)
}

func appendTo(t *testing.T, p, s string) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	check(t, err)
	_, err = f.WriteString(s)
	check(t, err)
	check(t, f.Close())
}

// fillHoles rewrites every byte of rel in place, so its content stays the
// same but no hole is left.
func fillHoles(t *testing.T, root, rel string) {
	defer keep(t, root, rel)()
	p := filepath.Join(root, rel)
	data, err := os.ReadFile(p)
	check(t, err)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	check(t, err)
	_, err = f.WriteAt(data, 0)
	check(t, err)
	check(t, f.Close())
}

// breakLink replaces rel by a copy of its inode that keeps content, mode,
// ownership, xattrs and mtime but not the link.
func breakLink(t *testing.T, root, rel string) {
	defer keep(t, root, filepath.Dir(rel))()
	p := filepath.Join(root, rel)
	tmp := p + ".tmp"
	var st unix.Stat_t
	check(t, unix.Lstat(p, &st))
	data, err := os.ReadFile(p)
	check(t, err)
	check(t, os.WriteFile(tmp, data, 0o600))
	xs, err := UserXattrs(p)
	check(t, err)
	for n, v := range xs {
		check(t, unix.Lsetxattr(tmp, n, []byte(v), 0))
	}
	check(t, unix.Lchown(tmp, int(st.Uid), int(st.Gid)))
	check(t, unix.Chmod(tmp, st.Mode&0o7777))
	check(t, unix.UtimesNanoAt(unix.AT_FDCWD, tmp, []unix.Timespec{st.Atim, st.Mtim}, 0))
	check(t, os.Rename(tmp, p))
}

// deepBottom is the file at the bottom of the deep path, spelled out
// independently of the generator.
var deepBottom = func() string {
	p := "deep"
	for i := range 40 {
		p += fmt.Sprintf("/level-%02d-ë-dddddddddddddddd", i)
	}
	return p + "/bottom.txt"
}()

func TestCompareRootErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	for _, c := range []struct{ a, b, want string }{
		{missing, dir, ". error a"},
		{dir, missing, ". error b"},
	} {
		got := Compare(c.a, c.b, CompareOptions{})
		if len(got) != 1 {
			t.Fatalf("Compare(%s, %s) = %v, want one error", c.a, c.b, got)
		}
		d := got[0]
		side := "a"
		if d.A == "" {
			side = "b"
		}
		if s := d.Path + " " + d.What + " " + side; s != c.want {
			t.Errorf("Compare(%s, %s) = %v, want %s", c.a, c.b, d, c.want)
		}
	}
	if d := Compare(dir, dir, CompareOptions{}); d != nil {
		t.Errorf("empty dir against itself: %v", d)
	}
}

func TestDifferenceString(t *testing.T) {
	d := Difference{Path: "a\nb", What: "mode", A: "0644", B: "0600"}
	if got, want := d.String(), `"a\nb": mode: a=0644 b=0600`; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
}

func BenchmarkCompare(b *testing.B) {
	a, m := generate(b, Options{Seed: 1, Files: 400, MaxFileSize: 4 << 20})
	c, _ := generate(b, Options{Seed: 1, Files: 400, MaxFileSize: 4 << 20})
	var size int64
	for _, e := range m.Entries {
		if e.Kind == File {
			fi, err := os.Lstat(filepath.Join(a, e.Path))
			if err != nil {
				b.Fatal(err)
			}
			size += fi.Size()
		}
	}
	b.SetBytes(size)
	for b.Loop() {
		if d := Compare(a, c, CompareOptions{Sparse: true}); d != nil {
			b.Fatal(d)
		}
	}
}

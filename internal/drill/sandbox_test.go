package drill

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPrepareRefuses(t *testing.T) {
	tmp := t.TempDir()
	home := filepath.Join(tmp, "home", "user")
	foreign := filepath.Join(tmp, "foreign")
	file := filepath.Join(tmp, "file")
	for _, d := range []string{home, foreign} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(foreign, "keep.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{"dangling": filepath.Join(tmp, "missing"), "to-etc": "/etc", "to-root": "/", "to-home": home, "to-usr-lib": "/usr/lib", "to-tmp": "/tmp"}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(tmp, name)); err != nil {
			t.Fatal(err)
		}
	}
	p := Policy{Home: home}
	tests := []struct {
		name, dir string
		force     bool
	}{
		{"root", "/", false},
		{"root forced", "/", true},
		{"etc", "/etc", false},
		{"etc forced", "/etc", true},
		{"below etc", "/etc/kalaja-drill", false},
		{"usr", "/usr", false},
		{"usr local", "/usr/local", true},
		{"home", "/home", false},
		{"a user's home", "/home/someone", false},
		{"root's home", "/root", false},
		{"var", "/var", false},
		{"below var", "/var/lib/kalaja-drill", false},
		{"var tmp", "/var/tmp", false},
		{"tmp", "/tmp", false},
		{"tmp with dots", "/tmp/../tmp/./", false},
		{"dev", "/dev/shm", false},
		{"proc", "/proc/self", false},
		{"HOME", home, false},
		{"HOME forced", home, true},
		{"ancestor of HOME", filepath.Dir(home), false},
		{"relative ancestor", filepath.Join(home, "..", ".."), false},
		{"symlink to /etc", filepath.Join(tmp, "to-etc"), false},
		{"symlink to /", filepath.Join(tmp, "to-root"), true},
		{"symlink to HOME", filepath.Join(tmp, "to-home"), false},
		{"symlink to /usr/lib", filepath.Join(tmp, "to-usr-lib"), false},
		{"symlink to /tmp", filepath.Join(tmp, "to-tmp"), false},
		{"path through a symlink to /etc", filepath.Join(tmp, "to-etc", "new"), false},
		{"non-empty folder", foreign, false},
		{"symlink to a missing folder", filepath.Join(tmp, "dangling"), false},
		{"a file", file, true},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sb, err := Prepare(tt.dir, Policy{Home: p.Home, Force: tt.force})
			if err == nil {
				sb.Close()
				t.Fatalf("Prepare(%q) accepted %s", tt.dir, sb.Root())
			}
			if !errors.Is(err, ErrUnsafe) {
				t.Errorf("Prepare(%q) = %v, want an error wrapping ErrUnsafe", tt.dir, err)
			}
		})
	}
	if _, err := os.Stat("/etc/kalaja-drill"); err == nil {
		t.Error("/etc/kalaja-drill was created")
	}
	if b, err := os.ReadFile(filepath.Join(foreign, "keep.txt")); err != nil || string(b) != "mine" {
		t.Errorf("the foreign folder's file changed: %q, %v", b, err)
	}
	entries, _ := os.ReadDir(foreign)
	if len(entries) != 1 {
		t.Errorf("the foreign folder got new entries: %v", entries)
	}
}

func TestPrepareAccepts(t *testing.T) {
	tmp := t.TempDir()
	foreign := filepath.Join(tmp, "foreign")
	os.MkdirAll(foreign, 0o755)
	os.WriteFile(filepath.Join(foreign, "keep.txt"), []byte("mine"), 0o644)
	os.Mkdir(filepath.Join(tmp, "empty"), 0o755)
	os.Symlink(filepath.Join(tmp, "empty"), filepath.Join(tmp, "link"))
	tests := []struct {
		name, dir, root string
		force           bool
	}{
		{"new folder with new parents", filepath.Join(tmp, "a", "b", "c"), filepath.Join(tmp, "a", "b", "c"), false},
		{"the same again (marked)", filepath.Join(tmp, "a", "b", "c"), filepath.Join(tmp, "a", "b", "c"), false},
		{"folder holding a sandbox", tmp + "/a/b", "", false},
		{"symlink to an empty folder", filepath.Join(tmp, "link"), filepath.Join(tmp, "empty"), false},
		{"non-empty folder with --force", foreign, filepath.Join(foreign, forcedDir), true},
		{"and again", foreign, filepath.Join(foreign, forcedDir), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sb, err := Prepare(tt.dir, Policy{Home: "/root", Force: tt.force})
			if tt.root == "" {
				if err == nil {
					t.Fatalf("Prepare(%q) accepted a non-empty folder (it holds c)", tt.dir)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer sb.Close()
			if sb.Root() != tt.root {
				t.Errorf("root %s, want %s", sb.Root(), tt.root)
			}
			if b, err := os.ReadFile(filepath.Join(tt.root, Marker)); err != nil || string(b) != markerText {
				t.Errorf("marker: %q, %v", b, err)
			}
		})
	}
	if b, err := os.ReadFile(filepath.Join(foreign, "keep.txt")); err != nil || string(b) != "mine" {
		t.Errorf("the foreign folder's file changed: %q, %v", b, err)
	}
}

func TestOpenNeedsMarker(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir, Policy{}); !errors.Is(err, ErrUnsafe) {
		t.Errorf("Open of an unmarked folder: %v", err)
	}
	os.WriteFile(filepath.Join(dir, Marker), []byte("something else"), 0o644)
	if _, err := Open(dir, Policy{}); !errors.Is(err, ErrUnsafe) {
		t.Errorf("Open of a folder with a wrong marker: %v", err)
	}
	for _, d := range []string{"/", "/etc", "/tmp"} {
		if _, err := Open(d, Policy{}); !errors.Is(err, ErrUnsafe) {
			t.Errorf("Open(%s): %v", d, err)
		}
	}
}

// outside is a tree next to the sandbox that no attack may change.
type outside struct {
	dir   string
	files map[string][]byte
}

func newOutside(t *testing.T) *outside {
	o := &outside{dir: t.TempDir(), files: map[string][]byte{}}
	for _, name := range []string{"secret.txt", "dir/inner.docx", "hardlinked.txt"} {
		p := filepath.Join(o.dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		b := []byte("outside content of " + name + strings.Repeat(" lorem ipsum", 100))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		o.files[p] = b
	}
	return o
}

func (o *outside) check(t *testing.T) {
	t.Helper()
	for p, want := range o.files {
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s outside the sandbox was changed (err %v)", p, err)
		}
	}
}

// escapes plants every way out of the sandbox we know of into DataDir.
func escapes(t *testing.T, sb *Sandbox, o *outside) {
	dir := sb.Path(DataDir)
	os.MkdirAll(dir, 0o755)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(filepath.Join(o.dir, "secret.txt"), filepath.Join(dir, "link-to-secret.txt")))
	must(os.Symlink(filepath.Join(o.dir, "dir"), filepath.Join(dir, "link-to-dir")))
	must(os.Symlink("../../../"+filepath.Base(o.dir), filepath.Join(dir, "relative-link")))
	must(os.Link(filepath.Join(o.dir, "hardlinked.txt"), filepath.Join(dir, "hardlink.txt")))
	must(unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "own.txt"), []byte("the sandbox's own file"), 0o644))
}

func TestSandboxRefusesEscapes(t *testing.T) {
	o := newOutside(t)
	sb, err := Prepare(filepath.Join(t.TempDir(), "sb"), Policy{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	escapes(t, sb, o)
	if err := unix.Mknod(sb.Path(DataDir+"/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Logf("no device node test: %v", err)
	}
	for _, p := range []string{
		DataDir + "/link-to-secret.txt", DataDir + "/link-to-dir/inner.docx", DataDir + "/relative-link/secret.txt",
		DataDir + "/hardlink.txt", DataDir + "/fifo", DataDir + "/null", "../outside", "/etc/passwd",
		filepath.Join(o.dir, "secret.txt"), Marker, ".",
	} {
		f, err := sb.OpenFile(p, os.O_RDWR, 0)
		if err == nil {
			f.Close()
			t.Errorf("OpenFile(%s) was allowed", p)
		} else if !errors.Is(err, ErrUnsafe) && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("OpenFile(%s) = %v, want ErrUnsafe", p, err)
		}
	}
	if err := sb.Rename(DataDir+"/own.txt", "../stolen.txt"); !errors.Is(err, ErrUnsafe) {
		t.Errorf("Rename out of the sandbox: %v", err)
	}
	if err := sb.Remove(DataDir + "/link-to-dir/inner.docx"); !errors.Is(err, ErrUnsafe) {
		t.Errorf("Remove through a symlink: %v", err)
	}
	if _, err := sb.OpenLoop("/dev/null", DataDir+"/own.txt"); err == nil {
		t.Error("OpenLoop accepted /dev/null")
	}
	o.check(t)
}

func TestAttacksStayInside(t *testing.T) {
	for _, name := range []string{EncryptRename, EncryptInPlace, Intermittent, EncodeBase64, WipeRandom, WipeZero, WipeTruncate, WipeDelete} {
		t.Run(name, func(t *testing.T) {
			o := newOutside(t)
			sb, err := Prepare(filepath.Join(t.TempDir(), "sb"), Policy{})
			if err != nil {
				t.Fatal(err)
			}
			defer sb.Close()
			escapes(t, sb, o)
			// The tree holds a hard link to a file outside: refused, but
			// deleting it only removes the sandbox's name for it.
			err = Attack(context.Background(), sb, name, AttackOptions{})
			if name == WipeDelete && err != nil || name != WipeDelete && !errors.Is(err, ErrUnsafe) {
				t.Errorf("attack on the tree: %v, want ErrUnsafe for the hard link", err)
			}
			if b, err := os.ReadFile(sb.Path(DataDir + "/own.txt")); err == nil && string(b) == "the sandbox's own file" {
				t.Error("the sandbox's own file was not attacked")
			}
			err = Attack(context.Background(), sb, name, AttackOptions{Only: []string{
				filepath.Join(o.dir, "secret.txt"), "../" + filepath.Base(o.dir) + "/secret.txt",
				DataDir + "/link-to-secret.txt", DataDir + "/hardlink.txt", DataDir + "/link-to-dir/inner.docx",
			}})
			if !errors.Is(err, ErrUnsafe) {
				t.Errorf("attack on paths out of the sandbox: %v, want ErrUnsafe", err)
			}
			o.check(t)
			if _, err := os.Lstat(sb.Path(Marker)); err != nil {
				t.Errorf("the marker is gone: %v", err)
			}
		})
	}
}

func TestResetRefusesMountPoint(t *testing.T) {
	o := newOutside(t)
	sb, err := Prepare(filepath.Join(t.TempDir(), "sb"), Policy{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	escapes(t, sb, o)
	mnt := sb.Path(DataDir + "/mnt")
	os.Mkdir(mnt, 0o755)
	if err := unix.Mount(o.dir, mnt, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("cannot bind-mount (needs root): %v", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	// The walk does not enter the mount (openat2 RESOLVE_NO_XDEV), and a
	// path into it is refused.
	if err := Attack(context.Background(), sb, WipeDelete, AttackOptions{}); err != nil {
		t.Errorf("attack on a tree holding a bind mount: %v", err)
	}
	if err := Attack(context.Background(), sb, WipeZero, AttackOptions{Only: []string{DataDir + "/mnt/secret.txt"}}); !errors.Is(err, ErrUnsafe) {
		t.Errorf("attack across a bind mount: %v, want ErrUnsafe", err)
	}
	if err := sb.Reset(); !errors.Is(err, ErrUnsafe) {
		t.Errorf("Reset across a bind mount: %v, want ErrUnsafe", err)
	}
	o.check(t)
}

func TestReset(t *testing.T) {
	o := newOutside(t)
	sb, err := Prepare(filepath.Join(t.TempDir(), "sb"), Policy{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	escapes(t, sb, o)
	ro := sb.Path("work/readonly")
	os.MkdirAll(ro, 0o755)
	os.WriteFile(ro+"/f", nil, 0o444)
	os.Chmod(ro, 0o555)
	if err := sb.Reset(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(sb.Root())
	if len(entries) != 1 || entries[0].Name() != Marker {
		t.Errorf("after Reset the sandbox holds %v", entries)
	}
	o.check(t)
}

func TestWipeRawRefusesForeignDevice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("losetup needs root")
	}
	progs := Programs{Env: os.Environ()}
	img := filepath.Join(t.TempDir(), "outside.img")
	want := bytes.Repeat([]byte("outside disk "), 100_000)
	if err := os.WriteFile(img, want, 0o600); err != nil {
		t.Fatal(err)
	}
	dev, err := progs.Output(context.Background(), "/", "losetup", "--find", "--show", img)
	if err != nil {
		t.Fatalf("losetup (needs root and the mount package): %v", err)
	}
	defer progs.Run(context.Background(), "/", "", "losetup", "-d", dev)
	sb, err := Prepare(filepath.Join(t.TempDir(), "sb"), Policy{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	os.MkdirAll(sb.Path(DataDir), 0o755)
	os.WriteFile(sb.Path(RawImage), []byte("the sandbox's own image"), 0o600)
	for _, d := range []string{dev, "/dev/null", "/dev/zero", sb.Path(RawImage)} {
		if err := Attack(context.Background(), sb, WipeRaw, AttackOptions{Device: d}); err == nil {
			t.Errorf("wipe-raw wrote to %s", d)
		}
	}
	if got, err := os.ReadFile(img); err != nil || !bytes.Equal(got, want) {
		t.Errorf("the outside disk image changed (%v)", err)
	}
}

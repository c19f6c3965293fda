package drill

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrUnsafe is wrapped by every refusal to use a directory as a sandbox and
// by every refusal to touch a path that is not inside the sandbox.
var ErrUnsafe = errors.New("unsafe for a drill")

// Marker is the name of the file that marks a directory as a drill
// sandbox. The drill writes it into a directory it created or adopted
// while empty, and nothing else in the sandbox is ever named like it.
const Marker = ".kalaja-drill"

// markerText is the content of the marker file.
const markerText = "kalaja drill sandbox v1: everything in this directory may be encrypted, wiped or deleted by 'kalaja drill'\n"

// forcedDir is the directory the drill creates for itself inside a
// non-empty directory when --force is given.
const forcedDir = "kalaja-drill"

// Policy says what Prepare and Open refuse besides the system folders.
type Policy struct {
	// Home is the user's home directory: refused, as are its ancestors.
	Home string
	// Force allows a non-empty directory the drill did not create: the
	// drill then works in a new subdirectory of it, "kalaja-drill", and
	// leaves everything else there alone. It never allows a system or
	// home folder.
	Force bool
}

// systemTrees are refused together with everything below them (but see
// userTmp), and so are their ancestors.
var systemTrees = []string{
	"/bin", "/boot", "/dev", "/efi", "/etc", "/lib", "/lib32", "/lib64", "/libx32",
	"/proc", "/run", "/sbin", "/snap", "/sys", "/usr", "/var",
}

// systemRoots are refused themselves, and so are their ancestors; a
// directory below them is fine.
var systemRoots = []string{"/", "/home", "/root", "/tmp", "/var/tmp", "/opt", "/srv", "/mnt", "/media"}

// userTmp is the one place below a system tree where a sandbox may live.
const userTmp = "/var/tmp"

// within reports whether p is root or below it; both must be clean and
// absolute.
func within(p, root string) bool {
	if root == "/" {
		return true
	}
	return p == root || strings.HasPrefix(p, root+"/")
}

// resolve returns the absolute, clean, symlink-free form of path, which
// need not exist: its longest existing prefix is resolved.
func resolve(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	var rest []string
	for p := abs; ; p = filepath.Dir(p) {
		real, err := filepath.EvalSymlinks(p)
		if err == nil {
			slices.Reverse(rest)
			return filepath.Join(append([]string{real}, rest...)...), nil
		}
		if !errors.Is(err, fs.ErrNotExist) || p == "/" {
			return "", err
		}
		if _, lerr := os.Lstat(p); lerr == nil {
			return "", fmt.Errorf("%w: %s is a symbolic link to a missing folder", ErrUnsafe, p)
		}
		rest = append(rest, filepath.Base(p))
	}
}

// checkPlace refuses a sandbox location that is a system or home folder,
// inside a system tree, or an ancestor of any of those. Both the path as
// given and its resolved form are checked.
func checkPlace(path, real string, p Policy) error {
	roots := slices.Clone(systemRoots)
	if p.Home != "" {
		roots = append(roots, filepath.Clean(p.Home))
	}
	var all []string
	for _, list := range [][]string{roots, systemTrees} {
		for _, r := range list {
			all = append(all, r)
			if rr, err := filepath.EvalSymlinks(r); err == nil && rr != r {
				all = append(all, rr)
			}
		}
	}
	for _, q := range []string{filepath.Clean(path), real} {
		if !filepath.IsAbs(q) {
			continue
		}
		for _, r := range all {
			if within(r, q) {
				return fmt.Errorf("%w: %s is a system or home folder, or contains one (%s)", ErrUnsafe, q, r)
			}
		}
		for _, t := range systemTrees {
			if within(q, t) && !strings.HasPrefix(q, userTmp+"/") {
				return fmt.Errorf("%w: %s is inside the system folder %s", ErrUnsafe, q, t)
			}
		}
		if filepath.Dir(q) == "/home" {
			return fmt.Errorf("%w: %s is a home folder", ErrUnsafe, q)
		}
	}
	return nil
}

// Sandbox is a directory the drill owns: it may encrypt, wipe and delete
// anything in it, and touches nothing outside it. Every path is resolved
// by the kernel beneath the sandbox's root (openat2 with RESOLVE_BENEATH,
// no symbolic links, no mount crossings), and only regular files with a
// single link are opened, so neither a symbolic link, a hard link, a bind
// mount nor a device node inside the sandbox leads outside it.
//
// A Sandbox holds an open directory: Close it. Its methods are safe for
// concurrent use.
type Sandbox struct {
	root string // resolved absolute path
	fd   int    // O_PATH descriptor of root
	dev  uint64 // device of root
}

// Prepare makes dir a sandbox for the parent side of a drill. dir may be
// missing (it is created), empty (it is adopted), or a sandbox the drill
// made before. A non-empty directory without the marker is refused unless
// p.Force is set, in which case the sandbox is a new "kalaja-drill"
// subdirectory of it. System and home folders, their ancestors, and
// symbolic links to any of them are always refused. Refusals wrap
// ErrUnsafe.
func Prepare(dir string, p Policy) (*Sandbox, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: no sandbox directory given", ErrUnsafe)
	}
	real, err := resolve(dir)
	if err != nil {
		return nil, fmt.Errorf("resolve sandbox %s: %w", dir, err)
	}
	if err := checkPlace(dir, real, p); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(real); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", ErrUnsafe, real)
	}
	if err := os.MkdirAll(real, 0o700); err != nil {
		return nil, fmt.Errorf("create sandbox: %w", err)
	}
	if err := adopt(real); err != nil {
		if !p.Force || !errors.Is(err, errForeign) {
			return nil, err
		}
		real = filepath.Join(real, forcedDir)
		if err := os.Mkdir(real, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create sandbox: %w", err)
		}
		if err := adopt(real); err != nil {
			return nil, err
		}
	}
	return Open(real, p)
}

// errForeign marks a non-empty directory the drill did not create.
var errForeign = fmt.Errorf("%w: the directory is not empty and was not created by the drill (use an empty or new directory, or --force to work in a subdirectory of it)", ErrUnsafe)

// adopt writes the marker into dir if it is empty, or checks that it is
// already a sandbox.
func adopt(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrUnsafe, dir)
	}
	if isSandbox(dir) {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s: %w", dir, errForeign)
	}
	f, err := os.OpenFile(filepath.Join(dir, Marker), os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("mark sandbox: %w", err)
	}
	_, err = f.WriteString(markerText)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("mark sandbox: %w", err)
	}
	return nil
}

// isSandbox reports whether dir holds a regular marker file with the
// marker text.
func isSandbox(dir string) bool {
	fi, err := os.Lstat(filepath.Join(dir, Marker))
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	b, err := os.ReadFile(filepath.Join(dir, Marker))
	return err == nil && string(b) == markerText
}

// Open opens an existing sandbox, as the attack and workload processes
// do: dir must pass the same checks as in Prepare and hold the marker.
// It never creates or adopts anything. Refusals wrap ErrUnsafe.
func Open(dir string, p Policy) (*Sandbox, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: no sandbox directory given", ErrUnsafe)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("open sandbox: %w", err)
	}
	if real, err = filepath.Abs(real); err != nil {
		return nil, fmt.Errorf("open sandbox: %w", err)
	}
	if err := checkPlace(dir, real, p); err != nil {
		return nil, err
	}
	if !isSandbox(real) {
		return nil, fmt.Errorf("%w: %s is not a drill sandbox (no %s marker)", ErrUnsafe, real, Marker)
	}
	fd, err := unix.Open(real, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open sandbox %s: %w", real, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("open sandbox %s: %w", real, err)
	}
	return &Sandbox{root: real, fd: fd, dev: st.Dev}, nil
}

// Root returns the sandbox's resolved absolute path.
func (s *Sandbox) Root() string { return s.root }

// Close releases the sandbox's directory descriptor.
func (s *Sandbox) Close() error { return unix.Close(s.fd) }

// Path returns the absolute path of rel, a path relative to the root.
func (s *Sandbox) Path(rel string) string { return filepath.Join(s.root, rel) }

// Rel turns path (absolute, or relative to the root) into a clean path
// relative to the root. It refuses, wrapping ErrUnsafe, a path that leaves
// the root lexically and the marker file itself; what the kernel resolves
// is checked when the path is opened.
func (s *Sandbox) Rel(path string) (string, error) {
	rel := path
	if filepath.IsAbs(path) {
		r, err := filepath.Rel(s.root, filepath.Clean(path))
		if err != nil {
			return "", fmt.Errorf("%w: %s: %v", ErrUnsafe, path, err)
		}
		rel = r
	}
	rel = filepath.Clean(rel)
	if rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
		return "", fmt.Errorf("%w: %s is outside the sandbox %s", ErrUnsafe, path, s.root)
	}
	if rel == Marker {
		return "", fmt.Errorf("%w: %s is the sandbox marker", ErrUnsafe, path)
	}
	return rel, nil
}

// resolveFlags keep every lookup beneath the root, on its file system,
// without following any symbolic link.
const resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// openat opens rel beneath dirfd with the sandbox's resolve flags: a
// symbolic link anywhere in rel, the last element included, fails with
// an error wrapping ErrUnsafe.
func openat(dirfd int, rel string, flags int, perm uint32) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Mode: uint64(perm), Resolve: resolveFlags}
	for {
		fd, err := unix.Openat2(dirfd, rel, &how)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
			return -1, fmt.Errorf("%w: %s leads through a symbolic link or mount point", ErrUnsafe, rel)
		}
		return fd, err
	}
}

// OpenFile opens the regular file rel with flag (os.O_* flags). An
// existing file must be a regular file with one link on the sandbox's
// file system; with os.O_CREATE a missing file is created with perm.
// Refusals wrap ErrUnsafe.
func (s *Sandbox) OpenFile(rel string, flag int, perm os.FileMode) (*os.File, error) {
	rel, err := s.Rel(rel)
	if err != nil {
		return nil, err
	}
	if rel == "." {
		return nil, fmt.Errorf("%w: the sandbox root is not a file", ErrUnsafe)
	}
	if flag&os.O_CREATE != 0 {
		fd, err := openat(s.fd, rel, flag|os.O_EXCL, uint32(perm.Perm()))
		if err == nil {
			return os.NewFile(uintptr(fd), s.Path(rel)), nil
		}
		if !errors.Is(err, unix.EEXIST) || flag&os.O_EXCL != 0 {
			return nil, fmt.Errorf("create %s: %w", rel, err)
		}
	}
	pfd, err := openat(s.fd, rel, unix.O_PATH, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", rel, err)
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return nil, fmt.Errorf("open %s: %w", rel, err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrUnsafe, rel)
	case st.Nlink != 1:
		return nil, fmt.Errorf("%w: %s has %d hard links (one may be outside the sandbox)", ErrUnsafe, rel, st.Nlink)
	case st.Dev != s.dev:
		return nil, fmt.Errorf("%w: %s is on another file system", ErrUnsafe, rel)
	}
	// Reopening the O_PATH descriptor opens exactly the inode checked.
	f, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", pfd), flag&^(os.O_CREATE|os.O_EXCL), 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", rel, err)
	}
	return f, nil
}

// ReadFile returns the content of the regular file rel.
func (s *Sandbox) ReadFile(rel string) ([]byte, error) {
	f, err := s.OpenFile(rel, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // read only
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", rel, err)
	}
	return b, nil
}

// WriteFile creates or replaces the content of the regular file rel.
func (s *Sandbox) WriteFile(rel string, data []byte, perm os.FileMode) error {
	f, err := s.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	return nil
}

// parent opens the directory holding rel and returns it with rel's last
// element, which is never "." or "..".
func (s *Sandbox) parent(rel string) (int, string, error) {
	rel, err := s.Rel(rel)
	if err != nil {
		return -1, "", err
	}
	if rel == "." {
		return -1, "", fmt.Errorf("%w: the sandbox root itself", ErrUnsafe)
	}
	fd, err := openat(s.fd, filepath.Dir(rel), unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, "", fmt.Errorf("open directory of %s: %w", rel, err)
	}
	return fd, filepath.Base(rel), nil
}

// MkdirAll creates the directory rel and its missing parents.
func (s *Sandbox) MkdirAll(rel string) error {
	rel, err := s.Rel(rel)
	if err != nil || rel == "." {
		return err
	}
	if err := s.MkdirAll(filepath.Dir(rel)); err != nil {
		return err
	}
	pfd, base, err := s.parent(rel)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if err := unix.Mkdirat(pfd, base, 0o755); err != nil && err != unix.EEXIST {
		return fmt.Errorf("mkdir %s: %w", rel, err)
	}
	return nil
}

// Rename renames oldRel to newRel, replacing newRel if it exists.
func (s *Sandbox) Rename(oldRel, newRel string) error {
	ofd, obase, err := s.parent(oldRel)
	if err != nil {
		return err
	}
	defer unix.Close(ofd)
	nfd, nbase, err := s.parent(newRel)
	if err != nil {
		return err
	}
	defer unix.Close(nfd)
	if err := unix.Renameat(ofd, obase, nfd, nbase); err != nil {
		return fmt.Errorf("rename %s to %s: %w", oldRel, newRel, err)
	}
	return nil
}

// Remove deletes the file (not directory) rel.
func (s *Sandbox) Remove(rel string) error {
	pfd, base, err := s.parent(rel)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if err := unix.Unlinkat(pfd, base, 0); err != nil {
		return fmt.Errorf("remove %s: %w", rel, err)
	}
	return nil
}

// Files returns the regular files below the directory rel, as paths
// relative to the root, without the marker, in the order a walk with
// readdir meets them: each folder's entries as the kernel lists them, not
// sorted, as Linux ransomware walks. Symbolic links and other special
// files are left out; so are folders that cannot be listed. A missing rel
// gives no files.
func (s *Sandbox) Files(rel string) ([]string, error) {
	rel, err := s.Rel(rel)
	if err != nil {
		return nil, err
	}
	var files []string
	var walk func(dir string) error
	walk = func(dir string) error {
		fd, err := openat(s.fd, dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			if dir == rel && errors.Is(err, unix.ENOENT) {
				return nil
			}
			return fmt.Errorf("list %s: %w", dir, err)
		}
		f := os.NewFile(uintptr(fd), dir)
		entries, err := f.ReadDir(-1)
		_ = f.Close() // a folder, read only
		if err != nil {
			return fmt.Errorf("list %s: %w", dir, err)
		}
		for _, e := range entries {
			p := filepath.Join(dir, e.Name())
			switch {
			case e.Type().IsRegular() && p != Marker:
				files = append(files, p)
			case e.IsDir():
				if err := walk(p); err != nil && !errors.Is(err, ErrUnsafe) {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(rel); err != nil {
		return nil, err
	}
	return files, nil
}

// Reset deletes everything in the sandbox except the marker. It never
// follows a symbolic link or crosses into another file system: a mount
// point inside the sandbox stops it with an error wrapping ErrUnsafe.
func (s *Sandbox) Reset() error {
	fd, err := openat(s.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("reset sandbox: %w", err)
	}
	defer unix.Close(fd)
	names, err := readNames(fd)
	if err != nil {
		return fmt.Errorf("reset sandbox: %w", err)
	}
	for _, name := range names {
		if name == Marker {
			continue
		}
		if err := removeAt(fd, name); err != nil {
			return fmt.Errorf("reset sandbox: %s: %w", name, err)
		}
	}
	return nil
}

// readNames lists the directory open as fd (read from a duplicate, so fd
// stays usable).
func readNames(fd int) ([]string, error) {
	dup, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dup), ".")
	defer func() { _ = f.Close() }() // a folder, read only
	return f.Readdirnames(-1)
}

// removeAt deletes name in the directory dirfd, and everything below it.
func removeAt(dirfd int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := unix.Unlinkat(dirfd, name, 0); err != nil && err != unix.ENOENT {
			return fmt.Errorf("remove %s: %w", name, err)
		}
		return nil
	}
	fd, err := openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer unix.Close(fd)
	if st.Mode&0o200 == 0 {
		if err := unix.Fchmod(fd, 0o700); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	names, err := readNames(fd)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	for _, n := range names {
		if err := removeAt(fd, n); err != nil {
			return fmt.Errorf("%s/%w", name, err)
		}
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// OpenLoop opens dev, a loop block device, for writing, after checking
// that its backing file is the regular file backingRel inside the
// sandbox and that the device is not in use (mounted). This is the only
// path outside the root the drill ever writes to. Refusals wrap
// ErrUnsafe.
func (s *Sandbox) OpenLoop(dev, backingRel string) (*os.File, error) {
	back, err := s.OpenFile(backingRel, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	var bst unix.Stat_t
	err = unix.Fstat(int(back.Fd()), &bst)
	_ = back.Close() // read only, and never read
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", backingRel, err)
	}
	// O_EXCL on a block device fails while it is mounted or claimed.
	f, err := os.OpenFile(dev, os.O_WRONLY|os.O_EXCL|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("open device %s: %w", dev, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK {
		_ = f.Close() // nothing written yet
		return nil, fmt.Errorf("%w: %s is not a block device", ErrUnsafe, dev)
	}
	info, err := unix.IoctlLoopGetStatus64(int(f.Fd()))
	if err != nil {
		_ = f.Close() // nothing written yet
		return nil, fmt.Errorf("%w: %s is not an attached loop device: %v", ErrUnsafe, dev, err)
	}
	if info.Device != bst.Dev || info.Inode != bst.Ino {
		_ = f.Close() // nothing written yet
		return nil, fmt.Errorf("%w: loop device %s is not backed by %s in the sandbox", ErrUnsafe, dev, backingRel)
	}
	return f, nil
}

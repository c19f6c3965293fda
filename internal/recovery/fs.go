package recovery

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/restorer"
	"github.com/kalaja/kalaja/internal/snapshot"
)

// The file system calls of a repair name an entry only relative to an open
// directory, one path element at a time, and never follow a symbolic link:
// the live tree is the attacker's.

const (
	dirFlags  = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	readFlags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
)

// openAt opens name in directory dirfd with flags, retrying on EINTR.
func openAt(dirfd int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// openRead opens the regular file name in dirfd for reading without
// following a symlink, blocking on a FIFO or, where the process may
// (owner or root), updating its access time.
func openRead(dirfd int, name string) (int, error) {
	fd, err := openAt(dirfd, name, readFlags|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		fd, err = openAt(dirfd, name, readFlags, 0)
	}
	return fd, err
}

// lstatAt returns what fstatat says of name in dirfd without following a
// symlink, or nil if there is no such entry.
func lstatAt(dirfd int, name string) (*unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// readNames returns the names in the directory open as fd, sorted.
func readNames(fd int, path string) ([]string, error) {
	dup, err := unix.Dup(fd)
	if err != nil {
		return nil, err
	}
	unix.CloseOnExec(dup)
	f := os.NewFile(uintptr(dup), path)
	defer func() { _ = f.Close() }() // a folder, read only
	names, err := f.Readdirnames(-1)
	slices.Sort(names)
	return names, err
}

// kindOf is the node kind of a stat mode, "" for an unknown type.
func kindOf(mode uint32) snapshot.Kind {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return snapshot.File
	case unix.S_IFDIR:
		return snapshot.Dir
	case unix.S_IFLNK:
		return snapshot.Symlink
	case unix.S_IFBLK:
		return snapshot.Dev
	case unix.S_IFCHR:
		return snapshot.CharDev
	case unix.S_IFIFO:
		return snapshot.FIFO
	case unix.S_IFSOCK:
		return snapshot.Socket
	}
	return ""
}

// modeOf is the file type bits of a node kind.
func modeOf(k snapshot.Kind) uint32 {
	return map[snapshot.Kind]uint32{
		snapshot.File: unix.S_IFREG, snapshot.Dir: unix.S_IFDIR, snapshot.Symlink: unix.S_IFLNK,
		snapshot.Dev: unix.S_IFBLK, snapshot.CharDev: unix.S_IFCHR, snapshot.FIFO: unix.S_IFIFO,
		snapshot.Socket: unix.S_IFSOCK,
	}[k]
}

func timespec(t snapshot.Time) unix.Timespec { return unix.Timespec{Sec: t.Sec, Nsec: t.Nsec} }

// procPath names the object open as fd (O_PATH included) for the calls
// that take no descriptor: the kernel resolves it to that very object.
func procPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// xattrs lists extended attributes through list and reads each through
// get; a file system without them yields none.
func xattrs(list func([]byte) (int, error), get func(name string, buf []byte) (int, error)) (map[string][]byte, error) {
	buf, err := growing(list)
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listxattr: %w", err)
	}
	out := map[string][]byte{}
	for name := range strings.SplitSeq(string(buf), "\x00") {
		if name == "" {
			continue
		}
		v, err := growing(func(b []byte) (int, error) { return get(name, b) })
		if errors.Is(err, unix.ENODATA) {
			continue // removed since the listing
		}
		if err != nil {
			return nil, fmt.Errorf("getxattr %s: %w", name, err)
		}
		out[name] = v
	}
	return out, nil
}

// growing calls fill with a buffer large enough for what it returns.
func growing(fill func([]byte) (int, error)) ([]byte, error) {
	for {
		n, err := fill(nil)
		if err != nil || n == 0 {
			return nil, err
		}
		buf := make([]byte, n)
		n, err = fill(buf)
		if errors.Is(err, unix.ERANGE) {
			continue // grew since the size was asked
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

func fdXattrs(fd int) (map[string][]byte, error) {
	return xattrs(func(b []byte) (int, error) { return unix.Flistxattr(fd, b) },
		func(name string, b []byte) (int, error) { return unix.Fgetxattr(fd, name, b) })
}

func pathXattrs(path string) (map[string][]byte, error) {
	return xattrs(func(b []byte) (int, error) { return unix.Listxattr(path, b) },
		func(name string, b []byte) (int, error) { return unix.Getxattr(path, name, b) })
}

// extraXattr reports whether a live attribute that the node lacks is to be
// removed: only those of the user namespace are, so that labels the system
// sets (security.*) are left to it.
func extraXattr(name string) bool { return strings.HasPrefix(name, "user.") }

// metaSame reports whether st and the attributes live (nil if the node's
// kind has none to compare) match node n: mode (not of symlinks), owner
// (compared only as root, who alone can set it), mtime and extended
// attributes (the node's, and no extra user.* ones).
func metaSame(st *unix.Stat_t, live map[string][]byte, n *snapshot.Node, isRoot bool) bool {
	if n.Kind != snapshot.Symlink && st.Mode&0o7777 != n.Mode {
		return false
	}
	if isRoot && (st.Uid != n.UID || st.Gid != n.GID) {
		return false
	}
	if st.Mtim != timespec(n.MTime) {
		return false
	}
	if live == nil {
		return true
	}
	for _, x := range n.Xattrs {
		if v, ok := live[string(x.Name)]; !ok || !bytes.Equal(v, x.Value) {
			return false
		}
	}
	for name := range live {
		if extraXattr(name) && !slices.ContainsFunc(n.Xattrs, func(x snapshot.Xattr) bool { return string(x.Name) == name }) {
			return false
		}
	}
	return true
}

// setMeta applies n's metadata to the file or directory open as f (through
// the restorer's rule) and removes the user.* attributes n lacks.
func setMeta(f *os.File, n *snapshot.Node) error {
	err := restorer.ApplyMeta(f, n)
	live, lerr := fdXattrs(int(f.Fd()))
	if lerr != nil {
		return errors.Join(err, lerr)
	}
	for name := range live {
		if extraXattr(name) && !slices.ContainsFunc(n.Xattrs, func(x snapshot.Xattr) bool { return string(x.Name) == name }) {
			err = errors.Join(err, os.NewSyscallError("removexattr "+name, unix.Fremovexattr(int(f.Fd()), name)))
		}
	}
	return err
}

// setSpecialMeta applies n's metadata to the symlink, FIFO, socket or
// device called name in dirfd. It acts on one descriptor of the entry,
// checked to be of n's kind, so that an entry swapped meanwhile for a
// symlink cannot redirect a chmod.
func setSpecialMeta(dirfd int, name string, n *snapshot.Node, isRoot bool) error {
	fd, err := openAt(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("open", err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return os.NewSyscallError("fstat", err)
	}
	if kindOf(st.Mode) != n.Kind {
		return fmt.Errorf("became a %s during the repair", kindOf(st.Mode))
	}
	var errs []error
	fail := func(op string, err error) {
		if err != nil {
			errs = append(errs, os.NewSyscallError(op, err))
		}
	}
	if err := unix.Fchownat(fd, "", int(n.UID), int(n.GID), unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); isRoot {
		fail("chown", err)
	}
	mt := timespec(n.MTime)
	ts := []unix.Timespec{mt, mt}
	if n.Kind == snapshot.Symlink {
		fail("utimensat", unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW))
		return errors.Join(errs...)
	}
	p := procPath(fd)
	fail("chmod", unix.Chmod(p, n.Mode))
	for _, x := range n.Xattrs {
		if err := unix.Setxattr(p, string(x.Name), x.Value, 0); !errors.Is(err, unix.ENOTSUP) {
			fail("setxattr "+string(x.Name), err)
		}
	}
	fail("utimensat", unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, 0))
	return errors.Join(errs...)
}

// specialXattrs returns the extended attributes of the entry name in
// dirfd, a FIFO, socket or device (nil for a symlink, whose attributes
// are not compared).
func specialXattrs(dirfd int, name string, k snapshot.Kind) (map[string][]byte, error) {
	if k == snapshot.Symlink {
		return nil, nil
	}
	fd, err := openAt(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("open", err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, os.NewSyscallError("fstat", err)
	}
	if kindOf(st.Mode) != k {
		return nil, fmt.Errorf("became a %s during the repair", kindOf(st.Mode))
	}
	return pathXattrs(procPath(fd))
}

// readlinkAt returns the target of the symlink name in dirfd.
func readlinkAt(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", os.NewSyscallError("readlink", err)
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

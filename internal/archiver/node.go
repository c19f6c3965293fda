package archiver

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/snapshot"
)

// nodeFromStat records what lstat says about name.
func nodeFromStat(name string, st *unix.Stat_t) (snapshot.Node, error) {
	n := snapshot.Node{
		Name:   snapshot.Name(name),
		Mode:   st.Mode & 0o7777,
		UID:    st.Uid,
		GID:    st.Gid,
		MTime:  snapshot.Time{Sec: st.Mtim.Sec, Nsec: st.Mtim.Nsec},
		Inode:  st.Ino,
		Device: st.Dev,
		Links:  uint64(st.Nlink),
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		n.Kind, n.Size = snapshot.File, uint64(st.Size)
		n.CTime = &snapshot.Time{Sec: st.Ctim.Sec, Nsec: st.Ctim.Nsec}
	case unix.S_IFDIR:
		n.Kind = snapshot.Dir
	case unix.S_IFLNK:
		n.Kind = snapshot.Symlink
	case unix.S_IFBLK:
		n.Kind, n.Rdev = snapshot.Dev, st.Rdev
	case unix.S_IFCHR:
		n.Kind, n.Rdev = snapshot.CharDev, st.Rdev
	case unix.S_IFIFO:
		n.Kind = snapshot.FIFO
	case unix.S_IFSOCK:
		n.Kind = snapshot.Socket
	default:
		return n, fmt.Errorf("%s: unknown file type %o", name, st.Mode&unix.S_IFMT)
	}
	if n.Kind != snapshot.File {
		n.Inode, n.Links = 0, 0
	}
	return n, nil
}

// readXattrs returns the extended attributes of path (not following a
// symlink). A file system without xattr support yields none. It first asks
// for the size of the name list, so that the common file without xattrs
// costs one system call and no allocation.
func readXattrs(path string) ([]snapshot.Xattr, error) {
	n, err := unix.Llistxattr(path, nil)
	var buf []byte
	for err == nil && n > 0 {
		buf = make([]byte, n)
		if n, err = unix.Llistxattr(path, buf); !errors.Is(err, unix.ERANGE) {
			break
		}
		n, err = unix.Llistxattr(path, nil) // names added since: ask again
	}
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.ENODATA) {
		return nil, nil
	}
	if err != nil {
		return nil, &os.PathError{Op: "listxattr", Path: path, Err: err}
	}
	var out []snapshot.Xattr
	for names := buf[:n]; len(names) > 0; {
		end := 0
		for end < len(names) && names[end] != 0 {
			end++
		}
		name := string(names[:end])
		if end < len(names) {
			end++
		}
		names = names[end:]
		if name == "" {
			continue
		}
		val, err := getXattr(path, name)
		if errors.Is(err, unix.ENODATA) {
			continue // removed since the listing
		}
		if err != nil {
			return nil, &os.PathError{Op: "getxattr " + name, Path: path, Err: err}
		}
		out = append(out, snapshot.Xattr{Name: snapshot.Name(name), Value: val})
	}
	return out, nil
}

func getXattr(path, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// openFile opens a regular file for reading without following a symlink,
// without blocking on a FIFO that replaced it, and without updating its
// access time where the caller may do that.
func openFile(path string) (*os.File, error) {
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	fd, err := unix.Open(path, flags|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		fd, err = unix.Open(path, flags, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	// Files are read once, front to back: a larger read-ahead overlaps the
	// disk with chunking and hashing.
	unix.Fadvise(fd, 0, 0, unix.FADV_SEQUENTIAL)
	f := os.NewFile(uintptr(fd), path)
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close() // read only, and never read
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		_ = f.Close() // read only, and never read
		return nil, fmt.Errorf("%s: changed into a %v while being backed up", path, fi.Mode().Type())
	}
	return f, nil
}

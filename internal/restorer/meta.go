package restorer

import (
	"errors"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/snapshot"
)

// applyMeta applies n's ownership, mode, extended attributes and times to
// path, through fd unless it is -1 (then a symlink itself is changed, not
// its target). A failed chown is an error only for root; all failures are
// joined in the error.
func applyMeta(path string, fd int, n *snapshot.Node, isRoot bool) error {
	var errs []error
	fail := func(op string, err error) {
		if err != nil {
			errs = append(errs, &os.PathError{Op: op, Path: path, Err: err})
		}
	}
	byFD := fd >= 0
	var err error
	if byFD {
		err = unix.Fchown(fd, int(n.UID), int(n.GID))
	} else {
		err = unix.Lchown(path, int(n.UID), int(n.GID))
	}
	if isRoot {
		fail("chown", err)
	}
	if n.Kind != snapshot.Symlink {
		if byFD {
			fail("chmod", unix.Fchmod(fd, n.Mode))
		} else {
			fail("chmod", unix.Chmod(path, n.Mode))
		}
	}
	for _, x := range n.Xattrs {
		if byFD {
			err = unix.Fsetxattr(fd, string(x.Name), x.Value, 0)
		} else {
			err = unix.Lsetxattr(path, string(x.Name), x.Value, 0)
		}
		if !errors.Is(err, unix.ENOTSUP) {
			fail("setxattr "+string(x.Name), err)
		}
	}
	mt := unix.Timespec{Sec: n.MTime.Sec, Nsec: n.MTime.Nsec}
	ts := [2]unix.Timespec{mt, mt}
	if byFD {
		fail("utimes", futimens(fd, &ts))
	} else {
		fail("utimes", unix.UtimesNanoAt(unix.AT_FDCWD, path, ts[:], unix.AT_SYMLINK_NOFOLLOW))
	}
	return errors.Join(errs...)
}

// futimens sets the times of the file open as fd: utimensat(2) with a NULL
// path acts on fd itself, and x/sys/unix has no wrapper for that.
func futimens(fd int, ts *[2]unix.Timespec) error {
	if _, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0); errno != 0 {
		return errno
	}
	return nil
}

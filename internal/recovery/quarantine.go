package recovery

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kalaja/kalaja/internal/fswatch"
	"github.com/kalaja/kalaja/internal/snapshot"
	"golang.org/x/sys/unix"
)

// QuarantineTime is the layout of the time that names a quarantine folder
// under snapshot.QuarantineName.
const QuarantineTime = "20060102T150405Z"

// DefaultQuarantine returns the quarantine folder for a repair of path at
// time now: snapshot.QuarantineName/<now in UTC as QuarantineTime> at the root of
// the file system holding path (the highest folder above it with the same
// device), so that moving an entry there is a rename. path must be
// absolute; if it does not exist, its nearest existing parent is used. It
// returns an error if no folder above path can be examined.
func DefaultQuarantine(path string, now time.Time) (string, error) {
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("quarantine for %q: not an absolute path", path)
	}
	p := filepath.Clean(path)
	var st unix.Stat_t
	for {
		err := unix.Lstat(p, &st)
		if err == nil {
			break
		}
		if p == "/" || !errors.Is(err, unix.ENOENT) {
			return "", &os.PathError{Op: "lstat", Path: p, Err: err}
		}
		p = filepath.Dir(p)
	}
	for p != "/" {
		var up unix.Stat_t
		parent := filepath.Dir(p)
		if err := unix.Lstat(parent, &up); err != nil {
			return "", &os.PathError{Op: "lstat", Path: parent, Err: err}
		}
		if up.Dev != st.Dev {
			break
		}
		p = parent
	}
	return filepath.Join(p, snapshot.QuarantineName, now.UTC().Format(QuarantineTime)), nil
}

// checkQuarantine refuses a quarantine folder that is not absolute and
// clean, that lies under one of paths other than inside a folder named
// snapshot.QuarantineName (which the repair leaves alone), or that holds one of
// paths.
func checkQuarantine(q string, paths []string) error {
	if !filepath.IsAbs(q) || filepath.Clean(q) != q {
		return fmt.Errorf("quarantine %q: not an absolute, clean path", q)
	}
	for _, p := range paths {
		if fswatch.Under(p, q) {
			return fmt.Errorf("quarantine %s holds %s, which is to be repaired", q, p)
		}
		if !fswatch.Under(q, p) {
			continue
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(q, p), "/")
		if !strings.Contains("/"+rel+"/", "/"+snapshot.QuarantineName+"/") {
			return fmt.Errorf("quarantine %s lies in %s, which is to be repaired; put it inside a folder named %s there, or elsewhere", q, p, snapshot.QuarantineName)
		}
	}
	return nil
}

// openNoFollow opens the directory at absolute path, one element at a time
// from the root, without following a symlink; with create, a missing
// folder is made (0700). It fails if an element is not a directory.
func openNoFollow(path string, create bool) (int, error) {
	fd, err := openAt(unix.AT_FDCWD, "/", dirFlags, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: "/", Err: err}
	}
	cur := "/"
	for name := range strings.SplitSeq(strings.TrimPrefix(path, "/"), "/") {
		if name == "" {
			continue
		}
		cur = filepath.Join(cur, name)
		next, err := openAt(fd, name, dirFlags, 0)
		if errors.Is(err, unix.ENOENT) && create {
			if err = unix.Mkdirat(fd, name, 0o700); err == nil || errors.Is(err, unix.EEXIST) {
				next, err = openAt(fd, name, dirFlags, 0)
			}
		}
		unix.Close(fd)
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return -1, fmt.Errorf("%s is not a folder (a symbolic link is not followed): %w", cur, err)
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: cur, Err: err}
		}
		fd = next
	}
	return fd, nil
}

// probeNoFollow checks that the part of absolute path that exists is a
// chain of folders, without following a symlink.
func probeNoFollow(path string) error {
	for p := path; ; p = filepath.Dir(p) {
		fd, err := openNoFollow(p, false)
		if err == nil {
			unix.Close(fd)
			return nil
		}
		if !errors.Is(err, unix.ENOENT) || p == "/" {
			return err
		}
	}
}

// suffixed is name for try 0, then name.1, name.2, ..., cut so that it
// stays a valid file name.
func suffixed(name string, try int) string {
	if try == 0 {
		return name
	}
	s := "." + strconv.Itoa(try)
	if len(name)+len(s) > 255 {
		name = name[:255-len(s)]
	}
	return name + s
}

// maxTries bounds the numeric suffixes tried for one name.
const maxTries = 10000

// errExists says that a move's destination exists: the next suffix is
// tried.
var errExists = errors.New("exists in the quarantine")

// quarantineDir opens folder name in qfd, making it if need be; a name
// taken by something else gets a numeric suffix.
func quarantineDir(qfd int, name string) (int, error) {
	for try := range maxTries {
		n := suffixed(name, try)
		if err := unix.Mkdirat(qfd, n, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return -1, os.NewSyscallError("mkdir", err)
		}
		fd, err := openAt(qfd, n, dirFlags, 0)
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			continue
		}
		if err != nil {
			return -1, os.NewSyscallError("open", err)
		}
		return fd, nil
	}
	return -1, fmt.Errorf("quarantine folder %s: %d names taken", name, maxTries)
}

// move moves the entry name in srcfd into folder qfd of the quarantine,
// under its own name or, if that is taken, the first free numbered one,
// which it returns. It never replaces anything. Across file systems the
// entry is copied (content, mode, owner as root, extended attributes,
// times), synced, and only then removed, piece by piece.
func move(srcfd int, name string, qfd int) (string, error) {
	for try := range maxTries {
		qn := suffixed(name, try)
		err := unix.Renameat2(srcfd, name, qfd, qn, unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EINVAL) {
			// A file system without RENAME_NOREPLACE: the quarantine is
			// the repair's own, so a check first is enough.
			if st, serr := lstatAt(qfd, qn); serr != nil || st != nil {
				continue
			}
			err = unix.Renameat(srcfd, name, qfd, qn)
		}
		if errors.Is(err, unix.EXDEV) {
			err = copyMove(srcfd, name, qfd, qn)
		}
		switch {
		case err == nil:
			return qn, nil
		case errors.Is(err, unix.EEXIST), errors.Is(err, errExists):
			continue
		}
		return "", fmt.Errorf("move into the quarantine: %w", err)
	}
	return "", fmt.Errorf("move into the quarantine: %d names taken", maxTries)
}

// copyMove moves name from srcfd to dst in dstfd by copying: the copy is
// made and synced before the entry is removed, and a folder is emptied one
// moved entry at a time. An entry that changes while it is copied is left
// where it is, with the error.
func copyMove(srcfd int, name string, dstfd int, dst string) error {
	st, err := lstatAt(srcfd, name)
	if err != nil || st == nil {
		return fmt.Errorf("lstat %s: %w", name, errors.Join(err, unix.ENOENT))
	}
	if err := copyEntry(srcfd, name, st, dstfd, dst); err != nil {
		return err
	}
	now, err := lstatAt(srcfd, name)
	if err != nil || now == nil || now.Ino != st.Ino || now.Dev != st.Dev {
		return fmt.Errorf("%s changed while it was copied into the quarantine; the original is left in place", name)
	}
	flags := 0
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		flags = unix.AT_REMOVEDIR
	}
	if err := unix.Unlinkat(srcfd, name, flags); err != nil {
		return fmt.Errorf("remove %s after copying it into the quarantine: %w", name, err)
	}
	return nil
}

// copyEntry copies the entry name in srcfd, whose lstat is st, to dst in
// dstfd (a folder with everything in it moved), with its metadata.
func copyEntry(srcfd int, name string, st *unix.Stat_t, dstfd int, dst string) error {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return copyFile(srcfd, name, st, dstfd, dst)
	case unix.S_IFDIR:
		if err := unix.Mkdirat(dstfd, dst, 0o700); err != nil {
			if errors.Is(err, unix.EEXIST) {
				return errExists
			}
			return os.NewSyscallError("mkdir", err)
		}
		src, err := openAt(srcfd, name, dirFlags, 0)
		if err != nil {
			return os.NewSyscallError("open", err)
		}
		defer unix.Close(src)
		out, err := openAt(dstfd, dst, dirFlags, 0)
		if err != nil {
			return os.NewSyscallError("open", err)
		}
		defer unix.Close(out)
		names, err := readNames(src, name)
		if err != nil {
			return err
		}
		var errs []error
		for _, n := range names {
			errs = append(errs, copyMove(src, n, out, n))
		}
		errs = append(errs, copyMeta(out, st, -1, ""), os.NewSyscallError("fsync", unix.Fsync(out)))
		return errors.Join(errs...)
	case unix.S_IFLNK:
		target, err := readlinkAt(srcfd, name)
		if err != nil {
			return err
		}
		if err := unix.Symlinkat(target, dstfd, dst); err != nil {
			if errors.Is(err, unix.EEXIST) {
				return errExists
			}
			return os.NewSyscallError("symlink", err)
		}
		return copyMeta(-1, st, dstfd, dst)
	default: // FIFO, socket, device
		if err := unix.Mknodat(dstfd, dst, st.Mode&(unix.S_IFMT|0o7777), int(st.Rdev)); err != nil {
			if errors.Is(err, unix.EEXIST) {
				return errExists
			}
			return os.NewSyscallError("mknod", err)
		}
		return copyMeta(-1, st, dstfd, dst)
	}
}

func copyFile(srcfd int, name string, st *unix.Stat_t, dstfd int, dst string) error {
	in, err := openRead(srcfd, name)
	if err != nil {
		return os.NewSyscallError("open", err)
	}
	src := os.NewFile(uintptr(in), name)
	defer func() { _ = src.Close() }() // read only
	var now unix.Stat_t
	if err := unix.Fstat(in, &now); err != nil || now.Ino != st.Ino || now.Dev != st.Dev {
		return fmt.Errorf("%s changed while it was copied into the quarantine: %w", name, errors.Join(err, unix.ESTALE))
	}
	out, err := openAt(dstfd, dst, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if errors.Is(err, unix.EEXIST) {
		return errExists
	}
	if err != nil {
		return os.NewSyscallError("create", err)
	}
	f := os.NewFile(uintptr(out), dst)
	defer func() { _ = f.Close() }() // for the error returns: the success path closes and checks
	if _, err := io.Copy(f, src); err != nil {
		return fmt.Errorf("copy %s: %w", name, err)
	}
	if xs, err := fdXattrs(in); err == nil {
		for k, v := range xs {
			_ = unix.Fsetxattr(out, k, v, 0) // best effort: the content is what matters
		}
	}
	if err := copyMeta(out, st, -1, ""); err != nil {
		return err
	}
	if err := unix.Fsync(out); err != nil {
		return os.NewSyscallError("fsync", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("copy %s: %w", name, err)
	}
	return nil
}

// copyMeta gives the copy owner (as root), mode and times of st: through
// fd if it is not -1, else to the entry name in dirfd without following it.
func copyMeta(fd int, st *unix.Stat_t, dirfd int, name string) error {
	var errs []error
	isRoot := os.Geteuid() == 0
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if fd >= 0 {
		if err := unix.Fchown(fd, int(st.Uid), int(st.Gid)); isRoot && err != nil {
			errs = append(errs, os.NewSyscallError("chown", err))
		}
		if err := unix.Fchmod(fd, st.Mode&0o7777); err != nil {
			errs = append(errs, os.NewSyscallError("chmod", err))
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, procPath(fd), ts, 0); err != nil {
			errs = append(errs, os.NewSyscallError("utimensat", err))
		}
		return errors.Join(errs...)
	}
	if err := unix.Fchownat(dirfd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); isRoot && err != nil {
		errs = append(errs, os.NewSyscallError("chown", err))
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		// The entry was made by copyEntry in the repair's own quarantine.
		if err := unix.Fchmodat(dirfd, name, st.Mode&0o7777, 0); err != nil {
			errs = append(errs, os.NewSyscallError("chmod", err))
		}
	}
	if err := unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		errs = append(errs, os.NewSyscallError("utimensat", err))
	}
	return errors.Join(errs...)
}

// Package local stores a repository in a directory of the local file system.
//
// Layout: config, keys/NAME, data/NN/NAME (NN: first two characters of NAME),
// index/NAME, snapshots/NAME, and tmp/ for objects being written. Every write
// goes to tmp/, is fsynced, renamed into place without replacing (renameat2
// RENAME_NOREPLACE, falling back to link+unlink), and the directory is fsynced.
// An object's stamp (store.FileInfo.Stamp) is its file's modification time:
// when the store wrote it.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/store"
)

// Local is a store in a local directory. It is safe for concurrent use,
// including by several processes on one or more hosts sharing the directory.
type Local struct {
	root string
}

var (
	_ store.Store   = (*Local)(nil)
	_ store.Stager  = (*Local)(nil)
	_ store.Remover = (*Local)(nil)
)

var dirs = append(slices.Clone(store.Listable), "tmp")

// Create makes the directory layout for a new repository at root. root may
// exist but must not hold a config.
func Create(root string) (*Local, error) {
	l := &Local{root: root}
	if _, err := os.Stat(l.path(store.Handle{Type: store.Config})); err == nil {
		return nil, fmt.Errorf("create repository at %s: a repository already exists there", root)
	}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, string(d)), 0o700); err != nil {
			return nil, fmt.Errorf("create repository: %w", err)
		}
	}
	for i := range 256 {
		if err := os.MkdirAll(filepath.Join(root, string(store.Packs), fmt.Sprintf("%02x", i)), 0o700); err != nil {
			return nil, fmt.Errorf("create repository: %w", err)
		}
	}
	return l, nil
}

// Open opens the repository directory at root. It returns an error wrapping
// blob.ErrNotFound if root holds no repository.
func Open(root string) (*Local, error) {
	l := &Local{root: root}
	if _, err := os.Stat(l.path(store.Handle{Type: store.Config})); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no repository at %s: %w", root, blob.ErrNotFound)
		}
		return nil, fmt.Errorf("open repository: %w", err)
	}
	return l, nil
}

// Location returns the directory.
func (l *Local) Location() string { return l.root }

func (l *Local) dir(t store.FileType, name string) string {
	if t == store.Packs {
		return filepath.Join(l.root, string(t), name[:min(2, len(name))])
	}
	return filepath.Join(l.root, string(t))
}

func (l *Local) path(h store.Handle) string {
	if h.Type == store.Config {
		return filepath.Join(l.root, "config")
	}
	return filepath.Join(l.dir(h.Type, h.Name), h.Name)
}

// Save implements store.Saver.
func (l *Local) Save(ctx context.Context, h store.Handle, data []byte) error {
	if err := h.Check(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s, err := l.Stage(h.Type)
	if err != nil {
		return fmt.Errorf("save %v: %w", h, err)
	}
	if _, err := s.Write(data); err != nil {
		s.Abort()
		return fmt.Errorf("save %v: %w", h, err)
	}
	return s.Commit(ctx, h.Name)
}

// Stage implements store.Stager: the object is written to a file in tmp/.
func (l *Local) Stage(t store.FileType) (store.Staged, error) {
	if err := t.Check(); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Join(l.root, "tmp"), strings.ReplaceAll(string(t), "/", "-")+"-*")
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", t, err)
	}
	// The lock tells CleanTemp that the file's writer is alive; the kernel
	// drops it when the writer dies, however it dies. It cannot be refused
	// on a new file; where the file system has no locks, CleanTemp cannot
	// take one either and removes nothing.
	_ = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	return &staged{l: l, t: t, f: f}, nil
}

// staged is an object being written to a temporary file.
type staged struct {
	l *Local
	t store.FileType
	f *os.File
}

func (s *staged) Write(p []byte) (int, error) { return s.f.Write(p) }

// Abort implements store.Staged.
func (s *staged) Abort() {
	// Abort has no error to return: a file that stays in tmp/ is unlocked
	// once closed, so CleanTemp removes it later.
	_ = s.f.Close()
	_ = os.Remove(s.f.Name())
}

// Commit implements store.Staged: fsync, rename into place without
// replacing, fsync the directory.
func (s *staged) Commit(ctx context.Context, name string) error {
	h := store.Handle{Type: s.t, Name: name}
	committed := false
	defer func() {
		if !committed {
			s.Abort()
		}
	}()
	if err := h.Check(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	l := s.l
	if h.Type == store.Packs || h.Type == store.LedgerRemovals {
		// Create made these directories; make one now, durably, if it is
		// missing (a copy of the repository that dropped empty
		// directories, or one created before ledger/removals existed).
		dir := l.dir(h.Type, h.Name)
		if err := os.Mkdir(dir, 0o700); err == nil {
			if err := syncDir(filepath.Dir(dir)); err != nil {
				return fmt.Errorf("save %v: %w", h, err)
			}
		} else if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("save %v: %w", h, err)
		}
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("save %v: sync: %w", h, err)
	}
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("save %v: %w", h, err)
	}
	final := l.path(h)
	if err := renameNoReplace(s.f.Name(), final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("save %v: %w", h, store.ErrExists)
		}
		return fmt.Errorf("save %v: %w", h, err)
	}
	committed = true
	return syncDir(filepath.Dir(final))
}

func renameNoReplace(from, to string) error {
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.EEXIST) {
		return fs.ErrExist
	}
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) {
		return err
	}
	// The file system lacks RENAME_NOREPLACE: link fails if the name exists.
	if err := os.Link(from, to); err != nil {
		return err
	}
	return os.Remove(from)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }() // a folder, read only; Sync reported its state
	if err := d.Sync(); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

func notFound(h store.Handle, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%v: %w", h, blob.ErrNotFound)
	}
	return fmt.Errorf("%v: %w", h, err)
}

// Load implements store.Loader.
func (l *Local) Load(ctx context.Context, h store.Handle) ([]byte, error) {
	if err := h.Check(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(l.path(h))
	if err != nil {
		return nil, notFound(h, err)
	}
	return b, nil
}

// ReadAt implements store.Loader.
func (l *Local) ReadAt(ctx context.Context, h store.Handle, p []byte, off int64) error {
	if err := h.Check(); err != nil {
		return err
	}
	// Plain system calls: an os.File costs five more per read (the
	// poller's fcntl and epoll_ctl calls, which fail for a regular file),
	// and a restore reads once per run of blobs.
	path := l.path(h)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return notFound(h, &os.PathError{Op: "open", Path: path, Err: err})
	}
	defer func() { _ = unix.Close(fd) }() // read only
	for n := 0; n < len(p); {
		m, err := unix.Pread(fd, p[n:], off+int64(n))
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return fmt.Errorf("read %v at %d: %w", h, off, err)
		case m == 0:
			return fmt.Errorf("read %v at %d: %w", h, off, io.ErrUnexpectedEOF)
		}
		n += m
	}
	return nil
}

// Prefetch asks the kernel to read object h into the page cache in the
// background (FADV_WILLNEED), for reads of it that will follow. It is only a
// hint: errors are ignored.
func (l *Local) Prefetch(h store.Handle) {
	if h.Check() != nil {
		return
	}
	fd, err := unix.Open(l.path(h), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	unix.Fadvise(fd, 0, 0, unix.FADV_WILLNEED)
	unix.Close(fd)
}

// Stat implements store.Lister.
func (l *Local) Stat(ctx context.Context, h store.Handle) (store.FileInfo, error) {
	if err := h.Check(); err != nil {
		return store.FileInfo{}, err
	}
	fi, err := os.Stat(l.path(h))
	if err != nil {
		return store.FileInfo{}, notFound(h, err)
	}
	return store.FileInfo{Name: h.Name, Size: fi.Size(), Stamp: fi.ModTime()}, nil
}

// List implements store.Lister.
func (l *Local) List(ctx context.Context, t store.FileType, fn func(store.FileInfo) error) error {
	if err := t.CheckListable(); err != nil {
		return fmt.Errorf("list: %w", err)
	}
	base := filepath.Join(l.root, string(t))
	dirs := []string{base}
	if t == store.Packs {
		sub, err := os.ReadDir(base)
		if err != nil {
			return fmt.Errorf("list %s: %w", t, err)
		}
		dirs = dirs[:0]
		for _, s := range sub {
			if s.IsDir() {
				dirs = append(dirs, filepath.Join(base, s.Name()))
			}
		}
	}
	for _, d := range dirs {
		ents, err := os.ReadDir(d)
		if errors.Is(err, fs.ErrNotExist) && t == store.LedgerRemovals {
			continue // a repository created before ledger/removals existed
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", t, err)
		}
		for _, e := range ents {
			if err := ctx.Err(); err != nil {
				return err
			}
			h := store.Handle{Type: t, Name: e.Name()}
			if !e.Type().IsRegular() || h.Check() != nil || l.dir(t, h.Name) != d {
				continue
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("list %s: %w", t, err)
			}
			if err := fn(store.FileInfo{Name: e.Name(), Size: fi.Size(), Stamp: fi.ModTime()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Remove implements store.Remover.
func (l *Local) Remove(ctx context.Context, h store.Handle) error {
	if err := h.Check(); err != nil {
		return err
	}
	if err := os.Remove(l.path(h)); err != nil {
		return notFound(h, err)
	}
	return syncDir(filepath.Dir(l.path(h)))
}

// CleanTemp removes the files in tmp/ that writers which died (a crash, kill
// -9) left behind: files older than age on which no live process holds the
// lock that Stage takes. age only covers the instant between a writer
// creating its file and locking it; any value over a few seconds is safe.
func (l *Local) CleanTemp(age time.Duration) error {
	dir := filepath.Join(l.root, "tmp")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("clean temporary files: %w", err)
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || time.Since(fi.ModTime()) <= age {
			continue
		}
		p := filepath.Join(dir, e.Name())
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			_ = os.Remove(p) // like the files skipped above: the next CleanTemp tries again
		}
		_ = f.Close() // opened only to lock it
	}
	return nil
}

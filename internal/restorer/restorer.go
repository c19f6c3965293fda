// Package restorer writes a snapshot back to disk. One goroutine lays out
// the tree (directories, links, special files, regular files created at
// their final size) while a pool of workers restores the content of the
// files already created: each file is cut into jobs of consecutive blobs,
// blobs that lie next to each other in a pack are read with one call, and
// all-zero blocks are skipped so sparse files stay sparse. A regular file
// stays open from its creation until its last job ends, when its metadata
// is applied through the open descriptor and its writeback started;
// directories get theirs, deepest first, at the very end. Every blob is
// verified against its ID.
//
// The restorer reads through Source, which *repo.Repository implements;
// the content pipeline needs only its Blobs part.
package restorer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/index"
	"github.com/kalaja/kalaja/internal/snapshot"
)

// Blobs is what restoring file content reads. Its methods are called from
// many goroutines at once and must be safe for concurrent use.
type Blobs interface {
	// Lookup returns where blob h is stored, and false if no index lists it.
	Lookup(h blob.Handle) (index.Location, bool)
	// ReadPack fills p from pack id starting at off.
	ReadPack(ctx context.Context, id blob.ID, p []byte, off int64) error
	// OpenBlob decrypts, verifies and, if need be, decompresses the
	// ciphertext of the blob at loc, which it may overwrite, and appends
	// the plaintext to buf[:0]. A plaintext that does not hash to loc.ID
	// is an error.
	OpenBlob(loc index.Location, ciphertext, buf []byte) ([]byte, error)
}

// Source is what a restore reads: trees, and the blobs of file content.
type Source interface {
	Blobs
	// LoadTree returns tree id decoded and validated by
	// snapshot.DecodeTree, or an error.
	LoadTree(ctx context.Context, id blob.ID) (*snapshot.Tree, error)
}

// Options configures a restore.
type Options struct {
	Target string
	// Include selects what to restore by snapshot path ("/home/a/x"); a
	// selected directory brings everything below it. nil selects all.
	Include func(path string) bool
	// OnError is called (serialised) with the snapshot path of everything
	// that could not be restored in full; the restore goes on with the rest.
	OnError  func(path string, err error)
	Progress *Progress // may be nil
}

// Progress counts restored files and bytes; read it from any goroutine.
type Progress struct {
	Files, Bytes atomic.Int64
}

// Stats summarises a finished restore.
type Stats struct {
	Files, Dirs, Other int
	Bytes              int64
	Errors             int
}

type dir struct {
	path string
	node snapshot.Node
}

type restorer struct {
	src     Source
	opts    Options
	content *contents
	mu      sync.Mutex
	stats   Stats
	links   map[[2]uint64]string
	dirs    []dir
	isRoot  bool
}

// Restore writes snapshot sn under opts.Target. It returns an error if the
// target cannot be made or ctx ends (then every file it opened is closed and
// no worker is left running); otherwise stats whose Errors counts the paths
// reported to OnError. A directory whose tree cannot be read is reported and
// left empty, a file whose content cannot be read or verified is reported
// and left without its metadata, and the rest is restored. A tree node whose
// name is not a single path element, or not greater than the name before it
// (a repeated name could follow a symlink the first one made), is reported
// and skipped: nothing is written outside the target through a tree.
func Restore(ctx context.Context, src Source, sn *snapshot.Snapshot, opts Options) (Stats, error) {
	rs := &restorer{src: src, opts: opts, links: map[[2]uint64]string{}, isRoot: os.Geteuid() == 0}
	if err := os.MkdirAll(opts.Target, 0o700); err != nil {
		return rs.stats, fmt.Errorf("restore target: %w", err)
	}
	prog := opts.Progress
	if prog == nil {
		prog = &Progress{}
	}
	rs.content = startContents(ctx, src, prog, rs.isRoot, rs.report)
	_, err := rs.layout(ctx, sn.Tree, "/", opts.Include == nil)
	rs.content.wait()
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return rs.stats, err
	}
	for _, d := range slices.Backward(rs.dirs) {
		if err := applyMeta(rs.dest(d.path), -1, &d.node, rs.isRoot); err != nil {
			rs.report(d.path, err)
		}
	}
	return rs.stats, nil
}

func (rs *restorer) report(path string, err error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.stats.Errors++
	if rs.opts.OnError != nil {
		rs.opts.OnError(path, err)
	}
}

func (rs *restorer) dest(snapPath string) string { return filepath.Join(rs.opts.Target, snapPath) }

// child returns the snapshot path of the node called name in directory p,
// and false if name is not one path element ("", ".", "..", or holding a
// slash): such a name would put the node somewhere else.
func child(p, name string) (string, bool) {
	sp := filepath.Join(p, name)
	return sp, filepath.Dir(sp) == p && filepath.Base(sp) == name
}

// layout creates everything but file content below tree id at snapshot path
// p. all says that p is selected, so every node below is. It reports whether
// anything was restored below p.
func (rs *restorer) layout(ctx context.Context, id blob.ID, p string, all bool) (bool, error) {
	tree, err := rs.src.LoadTree(ctx, id)
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		rs.report(p, err)
		return false, nil
	}
	any := false
	made := all // p exists: it was made when its selected node was
	for i, n := range tree.Nodes {
		if err := ctx.Err(); err != nil {
			return any, err
		}
		sp, ok := child(p, string(n.Name))
		if !ok || i > 0 && tree.Nodes[i-1].Name >= n.Name {
			// A Source that keeps DecodeTree's promise never gets here.
			rs.report(p, fmt.Errorf("tree %s: node %q is not a single, unique name: %w", id.Short(), n.Name, blob.ErrCorrupt))
			continue
		}
		sel := all || rs.opts.Include(sp)
		if n.Kind == snapshot.Dir {
			if sel {
				if err := os.MkdirAll(rs.dest(sp), 0o700); err != nil {
					rs.report(sp, err)
					continue
				}
			}
			idx := len(rs.dirs)
			rs.dirs = append(rs.dirs, dir{sp, n})
			below, err := rs.layout(ctx, *n.Subtree, sp, sel)
			if err != nil {
				return any, err
			}
			if !sel && !below {
				rs.dirs = slices.Delete(rs.dirs, idx, idx+1)
				continue
			}
			rs.stats.Dirs++
			any = true
			continue
		}
		if !sel {
			continue
		}
		any = true
		if !made {
			if err := os.MkdirAll(rs.dest(p), 0o700); err != nil {
				rs.report(sp, err)
				continue
			}
			made = true
		}
		if err := rs.create(ctx, sp, n); err != nil {
			if ctx.Err() != nil {
				return any, ctx.Err()
			}
			rs.report(sp, err)
		}
	}
	return any, nil
}

// create makes a non-directory node; a regular file is created at its
// final size and its content queued for the workers.
func (rs *restorer) create(ctx context.Context, sp string, n snapshot.Node) error {
	path := rs.dest(sp)
	if n.Kind == snapshot.File && n.Links > 1 {
		key := [2]uint64{n.Device, n.Inode}
		if first, ok := rs.links[key]; ok {
			rs.stats.Files++
			return replace(path, func() error { return os.Link(first, path) })
		}
		rs.links[key] = path
	}
	switch n.Kind {
	case snapshot.File:
		var out *os.File
		err := replace(path, func() error {
			// A plain open and os.NewFile: os.OpenFile adds five system
			// calls per file (the poller's fcntl and epoll_ctl calls,
			// which fail for a regular file).
			fd, err := unix.Open(path, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
			if err != nil {
				return &os.PathError{Op: "open", Path: path, Err: err}
			}
			out = os.NewFile(uintptr(fd), path)
			return nil
		})
		if err != nil {
			return err
		}
		if err := out.Truncate(int64(n.Size)); err != nil {
			_ = out.Close() // nothing written; the truncate error is the one to report
			return err
		}
		rs.stats.Files++
		rs.stats.Bytes += int64(n.Size)
		return rs.content.add(ctx, sp, n, out, nil)
	case snapshot.Symlink:
		if err := replace(path, func() error { return os.Symlink(string(n.Target), path) }); err != nil {
			return err
		}
	case snapshot.FIFO:
		if err := replace(path, func() error { return unix.Mkfifo(path, 0o600) }); err != nil {
			return &os.PathError{Op: "mkfifo", Path: path, Err: err}
		}
	case snapshot.Socket, snapshot.Dev, snapshot.CharDev:
		mode := map[snapshot.Kind]uint32{snapshot.Socket: unix.S_IFSOCK, snapshot.Dev: unix.S_IFBLK, snapshot.CharDev: unix.S_IFCHR}[n.Kind]
		if err := replace(path, func() error { return unix.Mknod(path, mode|0o600, int(n.Rdev)) }); err != nil {
			return &os.PathError{Op: "mknod", Path: path, Err: err}
		}
	}
	rs.stats.Other++
	return applyMeta(path, -1, &n, rs.isRoot)
}

// replace runs mk, which creates path; if path exists already, it is
// removed and mk run again.
func replace(path string, mk func() error) error {
	err := mk()
	if !errors.Is(err, os.ErrExist) {
		return err
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	return mk()
}

// Package restorer writes a snapshot back to disk. One goroutine lays out
// the tree (directories, links, special files, regular files created at
// their final size) while a pool of workers restores the content of the
// files already created: each file is cut into jobs of consecutive blobs,
// blobs that lie next to each other in a pack are read with one call, and
// all-zero blocks are skipped so sparse files stay sparse. A regular file
// stays open from its creation until its last job ends, when its metadata
// is applied through the open descriptor; directories get theirs, deepest
// first, at the very end. Every blob is verified against its ID.
package restorer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/index"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store"
)

// Options configures a restore.
type Options struct {
	Target string
	// Include selects what to restore by snapshot path ("/home/a/x"); a
	// selected directory brings everything below it. nil selects all.
	Include func(path string) bool
	// OnError is called (serialised) for every path that could not be
	// restored; the restore goes on with the rest.
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

// jobBytes is the most content one job restores; large files are cut into
// several jobs so that one file keeps every CPU busy.
const jobBytes = 8 << 20

type file struct {
	path      string
	node      snapshot.Node
	out       *os.File     // open from creation until the last job ends
	remaining atomic.Int32 // jobs not yet done
	failed    atomic.Bool
}

type job struct {
	f      *file
	offset int64     // in the file, of the first blob
	blobs  []blob.ID // consecutive content
}

type dir struct {
	path string
	node snapshot.Node
}

type restorer struct {
	repo   *repo.Repository
	opts   Options
	prog   *Progress
	jobs   chan<- job
	mu     sync.Mutex
	stats  Stats
	links  map[[2]uint64]string
	dirs   []dir
	isRoot bool
}

// Restore writes snapshot sn under opts.Target. It returns an error if the
// target cannot be made or ctx ends; otherwise stats whose Errors counts the
// paths reported to OnError. A directory whose tree cannot be read is
// reported and left empty, and the rest is restored.
func Restore(ctx context.Context, r *repo.Repository, sn *snapshot.Snapshot, opts Options) (Stats, error) {
	rs := &restorer{repo: r, opts: opts, prog: opts.Progress, links: map[[2]uint64]string{}, isRoot: os.Geteuid() == 0}
	if rs.prog == nil {
		rs.prog = &Progress{}
	}
	if err := os.MkdirAll(opts.Target, 0o700); err != nil {
		return rs.stats, fmt.Errorf("restore target: %w", err)
	}
	jobs := make(chan job, 64)
	rs.jobs = jobs
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) + 2 {
		wg.Go(func() {
			w := worker{rs: rs}
			for j := range jobs {
				w.run(ctx, j)
			}
		})
	}
	_, err := rs.layout(ctx, sn.Tree, "/", opts.Include == nil)
	close(jobs)
	wg.Wait()
	if err != nil {
		return rs.stats, err
	}
	for _, d := range slices.Backward(rs.dirs) {
		if err := rs.setMeta(d.path, &d.node); err != nil {
			rs.report(d.path, err)
		}
	}
	return rs.stats, ctx.Err()
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

// layout creates everything but file content below tree id at snapshot path
// p. all says that p is selected, so every node below is. It reports whether
// anything was restored below p.
func (rs *restorer) layout(ctx context.Context, id blob.ID, p string, all bool) (bool, error) {
	tree, err := rs.repo.LoadTree(ctx, id)
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		rs.report(p, err)
		return false, nil
	}
	any := false
	made := all // p exists: it was made when its selected node was
	for _, n := range tree.Nodes {
		if err := ctx.Err(); err != nil {
			return any, err
		}
		sp := filepath.Join(p, string(n.Name))
		sel := all || rs.opts.Include(sp)
		if n.Kind == snapshot.Dir {
			if sel {
				if err := os.MkdirAll(rs.dest(sp), 0o700); err != nil {
					rs.report(sp, err)
					continue
				}
			}
			idx := len(rs.dirs)
			rs.dirs = append(rs.dirs, dir{rs.dest(sp), n})
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
		err := replace(path, func() (err error) {
			out, err = os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o600)
			return err
		})
		if err != nil {
			return err
		}
		if err := out.Truncate(int64(n.Size)); err != nil {
			out.Close()
			return err
		}
		rs.stats.Files++
		rs.stats.Bytes += int64(n.Size)
		return rs.queue(ctx, &file{path: path, node: n, out: out})
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
	return rs.setMeta(path, &n)
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

// setMeta applies ownership, mode, extended attributes and times to path.
func (rs *restorer) setMeta(path string, n *snapshot.Node) error {
	return rs.applyMeta(path, -1, n)
}

// setFileMeta applies a regular file's metadata through its descriptor.
func (rs *restorer) setFileMeta(f *os.File, n *snapshot.Node) error {
	return rs.applyMeta(f.Name(), int(f.Fd()), n)
}

// applyMeta applies n's metadata to path, through fd unless it is -1. A
// failed chown is an error only for root.
func (rs *restorer) applyMeta(path string, fd int, n *snapshot.Node) error {
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
	if rs.isRoot {
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

// queue cuts f's content into jobs and hands them to the workers. A job
// not handed over because ctx ended still counts down, so f is closed.
func (rs *restorer) queue(ctx context.Context, f *file) error {
	var js []job
	cur := job{f: f}
	var size, off int64
	for _, id := range f.node.Content {
		loc, ok := rs.repo.Index().Lookup(blob.Handle{Type: blob.Data, ID: id})
		n := int64(jobBytes)
		if ok && loc.RawLength != 0 {
			n = int64(loc.RawLength)
		} else if ok {
			n = int64(loc.Length - crypto.Overhead)
		}
		if len(cur.blobs) > 0 && size+n > jobBytes {
			js = append(js, cur)
			cur = job{f: f, offset: off}
			size = 0
		}
		cur.blobs = append(cur.blobs, id)
		size += n
		off += n
	}
	if len(cur.blobs) > 0 {
		js = append(js, cur)
	}
	if len(js) == 0 {
		rs.finishFile(f)
		return nil
	}
	f.remaining.Store(int32(len(js)))
	for i, j := range js {
		select {
		case rs.jobs <- j:
		case <-ctx.Done():
			f.failed.Store(true)
			for range len(js) - i {
				rs.jobDone(f)
			}
			return ctx.Err()
		}
	}
	return nil
}

// jobDone counts one of f's jobs as ended, and finishes f after the last.
func (rs *restorer) jobDone(f *file) {
	if f.remaining.Add(-1) == 0 {
		rs.finishFile(f)
	}
}

// finishFile applies a file's metadata, unless its content failed, and
// closes it.
func (rs *restorer) finishFile(f *file) {
	if f.failed.Load() {
		f.out.Close()
		return
	}
	err := rs.setFileMeta(f.out, &f.node)
	if cerr := f.out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		rs.report(f.path, err)
		return
	}
	rs.prog.Files.Add(1)
}

type worker struct {
	rs    *restorer
	ct    []byte
	plain []byte
}

var zeros [64 << 10]byte

func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// holeBlock is the size and alignment, in the file, of the all-zero blocks
// that writeData leaves as holes.
const holeBlock = 4 << 10

// writeData writes p at offset off of f, which was created sparse, except
// for the aligned all-zero blocks of p: those stay holes, so a sparse file
// restores sparse even where a chunk holds both data and a hole.
func writeData(f *os.File, p []byte, off int64) error {
	run := -1 // start in p of the non-zero blocks not yet written
	for i := 0; i < len(p); {
		end := min(len(p), i+holeBlock-int((off+int64(i))%holeBlock))
		switch {
		case !isZero(p[i:end]):
			if run < 0 {
				run = i
			}
		case run >= 0:
			if _, err := f.WriteAt(p[run:i], off+int64(run)); err != nil {
				return err
			}
			run = -1
		}
		i = end
	}
	if run >= 0 {
		if _, err := f.WriteAt(p[run:], off+int64(run)); err != nil {
			return err
		}
	}
	return nil
}

func (w *worker) run(ctx context.Context, j job) {
	f := j.f
	defer w.rs.jobDone(f)
	if f.failed.Load() {
		return
	}
	if err := w.write(ctx, j); err != nil {
		if !f.failed.Swap(true) {
			w.rs.report(f.path, err)
		}
	}
}

// write restores one job: it reads runs of blobs adjacent in one pack with
// a single read, and writes every non-zero blob at its offset.
func (w *worker) write(ctx context.Context, j job) error {
	out := j.f.out
	idx := w.rs.repo.Index()
	locs := make([]index.Location, len(j.blobs))
	for i, id := range j.blobs {
		loc, ok := idx.Lookup(blob.Handle{Type: blob.Data, ID: id})
		if !ok {
			return fmt.Errorf("content blob %s: %w", id.Short(), blob.ErrNotFound)
		}
		locs[i] = loc
	}
	off := j.offset
	for i := 0; i < len(locs); {
		end := i + 1
		span := int(locs[i].Length)
		for end < len(locs) && locs[end].Pack == locs[i].Pack && locs[end].Offset == locs[end-1].Offset+locs[end-1].Length && span < jobBytes {
			span += int(locs[end].Length)
			end++
		}
		if cap(w.ct) < span {
			w.ct = make([]byte, span)
		}
		ct := w.ct[:span]
		h := store.Handle{Type: store.Packs, Name: locs[i].Pack.String()}
		if err := w.rs.repo.Store().ReadAt(ctx, h, ct, int64(locs[i].Offset)); err != nil {
			return fmt.Errorf("read pack %s: %w", locs[i].Pack.Short(), err)
		}
		for k := i; k < end; k++ {
			n := locs[k].Length
			plain, err := w.rs.repo.OpenBlob(locs[k], ct[:n], w.plain)
			if err != nil {
				return err
			}
			w.plain = plain
			ct = ct[n:]
			if err := writeData(out, plain, off); err != nil {
				return err
			}
			off += int64(len(plain))
			w.rs.prog.Bytes.Add(int64(len(plain)))
		}
		i = end
	}
	return nil
}

package restorer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/index"
	"github.com/kalaja/kalaja/internal/snapshot"
)

// jobBytes is the most content one job restores; large files are cut into
// several jobs so that one file keeps every CPU busy.
const jobBytes = 8 << 20

// contents restores the content of regular files that are already created
// at their final size: add cuts a file into jobs, a pool of workers runs
// them, and after a file's last job its metadata is applied through its
// descriptor and it is closed. It knows nothing of trees or of where a file
// lies, so any set of file nodes can be written to any open files.
type contents struct {
	src    Blobs
	prog   *Progress
	isRoot bool
	report func(name string, err error) // called concurrently
	jobs   chan job
	wg     sync.WaitGroup
}

type file struct {
	name      string // reported to contents.report
	node      snapshot.Node
	out       *os.File      // open from add until the last job ends
	done      func(ok bool) // called after out is closed, if not nil
	remaining atomic.Int32  // jobs not yet done
	failed    atomic.Bool
}

type job struct {
	f      *file
	offset int64            // in the file, of the first blob
	locs   []index.Location // of consecutive content
}

// startContents starts the workers; they run until wait, or until ctx ends,
// after which they skip the jobs still queued. report receives every file
// whose content or metadata could not be restored (not those cut short by
// ctx) and must be safe for concurrent use.
func startContents(ctx context.Context, src Blobs, prog *Progress, isRoot bool, report func(name string, err error)) *contents {
	c := &contents{src: src, prog: prog, isRoot: isRoot, report: report, jobs: make(chan job, 64)}
	for range runtime.GOMAXPROCS(0) + 2 {
		c.wg.Go(func() {
			w := worker{c: c}
			for j := range c.jobs {
				w.run(ctx, j)
			}
		})
	}
	return c
}

// wait ends the queue and returns when every file added has been closed.
// add must not be called after wait.
func (c *contents) wait() {
	close(c.jobs)
	c.wg.Wait()
}

// add queues the content of file node n for out, which is open for writing
// at n's size; name identifies it to report. add owns out from then on and
// closes it after the last job, then calls done (if not nil) once, with
// whether the content and the metadata were written in full. A content blob no index lists fails the
// whole file at once: without its length the offsets of the blobs after it
// are unknown. add returns ctx.Err() if ctx ends before every job is
// handed over; jobs not handed over still count, so out is closed.
func (c *contents) add(ctx context.Context, name string, n snapshot.Node, out *os.File, done func(ok bool)) error {
	f := &file{name: name, node: n, out: out, done: done}
	locs := make([]index.Location, len(n.Content))
	var js []job
	first := 0
	var size, off, start int64
	for i, id := range n.Content {
		loc, ok := c.src.Lookup(blob.Handle{Type: blob.Data, ID: id})
		if !ok {
			f.failed.Store(true)
			c.report(name, fmt.Errorf("content blob %s: %w", id.Short(), blob.ErrNotFound))
			c.finish(f)
			return nil
		}
		locs[i] = loc
		size1 := plainLength(loc)
		if i > first && size+size1 > jobBytes {
			js = append(js, job{f: f, offset: start, locs: locs[first:i]})
			first, start, size = i, off, 0
		}
		size += size1
		off += size1
	}
	if first < len(locs) {
		js = append(js, job{f: f, offset: start, locs: locs[first:]})
	}
	if len(js) == 0 {
		c.finish(f)
		return nil
	}
	f.remaining.Store(int32(len(js)))
	for i, j := range js {
		select {
		case c.jobs <- j:
		case <-ctx.Done():
			f.failed.Store(true)
			for range len(js) - i {
				c.jobDone(f)
			}
			return ctx.Err()
		}
	}
	return nil
}

// plainLength is the length of the plaintext of the blob at loc.
func plainLength(loc index.Location) int64 {
	if loc.RawLength != 0 {
		return int64(loc.RawLength)
	}
	return int64(loc.Length - crypto.Overhead)
}

// jobDone counts one of f's jobs as ended, and finishes f after the last.
func (c *contents) jobDone(f *file) {
	if f.remaining.Add(-1) == 0 {
		c.finish(f)
	}
}

// finish applies a file's metadata, unless its content failed, closes it,
// and calls its done.
func (c *contents) finish(f *file) {
	ok := c.close(f)
	if f.done != nil {
		f.done(ok)
	}
}

// close applies a file's metadata, unless its content failed, and closes
// it. It reports whether the file was written in full.
func (c *contents) close(f *file) bool {
	if f.failed.Load() {
		_ = f.out.Close() // its content failed, which was reported
		return false
	}
	fd := int(f.out.Fd())
	err := applyMeta(f.out.Name(), fd, &f.node, c.isRoot)
	startWriteback(fd)
	if cerr := f.out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		c.report(f.name, err)
		return false
	}
	c.prog.Files.Add(1)
	return true
}

// startWriteback has the kernel start writing the content of the file open
// as fd to the disk now, without waiting for it, so the disk writes while
// the restore goes on instead of after it (a restore otherwise leaves all
// of its bytes dirty in the page cache for a later sync). It is only a
// hint: errors are ignored, and nothing is made durable by it.
func startWriteback(fd int) {
	_ = unix.SyncFileRange(fd, 0, 0, unix.SYNC_FILE_RANGE_WRITE)
}

type worker struct {
	c     *contents
	ct    []byte
	plain []byte
}

func (w *worker) run(ctx context.Context, j job) {
	f := j.f
	defer w.c.jobDone(f)
	if f.failed.Load() {
		return
	}
	if err := w.write(ctx, j); err != nil {
		// A job cut short by ctx leaves the file unfinished, not damaged.
		if !f.failed.Swap(true) && ctx.Err() == nil {
			w.c.report(f.name, err)
		}
	}
}

// write restores one job: it reads runs of blobs adjacent in one pack with
// a single read, and writes every non-zero blob at its offset.
func (w *worker) write(ctx context.Context, j job) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	out := j.f.out
	locs := j.locs
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
		if err := w.c.src.ReadPack(ctx, locs[i].Pack, ct, int64(locs[i].Offset)); err != nil {
			return fmt.Errorf("read pack %s: %w", locs[i].Pack.Short(), err)
		}
		for k := i; k < end; k++ {
			n := locs[k].Length
			plain, err := w.c.src.OpenBlob(locs[k], ct[:n], w.plain)
			if err != nil {
				return err
			}
			w.plain = plain
			ct = ct[n:]
			if err := writeData(out, plain, off); err != nil {
				return err
			}
			off += int64(len(plain))
			w.c.prog.Bytes.Add(int64(len(plain)))
		}
		i = end
	}
	return nil
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

package restorer

import (
	"context"
	"os"

	"github.com/kalaja/kalaja/internal/index"
	"github.com/kalaja/kalaja/internal/snapshot"
)

// Writer is Restore's content pipeline for callers that create the files
// themselves (an in-place repair): the content of each file added is read
// in pack ranges, verified blob by blob, written by a pool of workers
// (all-zero blocks left as holes), and the node's metadata applied through
// the open descriptor before it is closed.
type Writer struct{ c *contents }

// NewWriter starts the workers; they run until Wait, or until ctx ends,
// after which they skip the jobs still queued. report receives every file
// whose content or metadata could not be written (not those cut short by
// ctx), by the name given to Add, from any goroutine, and must be safe for
// concurrent use. prog, which may be nil, counts the files written in full
// and the bytes written.
func NewWriter(ctx context.Context, src Blobs, prog *Progress, report func(name string, err error)) *Writer {
	if prog == nil {
		prog = &Progress{}
	}
	return &Writer{startContents(ctx, src, prog, os.Geteuid() == 0, report)}
}

// Add queues the content of file node n for out, which must be open for
// writing, empty, and at n's size (holes). Add owns out from then on: it
// closes it after the last write and then calls done, if not nil, once,
// from any goroutine, with whether the content and the metadata were
// written in full. A content blob that no index lists fails the file at
// once, before anything is written. Add returns ctx.Err() if ctx ends
// before the file's jobs are all queued (out is closed all the same, and
// done called with false). Add blocks while the workers' queue is full; it
// must not be called after Wait.
func (w *Writer) Add(ctx context.Context, name string, n snapshot.Node, out *os.File, done func(ok bool)) error {
	return w.c.add(ctx, name, n, out, done)
}

// Wait returns when every file added has been closed and its done has
// returned.
func (w *Writer) Wait() { w.c.wait() }

// PlainLength is the length of the plaintext of the blob at loc: the
// length of the piece of a file it restores.
func PlainLength(loc index.Location) int64 { return plainLength(loc) }

// ApplyMeta applies n's owner (when the process runs as root), mode,
// extended attributes and times to the open file or directory f, as
// Restore does to what it writes (the access time is set to the
// modification time). Extended attributes f has that n lacks are left.
// All failures are joined in the error.
func ApplyMeta(f *os.File, n *snapshot.Node) error {
	return applyMeta(f.Name(), int(f.Fd()), n, os.Geteuid() == 0)
}

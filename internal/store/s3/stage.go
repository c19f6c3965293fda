package s3

import (
	"context"
	"crypto/md5"
	"fmt"
	"hash"
	"os"

	"github.com/kalaja/kalaja/internal/store"
)

// Stage implements store.Stager. The object's bytes go to an unlinked
// temporary file in Options.TempDir, so that staging costs no memory and a
// crash leaves nothing behind; Commit uploads the file in one conditional
// PUT.
func (s *Store) Stage(t store.FileType) (store.Staged, error) {
	if err := t.Check(); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(s.tempDir, "kalaja-s3-*")
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", t, err)
	}
	if err := os.Remove(f.Name()); err != nil {
		_ = f.Close() // the remove error is the one to report
		return nil, fmt.Errorf("stage %s: %w", t, err)
	}
	return &staged{s: s, t: t, f: f, sum: md5.New()}, nil
}

// staged is an object being written to an unlinked temporary file.
type staged struct {
	s    *Store
	t    store.FileType
	f    *os.File
	sum  hash.Hash // MD5 of the bytes written, sent as Content-MD5
	size int64
}

func (w *staged) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.sum.Write(p[:n])
	w.size += int64(n)
	return n, err
}

// Abort implements store.Staged. Closing the unlinked temporary file only
// frees it: there is nothing to lose.
func (w *staged) Abort() { _ = w.f.Close() }

// Commit implements store.Staged.
func (w *staged) Commit(ctx context.Context, name string) error {
	defer func() { _ = w.f.Close() }() // an unlinked temporary file: closing only frees it
	h := store.Handle{Type: w.t, Name: name}
	if err := h.Check(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return w.s.put(ctx, h, w.f, w.size, w.sum.Sum(nil))
}

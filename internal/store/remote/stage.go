package remote

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/store"
)

// staged is an object being written to an unlinked temporary file.
type staged struct {
	s    *Store
	t    store.FileType
	f    *os.File
	hash hash.Hash // nil for content-addressed kinds: the name is the hash
	size int64
}

func (st *staged) Write(p []byte) (int, error) {
	n, err := st.f.Write(p)
	if st.hash != nil {
		st.hash.Write(p[:n])
	}
	st.size += int64(n)
	return n, err
}

// Abort implements store.Staged. Closing the unlinked temporary file only
// frees it: there is nothing to lose.
func (st *staged) Abort() { _ = st.f.Close() }

// Commit implements store.Staged: the file is uploaded in one PUT.
func (st *staged) Commit(ctx context.Context, name string) error {
	defer func() { _ = st.f.Close() }() // an unlinked temporary file: closing only frees it
	h := store.Handle{Type: st.t, Name: name}
	if err := h.Check(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var sum [sha256.Size]byte
	if st.hash != nil {
		st.hash.Sum(sum[:0])
	} else {
		// The caller named the object by the hash of its bytes (a pack);
		// the server checks that, so it is not computed twice here.
		id, err := blob.ParseID(name)
		if err != nil {
			return fmt.Errorf("stage %v: %w", h, err)
		}
		sum = id
	}
	return st.s.put(ctx, h, st.size, sum, func() io.Reader { return io.NewSectionReader(st.f, 0, st.size) })
}

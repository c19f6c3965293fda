package remote

import (
	"context"
	"crypto/sha256"
	"hash"
	"io"
	"os"

	"github.com/kalaja/kalaja/internal/store"
)

// staged is an object being written to an unlinked temporary file.
type staged struct {
	s    *Store
	t    store.FileType
	f    *os.File
	hash hash.Hash
	size int64
}

func (st *staged) Write(p []byte) (int, error) {
	n, err := st.f.Write(p)
	st.hash.Write(p[:n])
	st.size += int64(n)
	return n, err
}

// Abort implements store.Staged.
func (st *staged) Abort() { st.f.Close() }

// Commit implements store.Staged: the file is uploaded in one PUT.
func (st *staged) Commit(ctx context.Context, name string) error {
	defer st.f.Close()
	h := store.Handle{Type: st.t, Name: name}
	if err := validName(h); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var sum [sha256.Size]byte
	st.hash.Sum(sum[:0])
	return st.s.put(ctx, h, st.size, sum, func() io.Reader { return io.NewSectionReader(st.f, 0, st.size) })
}

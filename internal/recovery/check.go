package recovery

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/restorer"
	"github.com/kalaja/kalaja/internal/snapshot"
)

// sameContent reports whether f, read from its current offset, holds
// exactly the content of file node n: it is cut where n's blobs end (each
// blob's plaintext length from the index) and each piece hashed with ids,
// in *buf (grown as needed). It returns an error only if f cannot be read
// or a blob of n is not indexed.
func (r *repair) sameContent(f *os.File, n *snapshot.Node, ids *crypto.IDHasher, buf *[]byte) (bool, error) {
	size := int64(n.Size)
	var off int64
	for _, id := range n.Content {
		loc, ok := r.src.Lookup(blob.Handle{Type: blob.Data, ID: id})
		if !ok {
			return false, fmt.Errorf("content blob %s: %w", id.Short(), blob.ErrNotFound)
		}
		l := restorer.PlainLength(loc)
		if l < 0 || l > size-off {
			return false, nil // more than the node holds: no file of its size matches
		}
		if int64(cap(*buf)) < l {
			*buf = make([]byte, l)
		}
		b := (*buf)[:l]
		if _, err := io.ReadFull(f, b); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return false, nil
			}
			return false, fmt.Errorf("read %s: %w", f.Name(), err)
		}
		if ids.Sum(b) != id {
			return false, nil
		}
		off += l
	}
	if off != size {
		return false, nil
	}
	var one [1]byte
	switch _, err := f.Read(one[:]); {
	case errors.Is(err, io.EOF):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	return false, nil
}

// verifyFile reads back the file name in d that the content pipeline
// wrote for n (device dev, inode ino) and compares it with n: the same
// file, with n's size, mode, owner, mtime and blobs. It runs in a
// worker of the pipeline.
func (r *repair) verifyFile(d *dir, name string, n *snapshot.Node, dev, ino uint64) {
	p := d.child(name)
	r.verified(p, r.readBack(d, name, n, dev, ino))
}

func (r *repair) readBack(d *dir, name string, n *snapshot.Node, dev, ino uint64) error {
	fd, err := openRead(d.fd, name)
	if err != nil {
		return os.NewSyscallError("open", err)
	}
	f := os.NewFile(uintptr(fd), d.child(name))
	defer func() { _ = f.Close() }() // read only
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return os.NewSyscallError("fstat", err)
	}
	if st.Dev != dev || st.Ino != ino {
		return errors.New("replaced by another file after it was written")
	}
	if err := r.metaCheck(&st, n); err != nil {
		return err
	}
	h := r.pool.Get().(*hashBuf)
	defer r.pool.Put(h)
	same, err := r.sameContent(f, n, h.ids, &h.buf)
	if err != nil {
		return err
	}
	if !same {
		return errors.New("content differs from the snapshot's blobs")
	}
	return nil
}

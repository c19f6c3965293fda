package restorer

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/index"
	"github.com/kalaja/kalaja/internal/pack"
	"github.com/kalaja/kalaja/internal/snapshot"
)

// fake is an in-memory Source. A blob is stored in its pack as its
// plaintext followed by crypto.Overhead zero bytes, named by the SHA-256 of
// its plaintext, and verified against that name by OpenBlob. Trees are kept
// as they are given, unvalidated, so tests can hand the restorer trees that
// snapshot.DecodeTree would reject.
type fake struct {
	mu    sync.Mutex
	trees map[blob.ID]*snapshot.Tree
	locs  map[blob.Handle]index.Location
	packs map[blob.ID][]byte
	n     int // trees and packs made, for unique IDs

	reads  atomic.Int64                  // ReadPack calls
	onRead func(pack blob.ID, off int64) // called before each ReadPack, if set
}

func newFake() *fake {
	return &fake{trees: map[blob.ID]*snapshot.Tree{}, locs: map[blob.Handle]index.Location{}, packs: map[blob.ID][]byte{}}
}

func (f *fake) nextID(kind string) blob.ID {
	f.n++
	return blob.Hash(fmt.Appendf(nil, "%s %d", kind, f.n))
}

// pack stores data as consecutive data blobs of one new pack and returns
// their IDs and the pack's. A blob already stored keeps its first place.
func (f *fake) pack(data ...[]byte) ([]blob.ID, blob.ID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.nextID("pack")
	var b []byte
	ids := make([]blob.ID, len(data))
	for i, d := range data {
		ids[i] = blob.Hash(d)
		h := blob.Handle{Type: blob.Data, ID: ids[i]}
		e := pack.Entry{Type: blob.Data, ID: ids[i], Offset: uint32(len(b)), Length: uint32(len(d) + crypto.Overhead)}
		b = append(b, d...)
		b = append(b, make([]byte, crypto.Overhead)...)
		if _, ok := f.locs[h]; !ok {
			f.locs[h] = index.Location{Pack: id, Entry: e}
		}
	}
	f.packs[id] = b
	return ids, id
}

// blobs stores each of data in a pack of its own and returns their IDs.
func (f *fake) blobs(data ...[]byte) []blob.ID {
	var ids []blob.ID
	for _, d := range data {
		id, _ := f.pack(d)
		ids = append(ids, id...)
	}
	return ids
}

// tree stores a tree of nodes, in the order given, and returns its ID.
func (f *fake) tree(nodes ...snapshot.Node) blob.ID {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.nextID("tree")
	f.trees[id] = &snapshot.Tree{Nodes: nodes}
	return id
}

// forget removes blob id from the index.
func (f *fake) forget(id blob.ID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.locs, blob.Handle{Type: blob.Data, ID: id})
}

// where returns the pack and offset of data blob id.
func (f *fake) where(id blob.ID) (blob.ID, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	loc := f.locs[blob.Handle{Type: blob.Data, ID: id}]
	return loc.Pack, int(loc.Offset)
}

// flip flips a bit of the byte at offset off of pack id.
func (f *fake) flip(id blob.ID, off int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.packs[id][off] ^= 1
}

func (f *fake) LoadTree(ctx context.Context, id blob.ID) (*snapshot.Tree, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.trees[id]
	if !ok {
		return nil, fmt.Errorf("tree %s: %w", id.Short(), blob.ErrNotFound)
	}
	return t, nil
}

func (f *fake) Lookup(h blob.Handle) (index.Location, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	loc, ok := f.locs[h]
	return loc, ok
}

func (f *fake) ReadPack(ctx context.Context, id blob.ID, p []byte, off int64) error {
	f.reads.Add(1)
	if f.onRead != nil {
		f.onRead(id, off)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.packs[id]
	switch {
	case !ok:
		return fmt.Errorf("pack %s: %w", id.Short(), blob.ErrNotFound)
	case off+int64(len(p)) > int64(len(b)):
		return io.ErrUnexpectedEOF
	}
	copy(p, b[off:])
	return nil
}

func (f *fake) OpenBlob(loc index.Location, ciphertext, buf []byte) ([]byte, error) {
	if len(ciphertext) != int(loc.Length) {
		return nil, fmt.Errorf("blob %v: %d bytes, want %d: %w", loc.Handle(), len(ciphertext), loc.Length, blob.ErrCorrupt)
	}
	plain := ciphertext[:len(ciphertext)-crypto.Overhead]
	if blob.Hash(plain) != loc.ID {
		return nil, fmt.Errorf("blob %v: content does not match its ID: %w", loc.Handle(), blob.ErrCorrupt)
	}
	return append(buf[:0], plain...), nil
}

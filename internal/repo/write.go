package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/index"
	"github.com/kalaja/kalaja/internal/pack"
	"github.com/kalaja/kalaja/internal/store"
)

// Tuning of the write path.
const (
	// PackSize is the size at which a pack is finished and stored. Packs
	// are streamed to the store's staging area (a temporary file for the
	// local store), so the size does not cost memory.
	PackSize = 16 << 20
	// packsPerIndex is how many stored packs are listed in one index file
	// written during a backup; a crash loses at most that many packs' index
	// entries, and the next backup re-indexes them (IndexOrphans).
	packsPerIndex = 32
	// entriesPerIndex is how many blob entries the packs waiting for an
	// index file may hold before it is written (one pack may hold more):
	// a pack of tiny files holds tens of thousands of blobs, and the
	// waiting entries and the file's encoding are held in memory.
	entriesPerIndex = 1 << 18
	// uploaders is the number of goroutines committing finished packs
	// (fsync and rename for the local store), overlapping that wait with
	// the packers' work.
	uploaders = 2
)

// writer is the state of a write session (StartWrites .. FinishWrites).
type writer struct {
	ctx     context.Context
	packs   chan finished
	wg      sync.WaitGroup
	mu      sync.Mutex
	pending map[blob.Handle]struct{} // reserved by a packer, not yet stored
	unindex []index.Pack             // stored, not yet in an index file
	entries int                      // blob entries in unindex
	err     error
}

type finished struct {
	staged store.Staged
	p      index.Pack
	size   int64
}

// StartWrites begins a write session; the session's uploads stop when ctx
// is done. Every successful StartWrites must be followed by FinishWrites.
func (r *Repository) StartWrites(ctx context.Context) {
	w := &writer{ctx: ctx, packs: make(chan finished), pending: map[blob.Handle]struct{}{}}
	r.w = w
	if r.uses == nil {
		r.startUses(ctx)
	}
	for range uploaders {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for f := range w.packs {
				r.storePack(f)
			}
		}()
	}
}

func (w *writer) setErr(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

func (w *writer) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// storePack commits one finished pack, indexes its blobs, and writes an
// index file when enough packs or blob entries are waiting for one.
func (r *Repository) storePack(f finished) {
	w := r.w
	if w.failed() != nil {
		f.staged.Abort()
		return
	}
	err := f.staged.Commit(w.ctx, f.p.ID.String())
	if err != nil && !errors.Is(err, store.ErrExists) {
		w.setErr(fmt.Errorf("store pack: %w", err))
		return
	}
	r.wrote(store.Packs, f.p.ID, f.size)
	r.use(f.p.ID)
	w.mu.Lock()
	r.idx.Add(f.p)
	for _, e := range f.p.Entries {
		delete(w.pending, e.Handle())
	}
	w.unindex = append(w.unindex, f.p)
	w.entries += len(f.p.Entries)
	var batch []index.Pack
	if len(w.unindex) >= packsPerIndex || w.entries >= entriesPerIndex {
		batch, w.unindex, w.entries = w.unindex, nil, 0
	}
	w.mu.Unlock()
	if batch != nil {
		id, err := r.SaveIndex(w.ctx, batch)
		if err != nil {
			w.setErr(err)
			return
		}
		r.idx.Persisted(id.String(), batch) // may move them out of memory (index.SetSpill)
	}
}

// FinishWrites waits for every pack to be stored and lists the remaining
// ones in an index file. Packers must be closed first. It returns the first
// error of the session.
func (r *Repository) FinishWrites() error {
	w := r.w
	close(w.packs)
	w.wg.Wait()
	r.w = nil
	if err := w.failed(); err != nil {
		return err
	}
	if len(w.unindex) > 0 {
		id, err := r.SaveIndex(w.ctx, w.unindex)
		if err != nil {
			return err
		}
		r.idx.Persisted(id.String(), w.unindex)
	}
	return nil
}

// SaveIndex writes an index file listing packs and returns its ID.
func (r *Repository) SaveIndex(ctx context.Context, packs []index.Pack) (blob.ID, error) {
	sealed, err := r.keys.SealObject("index", index.Encode(packs))
	if err != nil {
		return blob.ID{}, err
	}
	id := blob.Hash(sealed)
	if err := r.st.Save(ctx, store.Handle{Type: store.Index, Name: id.String()}, sealed); err != nil && !errors.Is(err, store.ErrExists) {
		return id, fmt.Errorf("store index: %w", err)
	}
	r.wrote(store.Index, id, int64(len(sealed)))
	return id, nil
}

// wrote notes an object this Repository stored (or found already stored).
func (r *Repository) wrote(t store.FileType, id blob.ID, size int64) {
	r.writtenMu.Lock()
	r.written = append(r.written, store.Object{Type: t, ID: id, Size: size})
	r.writtenMu.Unlock()
}

// Written returns the packs, index files and snapshots this Repository
// stored since the last call, including orphan packs IndexOrphans adopted,
// so that they can be recorded in the ledger.
func (r *Repository) Written() []store.Object {
	r.writtenMu.Lock()
	defer r.writtenMu.Unlock()
	w := r.written
	r.written = nil
	return w
}

// reserve claims h for saving: false if it is indexed or another packer
// already holds it.
func (r *Repository) reserve(h blob.Handle) bool {
	w := r.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if loc, ok := r.idx.Lookup(h); ok {
		r.use(loc.Pack)
		return false
	}
	if _, ok := w.pending[h]; ok {
		return false
	}
	w.pending[h] = struct{}{}
	return true
}

// Packer adds blobs to the repository from one goroutine. Make one per
// worker with NewPacker during a write session, and Close each before
// FinishWrites. A Packer is not safe for concurrent use.
type Packer struct {
	r      *Repository
	ids    *crypto.IDHasher
	zbuf   []byte
	pw     *pack.Writer // the open pack, or nil
	staged store.Staged
	hash   hash.Hash // SHA-256 of the open pack's bytes so far
}

// NewPacker returns a packer for the current write session.
func (r *Repository) NewPacker() *Packer {
	return &Packer{r: r, ids: r.NewIDHasher()}
}

// Save stores data as a blob of type t unless the repository already has
// it, and returns its ID and the number of bytes it added to packs (0 for a
// duplicate). data may be reused by the caller once Save returns.
func (p *Packer) Save(ctx context.Context, t blob.Type, data []byte) (blob.ID, int, error) {
	h := blob.Handle{Type: t, ID: p.ids.Sum(data)}
	if err := p.r.w.failed(); err != nil {
		return h.ID, 0, err
	}
	if !p.r.reserve(h) {
		return h.ID, 0, nil
	}
	if p.pw == nil {
		if err := p.open(); err != nil {
			return h.ID, 0, err
		}
	}
	stored, raw := p.compress(data)
	before := p.pw.Size()
	if err := p.pw.Add(h, stored, raw); err != nil {
		return h.ID, 0, err
	}
	n := p.pw.Size() - before
	if p.pw.Size() >= PackSize {
		if err := p.flush(ctx); err != nil {
			return h.ID, n, err
		}
	}
	return h.ID, n, nil
}

// open starts a new pack in the store's staging area, or in memory for a
// store that cannot stage.
func (p *Packer) open() error {
	var err error
	if st, ok := p.r.st.(store.Stager); ok {
		p.staged, err = st.Stage(store.Packs)
	} else {
		p.staged = &memStaged{st: p.r.st, t: store.Packs}
	}
	if err != nil {
		return fmt.Errorf("new pack: %w", err)
	}
	p.hash = sha256.New()
	p.pw, err = pack.NewWriter(p.r.keys, io.MultiWriter(p.staged, p.hash))
	if err != nil {
		p.staged.Abort()
		p.pw = nil
	}
	return err
}

// compress returns data zstd-compressed with its raw length, or data itself
// and 0 when compression is off, data is under 64 bytes, or compression
// does not make it smaller. zstd gives up on incompressible input quickly,
// so every chunk is tried in full: sampling only parts of a chunk missed
// compressible regions in mixed data such as disk images, and keeping
// chunks that compress by only a few percent raw makes the repository
// larger (docs/measurements.md, "Compression").
func (p *Packer) compress(data []byte) ([]byte, uint32) {
	if p.r.enc == nil || len(data) < 64 {
		return data, 0
	}
	p.zbuf = p.r.enc.EncodeAll(data, p.zbuf[:0])
	if len(p.zbuf) >= len(data) {
		return data, 0
	}
	return p.zbuf, uint32(len(data))
}

// flush finishes the open pack and hands it to the uploaders.
func (p *Packer) flush(ctx context.Context) error {
	if p.pw == nil {
		return nil
	}
	entries, err := p.pw.Finish()
	f := finished{staged: p.staged, p: index.Pack{Ephemeral: p.pw.Ephemeral(), Entries: entries}, size: int64(p.pw.Size())}
	p.pw, p.staged = nil, nil
	if err != nil {
		f.staged.Abort()
		return err
	}
	p.hash.Sum(f.p.ID[:0])
	select {
	case p.r.w.packs <- f:
		return nil
	case <-ctx.Done():
		f.staged.Abort()
		return ctx.Err()
	}
}

// memStaged stages an object in memory for stores without store.Stager.
type memStaged struct {
	st  store.Saver
	t   store.FileType
	buf bytes.Buffer
}

func (m *memStaged) Write(b []byte) (int, error) { return m.buf.Write(b) }
func (m *memStaged) Abort()                      { m.buf = bytes.Buffer{} }
func (m *memStaged) Commit(ctx context.Context, name string) error {
	return m.st.Save(ctx, store.Handle{Type: m.t, Name: name}, m.buf.Bytes())
}

// Close stores the packer's partly filled pack.
func (p *Packer) Close(ctx context.Context) error { return p.flush(ctx) }

package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/index"
	"github.com/kalaja/kalaja/internal/pack"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store"
)

// packKeyCache remembers derived pack keys (one X25519 agreement each).
type packKeyCache struct {
	mu   sync.Mutex
	keys map[blob.ID]*crypto.PackKey
}

const packKeyCacheSize = 4096

func (r *Repository) packKey(id blob.ID, eph [crypto.KeySize]byte) (*crypto.PackKey, error) {
	c := &r.packKeys
	c.mu.Lock()
	k, ok := c.keys[id]
	c.mu.Unlock()
	if ok {
		return k, nil
	}
	k, err := r.keys.OpenPackKey(eph)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.keys == nil || len(c.keys) >= packKeyCacheSize {
		c.keys = map[blob.ID]*crypto.PackKey{}
	}
	c.keys[id] = k
	c.mu.Unlock()
	return k, nil
}

// IndexError reports an index file that could not be used.
type IndexError struct {
	Name string
	Err  error
}

func (e *IndexError) Error() string { return fmt.Sprintf("index %s: %v", shortName(e.Name), e.Err) }
func (e *IndexError) Unwrap() error { return e.Err }

// LoadIndex loads the blob index. With a cache directory (SetCacheDir) it
// brings the cache up to date, reading only the index files stored since
// the cache last saw the store (every one, if the cache is new or damaged),
// and keeps the index in memory-mapped files (index.OpenCache); a cache
// that cannot be used is reported in the error, and the index is then held
// in memory as without a cache: every index file read into the heap. Files
// that cannot be read, decrypted or decoded are skipped and returned as
// *IndexError values joined in the error; the index holds everything else.
func (r *Repository) LoadIndex(ctx context.Context) error {
	r.startUses(ctx)
	if r.cacheDir == "" {
		return r.readIndex(ctx, func(string) bool { return true })
	}
	names, err := r.indexNames(ctx, nil)
	if err != nil {
		return err
	}
	x, covered, err := index.OpenCache(ctx, r.IndexCacheDir(), names, r.readIndexFiles)
	if x == nil {
		if ctx.Err() != nil {
			return err
		}
		rerr := r.readIndex(ctx, func(string) bool { return true })
		return errors.Join(fmt.Errorf("%w: the index is held in memory instead", err), rerr)
	}
	r.idx = x
	r.indexedMu.Lock()
	for _, name := range covered {
		r.indexed[name] = true
	}
	r.indexedMu.Unlock()
	return err
}

// RefreshIndex reads into the index the index files stored since this
// Repository last read the index (LoadIndex or RefreshIndex):
// what other processes, such as backups, added meanwhile. They go to the
// index's part in memory, not to the cache (the next LoadIndex adds them
// there). Files that cannot be used are returned as with LoadIndex, and are
// tried again by the next call.
func (r *Repository) RefreshIndex(ctx context.Context) error {
	r.indexedMu.Lock()
	read := maps.Clone(r.indexed)
	r.indexedMu.Unlock()
	err := r.readIndex(ctx, func(name string) bool { return !read[name] })
	return err
}

// readIndex reads the index files whose names want accepts into the
// index (Add).
func (r *Repository) readIndex(ctx context.Context, want func(name string) bool) error {
	names, err := r.indexNames(ctx, want)
	if err != nil {
		return err
	}
	return r.readIndexFiles(ctx, names, func(name string, packs []index.Pack) error {
		for _, p := range packs {
			r.idx.Add(p)
		}
		r.indexedMu.Lock()
		r.indexed[name] = true
		r.indexedMu.Unlock()
		return nil
	})
}

// indexNames lists the store's index files whose names want (nil: all)
// accepts.
func (r *Repository) indexNames(ctx context.Context, want func(name string) bool) ([]string, error) {
	var names []string
	if err := r.st.List(ctx, store.Index, func(fi store.FileInfo) error {
		if want == nil || want(fi.Name) {
			names = append(names, fi.Name)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list index: %w", err)
	}
	return names, nil
}

// indexReaders returns how many index files readIndexFiles reads at once,
// each then held decoded until fn has taken it: enough to keep the cores
// and a remote store's latency busy, few enough that memory is a few index
// files.
func indexReaders() int { return min(2*runtime.GOMAXPROCS(0), 8) }

// readIndexFiles reads the index files names, indexReaders() at a time,
// and calls fn with the packs of each, one call at a time (an
// index.ReadFunc). Files that cannot be read, decrypted or decoded are
// skipped and returned as *IndexError values joined in the error; an error
// from fn or ctx stops the reading (fn is not called again) and is
// returned alone.
func (r *Repository) readIndexFiles(ctx context.Context, names []string, fn func(name string, packs []index.Pack) error) error {
	var mu sync.Mutex
	var errs []error
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(indexReaders())
	for _, name := range names {
		g.Go(func() error {
			packs, err := r.loadIndexFile(gctx, name)
			mu.Lock()
			defer mu.Unlock()
			if gctx.Err() != nil {
				return gctx.Err() // stopped: by fn, or ctx
			}
			if err != nil {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				errs = append(errs, &IndexError{name, err})
				return nil
			}
			return fn(name, packs)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

func (r *Repository) loadIndexFile(ctx context.Context, name string) ([]index.Pack, error) {
	b, err := r.loadVerified(ctx, store.Handle{Type: store.Index, Name: name})
	if err != nil {
		return nil, err
	}
	plain, err := r.keys.OpenObject("index", b)
	if err != nil {
		return nil, err
	}
	return index.Decode(plain)
}

// loadVerified loads an object and checks that its name is the SHA-256 of
// its bytes: a renamed, swapped or altered object is blob.ErrCorrupt.
func (r *Repository) loadVerified(ctx context.Context, h store.Handle) ([]byte, error) {
	b, err := r.st.Load(ctx, h)
	if err != nil {
		return nil, err
	}
	if blob.Hash(b).String() != h.Name {
		return nil, fmt.Errorf("%v: content does not match its name: %w", h, blob.ErrCorrupt)
	}
	return b, nil
}

// storeReaderAt adapts one stored object to io.ReaderAt.
type storeReaderAt struct {
	ctx context.Context
	st  store.Loader
	h   store.Handle
}

func (s storeReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if err := s.st.ReadAt(s.ctx, s.h, p, off); err != nil {
		return 0, err
	}
	return len(p), nil
}

// packHandle names pack id in the store.
func packHandle(id blob.ID) store.Handle { return store.Handle{Type: store.Packs, Name: id.String()} }

// Lookup returns where blob h is stored according to the in-memory index,
// and false if no loaded index file lists it.
func (r *Repository) Lookup(h blob.Handle) (index.Location, bool) { return r.idx.Lookup(h) }

// ListPacks calls fn for every pack in the store, indexed or not, in no
// particular order, stopping at the first error fn returns. A name that is
// not an ID is passed on as it is.
func (r *Repository) ListPacks(ctx context.Context, fn func(store.FileInfo) error) error {
	return r.st.List(ctx, store.Packs, fn)
}

// LoadPack returns the whole of pack id as stored, without checking that it
// hashes to its name. A missing pack is an error wrapping blob.ErrNotFound.
func (r *Repository) LoadPack(ctx context.Context, id blob.ID) ([]byte, error) {
	return r.st.Load(ctx, packHandle(id))
}

// ReadPack fills p from pack id starting at off, without checking anything:
// OpenBlob authenticates what it reads. A missing pack is an error wrapping
// blob.ErrNotFound, one shorter than off+len(p) io.ErrUnexpectedEOF.
func (r *Repository) ReadPack(ctx context.Context, id blob.ID, p []byte, off int64) error {
	return r.st.ReadAt(ctx, packHandle(id), p, off)
}

// ReadPackHeader reads the header of a stored pack of the given size.
func (r *Repository) ReadPackHeader(ctx context.Context, id blob.ID, size int64) (index.Pack, error) {
	hdr, err := pack.ReadHeader(r.keys, storeReaderAt{ctx, r.st, packHandle(id)}, size)
	if err != nil {
		return index.Pack{}, fmt.Errorf("pack %s: %w", id.Short(), err)
	}
	return index.Pack{ID: id, Ephemeral: hdr.Ephemeral, Entries: hdr.Entries}, nil
}

// IndexOrphans finds packs that no index file lists (left by a backup that
// crashed before writing its index or by a lost index file, or stored by a
// backup still running, which lists them itself later), checks that each
// one's content hashes to its name, reads their headers, adds them to the
// index and writes an index file for them, so that their blobs are reused.
// It returns how many packs it indexed; packs that fail the hash (a pack
// stored under another name, which a store without hash checks such as S3
// accepts) or whose header cannot be read are skipped and reported in the
// error.
//
// A write-only key cannot read pack headers: it indexes nothing and returns
// 0, nil; the packs wait for a host with a full key (their blobs are saved
// again meanwhile, never lost).
func (r *Repository) IndexOrphans(ctx context.Context) (int, error) {
	if !r.keys.CanRead() {
		return 0, nil
	}
	var orphans []store.FileInfo
	if err := r.ListPacks(ctx, func(fi store.FileInfo) error {
		id, err := blob.ParseID(fi.Name)
		if err == nil && !r.idx.HasPack(id) {
			orphans = append(orphans, fi)
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("list packs: %w", err)
	}
	var found []index.Pack
	var errs []error
	for _, fi := range orphans {
		id, _ := blob.ParseID(fi.Name)
		p, err := r.readOrphan(ctx, id, fi.Size)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.idx.Add(p)
		r.wrote(store.Packs, id, fi.Size)
		found = append(found, p)
	}
	if len(found) > 0 {
		if _, err := r.SaveIndex(ctx, found); err != nil {
			errs = append(errs, err)
		}
	}
	return len(found), errors.Join(errs...)
}

// maxOrphan bounds the pack IndexOrphans reads into memory to hash it:
// packs are written at 16 MiB.
const maxOrphan = 64 << 20

// readOrphan reads a pack no index lists, checks its hash and returns its
// header.
func (r *Repository) readOrphan(ctx context.Context, id blob.ID, size int64) (index.Pack, error) {
	if size > maxOrphan {
		return index.Pack{}, fmt.Errorf("pack %s: %d bytes, more than a pack holds: %w", id.Short(), size, blob.ErrCorrupt)
	}
	b, err := r.loadVerified(ctx, packHandle(id))
	if err != nil {
		return index.Pack{}, fmt.Errorf("pack %s, which no index lists: %w", id.Short(), err)
	}
	hdr, err := pack.ReadHeader(r.keys, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return index.Pack{}, fmt.Errorf("pack %s: %w", id.Short(), err)
	}
	return index.Pack{ID: id, Ephemeral: hdr.Ephemeral, Entries: hdr.Entries}, nil
}

// LoadBlob returns the plaintext of blob h, appended to buf[:0]. It verifies
// the plaintext's keyed hash: a blob whose content is not its ID is an error
// wrapping blob.ErrCorrupt. A blob missing from the index wraps
// blob.ErrNotFound.
func (r *Repository) LoadBlob(ctx context.Context, h blob.Handle, buf []byte) ([]byte, error) {
	loc, ok := r.idx.Lookup(h)
	if !ok {
		return nil, fmt.Errorf("blob %v: %w", h, blob.ErrNotFound)
	}
	if h.Type == blob.Tree {
		r.prefetchTrees(loc.Pack)
	}
	ct := make([]byte, loc.Length)
	if err := r.ReadPack(ctx, loc.Pack, ct, int64(loc.Offset)); err != nil {
		return nil, fmt.Errorf("blob %v in pack %s: %w", h, loc.Pack.Short(), err)
	}
	return r.OpenBlob(loc, ct, buf)
}

// prefetcher is a store that can read a whole object ahead of the reads of
// it that will follow (the local store).
type prefetcher interface {
	Prefetch(h store.Handle)
}

// prefetchTrees has the store read pack id ahead, once, if it holds only
// trees: a backup packs a snapshot's trees together (archiver), and the
// next backup and a restore then load them one after another, which cold,
// one small read at a time, waits on the disk for each (docs/measurements.md,
// "Trees packed apart").
func (r *Repository) prefetchTrees(id blob.ID) {
	pf, ok := r.st.(prefetcher)
	if !ok || !r.idx.TreesOnly(id) {
		return
	}
	r.prefetchedMu.Lock()
	done := r.prefetched[id]
	if !done {
		if len(r.prefetched) >= 1<<12 {
			clear(r.prefetched)
		}
		r.prefetched[id] = true
	}
	r.prefetchedMu.Unlock()
	if !done {
		pf.Prefetch(packHandle(id))
	}
}

// OpenBlob decrypts, decompresses and verifies the ciphertext of the blob at
// loc, appending the plaintext to buf[:0]. It decrypts in place, so
// ciphertext is overwritten. A blob that fails authentication or
// decompression, or whose plaintext does not hash to loc.ID, is an error
// wrapping blob.ErrCorrupt. It is safe for concurrent use.
func (r *Repository) OpenBlob(loc index.Location, ciphertext, buf []byte) ([]byte, error) {
	key, err := r.packKey(loc.Pack, loc.Ephemeral)
	if err != nil {
		return nil, err
	}
	plain, err := loc.Entry.Open(key, ciphertext, ciphertext)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", loc.Pack.Short(), err)
	}
	if loc.RawLength != 0 {
		if loc.RawLength > 64<<20 {
			return nil, fmt.Errorf("blob %v: raw length %d: %w", loc.Handle(), loc.RawLength, blob.ErrCorrupt)
		}
		out, err := r.dec.DecodeAll(plain, buf[:0])
		if err != nil || len(out) != int(loc.RawLength) {
			return nil, fmt.Errorf("blob %v in pack %s: decompress: %w", loc.Handle(), loc.Pack.Short(), blob.ErrCorrupt)
		}
		plain = out
	} else {
		plain = append(buf[:0], plain...)
	}
	ids := r.ids.Get().(*crypto.IDHasher)
	id := ids.Sum(plain)
	r.ids.Put(ids)
	if id != loc.ID {
		return nil, fmt.Errorf("blob %v in pack %s: content does not match its ID: %w", loc.Handle(), loc.Pack.Short(), blob.ErrCorrupt)
	}
	return plain, nil
}

// LoadTree loads and decodes a tree blob.
func (r *Repository) LoadTree(ctx context.Context, id blob.ID) (*snapshot.Tree, error) {
	b, err := r.LoadBlob(ctx, blob.Handle{Type: blob.Tree, ID: id}, nil)
	if err != nil {
		return nil, err
	}
	t, err := snapshot.DecodeTree(b)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", id.Short(), err)
	}
	return t, nil
}

// SaveSnapshot seals and stores sn, sets sn.ID and returns it. After a
// write session it first checks, and checks again once sn is stored, that
// no prune running meanwhile removes a pack the session used
// (CheckPruned): an error wrapping ErrPruned before storing means nothing
// was stored; after, that the stored snapshot may lack data.
func (r *Repository) SaveSnapshot(ctx context.Context, sn *snapshot.Snapshot) (blob.ID, error) {
	if err := r.CheckPruned(ctx); err != nil {
		return blob.ID{}, fmt.Errorf("%w; no snapshot was stored: back up again", err)
	}
	b, err := sn.Encode()
	if err != nil {
		return blob.ID{}, err
	}
	sealed, err := r.keys.SealObject("snapshot", b)
	if err != nil {
		return blob.ID{}, err
	}
	sn.ID = blob.Hash(sealed)
	if err := r.st.Save(ctx, store.Handle{Type: store.Snapshots, Name: sn.ID.String()}, sealed); err != nil {
		return sn.ID, fmt.Errorf("store snapshot: %w", err)
	}
	r.wrote(store.Snapshots, sn.ID, int64(len(sealed)))
	if err := r.CheckPruned(ctx); err != nil {
		return sn.ID, fmt.Errorf("%w; snapshot %s was stored and may lack data: back up again", err, sn.ID.Short())
	}
	return sn.ID, nil
}

// LoadSnapshot loads, verifies and decodes one snapshot.
func (r *Repository) LoadSnapshot(ctx context.Context, id blob.ID) (*snapshot.Snapshot, error) {
	b, err := r.loadVerified(ctx, store.Handle{Type: store.Snapshots, Name: id.String()})
	if err != nil {
		return nil, err
	}
	plain, err := r.keys.OpenObject("snapshot", b)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", id.Short(), err)
	}
	sn, err := snapshot.Decode(plain)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", id.Short(), err)
	}
	sn.ID = id
	return sn, nil
}

// SnapshotError reports a snapshot file that could not be used.
type SnapshotError struct {
	Name string
	Err  error
}

func (e *SnapshotError) Error() string {
	return fmt.Sprintf("snapshot %s: %v", shortName(e.Name), e.Err)
}
func (e *SnapshotError) Unwrap() error { return e.Err }

// Snapshots loads every snapshot, oldest first. Unusable snapshot files are
// skipped and returned as *SnapshotError values joined in the error. A
// write-only key reads none: the error wraps crypto.ErrWriteOnly.
func (r *Repository) Snapshots(ctx context.Context) ([]*snapshot.Snapshot, error) {
	if err := r.RequireRead(); err != nil {
		return nil, err
	}
	var names []string
	if err := r.st.List(ctx, store.Snapshots, func(fi store.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	list := make([]*snapshot.Snapshot, len(names))
	errs := make([]error, len(names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0) * 2)
	for i, name := range names {
		g.Go(func() error {
			id, err := blob.ParseID(name)
			if err == nil {
				list[i], err = r.LoadSnapshot(gctx, id)
			}
			if err != nil {
				errs[i] = &SnapshotError{name, err}
			}
			return gctx.Err()
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := list[:0]
	for _, s := range list {
		if s != nil {
			out = append(out, s)
		}
	}
	snapshot.Sort(out)
	return out, errors.Join(errs...)
}

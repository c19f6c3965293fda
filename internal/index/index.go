// Package index maps blobs to their place in packs and encodes index files.
//
// An Index is either wholly in memory (New: a map entry of about 80 bytes
// per blob) or a local cache of the repository's index files (OpenCache):
// sorted runs of fixed-size records, each with a fan-out table and a Bloom
// filter, memory-mapped read-only (lookups in runs past a resident bound
// read their records with pread), plus a small delta in memory for what
// this process adds. docs/design.md, section 7, specifies the run and
// manifest formats and the memory bound.
package index

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/pack"
)

// Pack describes one indexed pack: its ID, the ephemeral public key from its
// trailer (so readers need not read the trailer), and its blobs.
type Pack struct {
	ID        blob.ID
	Ephemeral [crypto.KeySize]byte
	Entries   []pack.Entry
}

// Location is where a blob is stored.
type Location struct {
	Pack      blob.ID
	Ephemeral [crypto.KeySize]byte
	pack.Entry
}

type entry struct {
	pack, offset, length, rawLength uint32
	ord                             uint32 // Ordinal, less the runs' count
}

type packInfo struct {
	id   blob.ID
	eph  [crypto.KeySize]byte
	data bool // holds file content, not only trees
}

// hasData reports whether p holds file content.
func hasData(p Pack) bool {
	return slices.ContainsFunc(p.Entries, func(e pack.Entry) bool { return e.Type == blob.Data })
}

// Index is the blob index: the runs of a cache directory (OpenCache),
// memory-mapped and never changed, and in front of them a delta in memory
// holding what Add adds (everything, for an index made by New), until
// Persisted spills it into a run of its own. It is safe for concurrent
// use.
type Index struct {
	mu     sync.RWMutex
	packs  []packInfo
	byPack map[blob.ID]uint32
	blobs  map[blob.Handle]entry
	// dups holds further locations of blobs stored more than once (by
	// concurrent backups), so ByPack can list every pack in full.
	dups map[blob.Handle][]entry

	// rs is the runs, replaced (never changed) by a spill; runLen is its
	// main records, under mu, as the delta's ordinals count from there.
	rs     atomic.Pointer[runSet]
	runLen uint64
	dir    string // of the cache, "" without one

	// persisted are the delta's packs that index files store, and their
	// entries, not yet spilled (see Persisted).
	spillMu   sync.Mutex
	spill     bool
	spillErr  error
	persisted []persistedFile
	spillable int

	errMu sync.Mutex
	err   error // the first corruption found in a run
}

// runSet is the runs an Index looks blobs up in, oldest first.
type runSet struct {
	runs  []*run
	names []string // their file names in the cache
	base  []uint64 // Ordinal of each run's first record
	n     uint64   // main records in all runs
}

func newRunSet(runs []*run, names []string) *runSet {
	rs := &runSet{runs: runs, names: names}
	for _, r := range runs {
		rs.base = append(rs.base, rs.n)
		rs.n += uint64(r.main)
	}
	readDirect(runs)
	return rs
}

// with returns rs and after it r, named name.
func (rs *runSet) with(r *run, name string) *runSet {
	return newRunSet(append(slices.Clip(rs.runs), r), append(slices.Clip(rs.names), name))
}

// New returns an empty index held in memory.
func New() *Index {
	x := &Index{byPack: map[blob.ID]uint32{}, blobs: map[blob.Handle]entry{}, dups: map[blob.Handle][]entry{}}
	x.rs.Store(&runSet{})
	return x
}

// newWithRuns returns an index over runs (oldest first) of cache dir,
// with their file names.
func newWithRuns(runs []*run, names []string, dir string) *Index {
	x := New()
	rs := newRunSet(runs, names)
	x.rs.Store(rs)
	x.runLen, x.dir = rs.n, dir
	return x
}

// Close unmaps the runs; the index must not be used afterwards. An index
// made by New needs no Close.
func (x *Index) Close() error {
	for _, r := range x.rs.Swap(&runSet{}).runs {
		r.close()
	}
	return nil
}

// Err returns the first corruption a lookup found in the cache, or nil.
// Such a lookup answered "not indexed" (so the blob is stored again, never
// skipped), and the cache's manifest was removed so that the next
// OpenCache rebuilds it.
func (x *Index) Err() error {
	x.errMu.Lock()
	defer x.errMu.Unlock()
	return x.err
}

func (x *Index) corrupt(err error) {
	x.errMu.Lock()
	defer x.errMu.Unlock()
	if x.err == nil {
		x.err = fmt.Errorf("index cache %s: %w", x.dir, err)
		_ = os.Remove(filepath.Join(x.dir, manifestName)) // best effort: the error is reported
	}
}

// findRun looks h up in the runs, oldest first: the runs looked in, the
// run's number, the record and its position.
func (x *Index) findRun(h blob.Handle) (*runSet, int, record, int, bool) {
	rs := x.rs.Load()
	for i, r := range rs.runs {
		rec, pos, ok, err := r.find(h)
		if err != nil {
			x.corrupt(err)
			continue
		}
		if ok {
			return rs, i, rec, pos, true
		}
	}
	return rs, 0, record{}, 0, false
}

// runPack finds pack id in the runs.
func (x *Index) runPack(id blob.ID) (packInfo, bool) {
	for _, r := range x.rs.Load().runs {
		p, ok, err := r.findPack(id)
		if err != nil {
			x.corrupt(err)
		}
		if ok {
			return p, true
		}
	}
	return packInfo{}, false
}

// Add records every blob of p. A blob already indexed keeps its first
// location for Lookup (ByPack still lists the others); a pack already indexed
// is ignored.
func (x *Index) Add(p Pack) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.byPack[p.ID]; ok {
		return
	}
	if _, ok := x.runPack(p.ID); ok {
		return
	}
	n := uint32(len(x.packs))
	x.packs = append(x.packs, packInfo{p.ID, p.Ephemeral, hasData(p)})
	x.byPack[p.ID] = n
	for _, e := range p.Entries {
		h := e.Handle()
		ent := entry{n, e.Offset, e.Length, e.RawLength, uint32(len(x.blobs))}
		if _, ok := x.blobs[h]; ok {
			x.dups[h] = append(x.dups[h], ent)
		} else if _, _, _, _, ok := x.findRun(h); ok {
			x.dups[h] = append(x.dups[h], ent)
		} else {
			x.blobs[h] = ent
		}
	}
}

// Lookup returns where h is stored.
func (x *Index) Lookup(h blob.Handle) (Location, bool) {
	x.mu.RLock()
	e, ok := x.blobs[h]
	if ok {
		p := x.packs[e.pack]
		x.mu.RUnlock()
		return Location{p.id, p.eph, pack.Entry{Type: h.Type, ID: h.ID, Offset: e.offset, Length: e.length, RawLength: e.rawLength}}, true
	}
	x.mu.RUnlock()
	rs, i, rec, _, ok := x.findRun(h)
	if !ok {
		return Location{}, false
	}
	loc, err := rs.runs[i].location(rec)
	if err != nil {
		x.corrupt(err)
		return Location{}, false
	}
	return loc, true
}

// Has reports whether h is indexed.
func (x *Index) Has(h blob.Handle) bool {
	x.mu.RLock()
	_, ok := x.blobs[h]
	x.mu.RUnlock()
	if ok {
		return true
	}
	_, _, _, _, ok = x.findRun(h)
	return ok
}

// Ordinal returns a number in [0, Len()) for h, and false if h is not
// indexed. Distinct handles have distinct numbers, and a handle keeps its
// number until the index is replaced (Add numbers only new handles, after
// all others) or, for a handle held only in memory, until a spill (see
// SetSpill). The numbers are dense but for one gap per handle indexed
// in two runs of a cache (a blob stored twice by concurrent backups, whose
// index files the cache read at different times), until the runs merge.
func (x *Index) Ordinal(h blob.Handle) (uint64, bool) {
	// Memory first: a spill publishes its run before it empties memory.
	x.mu.RLock()
	e, ok := x.blobs[h]
	n := x.runLen + uint64(e.ord)
	x.mu.RUnlock()
	if ok {
		return n, true
	}
	if rs, i, _, pos, ok := x.findRun(h); ok {
		return rs.base[i] + uint64(pos), true
	}
	return 0, false
}

// HasPack reports whether pack id is indexed.
func (x *Index) HasPack(id blob.ID) bool {
	x.mu.RLock()
	_, ok := x.byPack[id]
	x.mu.RUnlock()
	if ok {
		return true
	}
	_, ok = x.runPack(id)
	return ok
}

// TreesOnly reports whether pack id is indexed and holds only trees.
func (x *Index) TreesOnly(id blob.ID) bool {
	x.mu.RLock()
	n, ok := x.byPack[id]
	data := ok && x.packs[n].data
	x.mu.RUnlock()
	if ok {
		return !data
	}
	p, ok := x.runPack(id)
	return ok && !p.data
}

// Len returns the number of indexed blobs (see Ordinal for a blob in two
// runs, counted twice).
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return int(x.runLen) + len(x.blobs)
}

// ByPack returns every indexed pack with its entries (each blob listed under
// the pack the index holds it in). It holds the whole index in memory; a
// corrupt record in the runs is left out and reported by Err.
func (x *Index) ByPack() map[blob.ID]Pack {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := map[blob.ID]Pack{}
	add := func(p packInfo, e pack.Entry) {
		ip, ok := out[p.id]
		if !ok {
			ip = Pack{ID: p.id, Ephemeral: p.eph}
		}
		ip.Entries = append(ip.Entries, e)
		out[p.id] = ip
	}
	for _, r := range x.rs.Load().runs {
		for i := range r.npacks {
			if p, err := r.pack(i); err == nil {
				if _, ok := out[p.id]; !ok {
					out[p.id] = Pack{ID: p.id, Ephemeral: p.eph}
				}
			}
		}
		for i := range r.main + r.extra {
			rec, err := r.record(i)
			if err == nil {
				var p packInfo
				if p, err = r.pack(int(rec.pack)); err == nil {
					add(p, pack.Entry{Type: rec.h.Type, ID: rec.h.ID, Offset: rec.e.offset, Length: rec.e.length, RawLength: rec.e.rawLength})
				}
			}
			if err != nil {
				x.corrupt(err)
			}
		}
		r.dropPages()
	}
	for _, p := range x.packs {
		if _, ok := out[p.id]; !ok {
			out[p.id] = Pack{ID: p.id, Ephemeral: p.eph}
		}
	}
	for h, e := range x.blobs {
		add(x.packs[e.pack], pack.Entry{Type: h.Type, ID: h.ID, Offset: e.offset, Length: e.length, RawLength: e.rawLength})
	}
	for h, es := range x.dups {
		for _, e := range es {
			add(x.packs[e.pack], pack.Entry{Type: h.Type, ID: h.ID, Offset: e.offset, Length: e.length, RawLength: e.rawLength})
		}
	}
	for id, p := range out {
		slices.SortFunc(p.Entries, func(a, b pack.Entry) int { return cmp.Compare(a.Offset, b.Offset) })
		out[id] = p
	}
	return out
}

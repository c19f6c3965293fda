// Package index maps blobs to their place in packs and encodes index files.
//
// An Index is either wholly in memory (New: a map entry of about 80 bytes
// per blob) or a local cache of the repository's index files (OpenCache):
// sorted runs of fixed-size records, memory-mapped read-only, each with a
// fan-out table and a Bloom filter, plus a small delta in memory for what
// this process adds. docs/design.md, section 7, specifies the run and
// manifest formats and the memory bound.
package index

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
// holding what Add adds (everything, for an index made by New). It is safe
// for concurrent use.
type Index struct {
	mu     sync.RWMutex
	packs  []packInfo
	byPack map[blob.ID]uint32
	blobs  map[blob.Handle]entry
	// dups holds further locations of blobs stored more than once (by
	// concurrent backups), so ByPack can list every pack in full.
	dups map[blob.Handle][]entry

	runs     []*run   // oldest first; immutable
	base     []uint64 // Ordinal of each run's first record
	runLen   uint64   // main records in all runs
	runBytes int      // size of all runs
	dir      string   // of the cache, "" without one
	probes   atomic.Uint64

	errMu sync.Mutex
	err   error // the first corruption found in a run
}

// New returns an empty index held in memory.
func New() *Index {
	return &Index{byPack: map[blob.ID]uint32{}, blobs: map[blob.Handle]entry{}, dups: map[blob.Handle][]entry{}}
}

// newWithRuns returns an index over runs (oldest first) of cache dir.
func newWithRuns(runs []*run, dir string) *Index {
	x := New()
	x.runs, x.dir = runs, dir
	for _, r := range runs {
		x.base = append(x.base, x.runLen)
		x.runLen += uint64(r.main)
		x.runBytes += len(r.b)
	}
	return x
}

// Close unmaps the runs; the index must not be used afterwards. An index
// made by New needs no Close.
func (x *Index) Close() error {
	for _, r := range x.runs {
		r.close()
	}
	x.runs = nil
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

// Every checkEvery lookups in the runs (of blobs or packs, found or not),
// the index reads
// how much of the process's memory is mapped from files (/proc/self/statm);
// above residentBound it gives the runs' pages back to the kernel
// (run.dropPages). So a long stream of lookups (check, prune) keeps a
// bounded resident set, and pays page faults only when its pages would
// exceed the bound; smaller working sets stay resident.
const (
	checkEvery    = 1 << 12
	residentBound = 256 << 20
)

// releasePages drops the runs' pages if too many are resident.
func (x *Index) releasePages() {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return
	}
	shared, err := strconv.ParseUint(f[2], 10, 64)
	if err != nil || shared*uint64(os.Getpagesize()) < residentBound {
		return
	}
	for _, r := range x.runs {
		r.dropPages()
	}
}

// findRun looks h up in the runs, oldest first: the run's number, the
// record and its position.
func (x *Index) findRun(h blob.Handle) (int, record, int, bool) {
	x.probed()
	for i, r := range x.runs {
		rec, pos, ok, err := r.find(h)
		if err != nil {
			x.corrupt(err)
			continue
		}
		if ok {
			return i, rec, pos, true
		}
	}
	return 0, record{}, 0, false
}

// probed counts a lookup in the runs, and releases their pages every
// checkEvery lookups if too many are resident.
func (x *Index) probed() {
	if x.runBytes > residentBound && x.probes.Add(1)%checkEvery == 0 {
		x.releasePages()
	}
}

// runPack finds pack id in the runs.
func (x *Index) runPack(id blob.ID) (packInfo, bool) {
	x.probed()
	for _, r := range x.runs {
		n, ok, err := r.findPack(id)
		if err == nil && ok {
			p, err := r.pack(n)
			if err == nil {
				return p, true
			}
		}
		if err != nil {
			x.corrupt(err)
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
		} else if _, _, _, ok := x.findRun(h); ok {
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
	i, rec, _, ok := x.findRun(h)
	if !ok {
		return Location{}, false
	}
	loc, err := x.runs[i].location(rec)
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
	_, _, _, ok = x.findRun(h)
	return ok
}

// Ordinal returns a number in [0, Len()) for h, and false if h is not
// indexed. Distinct handles have distinct numbers, and a handle keeps its
// number until the index is replaced (Add numbers only new handles, after
// all others). The numbers are dense but for one gap per handle indexed
// in two runs of a cache (a blob stored twice by concurrent backups, whose
// index files the cache read at different times), until the runs merge.
func (x *Index) Ordinal(h blob.Handle) (uint64, bool) {
	if i, _, pos, ok := x.findRun(h); ok {
		return x.base[i] + uint64(pos), true
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.blobs[h]
	return x.runLen + uint64(e.ord), ok
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
	for _, r := range x.runs {
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

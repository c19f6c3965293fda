// Package index maps blobs to their place in packs, in memory, and encodes
// index files.
//
// Memory: every blob costs one map entry of a 33-byte key and a 20-byte
// value (about 80 bytes with map overhead), so 10 million chunks (5 TiB at
// the default 512 KiB average chunk) need under 1 GiB. docs/design.md ("Index
// at scale", planned) describes how this moves to sorted, memory-mapped files
// for 100 million.
package index

import (
	"cmp"
	"slices"
	"sync"

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
	ordinal                         uint32 // see Ordinal
}

type packInfo struct {
	id   blob.ID
	eph  [crypto.KeySize]byte
	data bool // holds file content, not only trees
}

// Index is the in-memory blob index. It is safe for concurrent use.
type Index struct {
	mu     sync.RWMutex
	packs  []packInfo
	byPack map[blob.ID]uint32
	blobs  map[blob.Handle]entry
	// dups holds further locations of blobs stored more than once (by
	// concurrent backups), so ByPack can list every pack in full.
	dups map[blob.Handle][]entry
}

// New returns an empty index.
func New() *Index {
	return &Index{byPack: map[blob.ID]uint32{}, blobs: map[blob.Handle]entry{}, dups: map[blob.Handle][]entry{}}
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
	n := uint32(len(x.packs))
	data := slices.ContainsFunc(p.Entries, func(e pack.Entry) bool { return e.Type == blob.Data })
	x.packs = append(x.packs, packInfo{p.ID, p.Ephemeral, data})
	x.byPack[p.ID] = n
	for _, e := range p.Entries {
		h := e.Handle()
		ent := entry{n, e.Offset, e.Length, e.RawLength, 0}
		if first, ok := x.blobs[h]; ok {
			ent.ordinal = first.ordinal
			x.dups[h] = append(x.dups[h], ent)
		} else {
			ent.ordinal = uint32(len(x.blobs))
			x.blobs[h] = ent
		}
	}
}

// Lookup returns where h is stored.
func (x *Index) Lookup(h blob.Handle) (Location, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.blobs[h]
	if !ok {
		return Location{}, false
	}
	p := x.packs[e.pack]
	return Location{p.id, p.eph, pack.Entry{Type: h.Type, ID: h.ID, Offset: e.offset, Length: e.length, RawLength: e.rawLength}}, true
}

// Has reports whether h is indexed.
func (x *Index) Has(h blob.Handle) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	_, ok := x.blobs[h]
	return ok
}

// Ordinal returns a dense number for h: every distinct indexed handle has
// its own number in [0, Len()), so that callers can keep sets of blobs as
// bitmaps of Len() bits. Numbers stay the same while no Add happens; false
// if h is not indexed.
func (x *Index) Ordinal(h blob.Handle) (uint64, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.blobs[h]
	return uint64(e.ordinal), ok
}

// HasPack reports whether pack id is indexed.
func (x *Index) HasPack(id blob.ID) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	_, ok := x.byPack[id]
	return ok
}

// TreesOnly reports whether pack id is indexed and holds only trees.
func (x *Index) TreesOnly(id blob.ID) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	n, ok := x.byPack[id]
	return ok && !x.packs[n].data
}

// Len returns the number of indexed blobs.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.blobs)
}

// ByPack returns every indexed pack with its entries (each blob listed under
// the pack the index holds it in).
func (x *Index) ByPack() map[blob.ID]Pack {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make(map[blob.ID]Pack, len(x.packs))
	for _, p := range x.packs {
		out[p.id] = Pack{ID: p.id, Ephemeral: p.eph}
	}
	add := func(h blob.Handle, e entry) {
		p := x.packs[e.pack]
		ip := out[p.id]
		ip.Entries = append(ip.Entries, pack.Entry{Type: h.Type, ID: h.ID, Offset: e.offset, Length: e.length, RawLength: e.rawLength})
		out[p.id] = ip
	}
	for h, e := range x.blobs {
		add(h, e)
	}
	for h, es := range x.dups {
		for _, e := range es {
			add(h, e)
		}
	}
	for id, p := range out {
		slices.SortFunc(p.Entries, func(a, b pack.Entry) int { return cmp.Compare(a.Offset, b.Offset) })
		out[id] = p
	}
	return out
}

package prune

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"slices"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/index"
)

// decision is what a plan does with a pack.
type decision uint8

const (
	undecided decision = iota // not listed by an index file read: left alone
	recent                    // kept because of Options.Grace
	keep
	repack
	drop
)

// packInfo is what a plan keeps of one stored pack: a few dozen bytes,
// never its entries.
type packInfo struct {
	id    blob.ID
	size  int64 // stored bytes
	total int64 // bytes of its blobs, as indexed
	// used are the bytes of its used blobs, including those stored in
	// another pack too (which a plan then counts in one pack only).
	used int64
	// digest sums a hash of each indexed entry, to check the pack's
	// header against when its blobs are copied (entryDigest).
	digest    uint64
	file      uint32 // the first index file read that lists it (Plan.files)
	listed    bool   // by an index file read
	young     bool   // stored within Options.Grace
	protected bool   // listed by an index file stored within Options.Grace
	state     decision
}

// packTable is every stored pack, sorted by ID.
type packTable []packInfo

// find returns the place of pack id.
func (t packTable) find(id blob.ID) (int, bool) {
	return slices.BinarySearchFunc(t, id, func(p packInfo, id blob.ID) int { return bytes.Compare(p.id[:], id[:]) })
}

// entryDigest sums a hash of each of pk's entries: the same for the same
// entries in any order.
func entryDigest(seed maphash.Seed, pk index.Pack) uint64 {
	var sum uint64
	var b [1 + blob.IDSize + 12]byte
	for _, e := range pk.Entries {
		b[0] = byte(e.Type)
		copy(b[1:], e.ID[:])
		binary.LittleEndian.PutUint32(b[1+blob.IDSize:], e.Offset)
		binary.LittleEndian.PutUint32(b[5+blob.IDSize:], e.Length)
		binary.LittleEndian.PutUint32(b[9+blob.IDSize:], e.RawLength)
		sum += maphash.Bytes(seed, b[:])
	}
	return sum
}

package index

import "math/bits"

// A Bitmap is a set of the numbers below its length in bits: blobs by
// their Ordinal (n/8 bytes for an index of n blobs, where a set of IDs
// would take 32 bytes and more per member), or anything else numbered
// densely from zero. Set and Has panic on a number beyond its length.
type Bitmap []uint64

// NewBitmap returns an empty Bitmap for the numbers below n.
func NewBitmap(n int) Bitmap { return make(Bitmap, (n+63)/64) }

// Set adds i.
func (b Bitmap) Set(i uint64) { b[i/64] |= 1 << (i % 64) }

// Has reports whether i is a member.
func (b Bitmap) Has(i uint64) bool { return b[i/64]&(1<<(i%64)) != 0 }

// Count returns the number of members.
func (b Bitmap) Count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// Within reports whether every member of b is in c, which must be as long.
func (b Bitmap) Within(c Bitmap) bool {
	for i, w := range b {
		if w&^c[i] != 0 {
			return false
		}
	}
	return true
}

package index

import (
	"encoding/binary"
	"math/bits"

	"github.com/kalaja/kalaja/internal/blob"
)

// The filter of a run is a blocked Bloom filter: each handle sets
// filterHashes bits in one 64-byte block, so a query reads one cache line.
// Blob IDs are keyed hashes, uniformly distributed, so the filter takes its
// hash bits from the ID itself: bytes 8..15 (mixed with the type) choose
// the block, bytes 16..23 the bits, nine bits per probe.
const (
	filterBitsPerKey = 10 // about 1% false positives
	filterHashes     = 7
)

// filterBlocks is the number of blocks a filter of n handles takes.
func filterBlocks(n uint64) uint64 {
	return max(1, (n*filterBitsPerKey+filterBlockSize*8-1)/(filterBlockSize*8))
}

// filterBlock returns the offset of h's block in a filter of blocks blocks
// and the bits to probe in it.
func filterBlock(h blob.Handle, blocks uint64) (uint64, uint64) {
	h1 := binary.LittleEndian.Uint64(h.ID[8:]) ^ uint64(h.Type)*0x9e3779b97f4a7c15
	blk, _ := bits.Mul64(h1, blocks)
	return blk * filterBlockSize, binary.LittleEndian.Uint64(h.ID[16:])
}

// filterHas reports whether h may be in filter f (len(f) a positive
// multiple of filterBlockSize); false means it is not.
func filterHas(f []byte, h blob.Handle) bool {
	off, probe := filterBlock(h, uint64(len(f)/filterBlockSize))
	blk := f[off : off+filterBlockSize]
	for range filterHashes {
		bit := probe & 511
		if blk[bit>>3]&(1<<(bit&7)) == 0 {
			return false
		}
		probe >>= 9
	}
	return true
}

// filterAdd sets h's bits in filter f.
func filterAdd(f []byte, h blob.Handle) {
	off, probe := filterBlock(h, uint64(len(f)/filterBlockSize))
	blk := f[off : off+filterBlockSize]
	for range filterHashes {
		bit := probe & 511
		blk[bit>>3] |= 1 << (bit & 7)
		probe >>= 9
	}
}

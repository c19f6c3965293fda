package chunker

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
)

// gearLabel separates the gear table derivation from other uses of the key.
const gearLabel = "kalaja chunker gear v1"

// GearTable returns the gear table derived from key as the package
// documentation specifies: G[4j+k] is the little-endian uint64 in bytes
// 8k…8k+7 of HMAC-SHA-256(key, "kalaja chunker gear v1" || byte(j)). It is
// deterministic, and each call returns a new table.
func GearTable(key [32]byte) *[256]uint64 {
	var t [256]uint64
	mac := hmac.New(sha256.New, key[:])
	msg := []byte(gearLabel + "\x00")
	var sum [sha256.Size]byte
	for j := range 64 {
		msg[len(msg)-1] = byte(j)
		mac.Reset()
		mac.Write(msg)
		mac.Sum(sum[:0])
		for k := range 4 {
			t[4*j+k] = binary.LittleEndian.Uint64(sum[8*k:])
		}
	}
	return &t
}

// find feeds the bytes of b in turn into the gear hash h and returns the index
// of the first byte after which h&mask == 0, or −1 if there is none, together
// with the hash after that byte (or after all of b).
//
// This is the hot loop. It handles four bytes per iteration and computes the
// four hashes from the hash before them, so that the loop-carried dependency
// is one shift and one add per four bytes instead of per byte:
//
//	h1 = h<<1 + g0
//	h2 = h<<2 + (g0<<1 + g1)
//	h3 = h2<<1 + g2
//	h4 = h<<4 + ((g0<<1 + g1)<<2 + g2<<1 + g3)
func find(tab *[256]uint64, b []byte, h, mask uint64) (int, uint64) {
	i := 0
	for ; len(b)-i >= 4; i += 4 {
		p := b[i : i+4 : i+4]
		g0, g1, g2, g3 := tab[p[0]], tab[p[1]], tab[p[2]], tab[p[3]]
		a := g0<<1 + g1
		c := g2<<1 + g3
		h1 := h<<1 + g0
		h2 := h<<2 + a
		h3 := h2<<1 + g2
		h4 := h<<4 + (a<<2 + c)
		if h1&mask == 0 {
			return i, h1
		}
		if h2&mask == 0 {
			return i + 1, h2
		}
		if h3&mask == 0 {
			return i + 2, h3
		}
		if h4&mask == 0 {
			return i + 3, h4
		}
		h = h4
	}
	for ; i < len(b); i++ {
		h = h<<1 + tab[b[i]]
		if h&mask == 0 {
			return i, h
		}
	}
	return -1, h
}

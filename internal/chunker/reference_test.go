package chunker

import (
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
)

// refLengths chunks data by the package documentation's definition, one byte
// at a time and with masks computed independently of Params.masks, and
// returns the chunk lengths. It is the oracle the Chunker is checked against.
func refLengths(tab *[256]uint64, p Params, data []byte) []int {
	b := 0
	for 1<<b < p.Avg {
		b++
	}
	maskS := ^(^uint64(0) >> (b + 2))
	maskL := ^(^uint64(0) >> (b - 2))
	var lens []int
	for len(data) > 0 {
		n := refCut(tab, p, maskS, maskL, data)
		lens = append(lens, n)
		data = data[n:]
	}
	return lens
}

func refCut(tab *[256]uint64, p Params, maskS, maskL uint64, r []byte) int {
	if len(r) <= p.Min {
		return len(r)
	}
	n := min(len(r), p.Max)
	var h uint64
	for l := p.Min; l <= n; l++ {
		h = h<<1 + tab[r[l-1]]
		m := maskL
		if l < p.Avg {
			m = maskS
		}
		if h&m == 0 {
			return l
		}
	}
	return n
}

// shaStream returns n bytes of the known-answer input: bytes 32i…32i+31 are
// SHA-256 of the uint64 i in little-endian order.
func shaStream(n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	var ctr [8]byte
	for i := uint64(0); len(out) < n; i++ {
		binary.LittleEndian.PutUint64(ctr[:], i)
		sum := sha256.Sum256(ctr[:])
		out = append(out, sum[:]...)
	}
	return out[:n]
}

// randomBytes returns n pseudo-random bytes determined by seed.
func randomBytes(seed uint64, n int) []byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b)
	return b
}

// testKey returns the key 0x00, 0x01, …, 0x1f with its first byte replaced
// by first.
func testKey(first byte) [32]byte {
	var k [32]byte
	for i := range k {
		k[i] = byte(i)
	}
	k[0] = first
	return k
}

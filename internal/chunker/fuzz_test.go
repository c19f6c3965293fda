package chunker

import (
	"bytes"
	"io"
	"testing"
)

// stepReader returns data in reads of at most step bytes.
type stepReader struct {
	data []byte
	step int
}

func (r *stepReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.step)], r.data)
	r.data = r.data[n:]
	return n, nil
}

// fuzzParams are the Params FuzzChunker chooses from: small, and shapes with
// short or empty strict and loose regions.
var fuzzParams = []Params{small, {64, 128, 129}, {100, 128, 1000}, {127, 128, 4096}, {200, 1024, 1025}}

// FuzzChunker checks the invariants and the reference implementation on
// arbitrary input, keys, read sizes and small Params.
func FuzzChunker(f *testing.F) {
	f.Add([]byte{}, byte(0), uint16(1), uint8(0))
	f.Add(bytes.Repeat([]byte{0}, 3000), byte(1), uint16(4096), uint8(1))
	f.Add(bytes.Repeat([]byte("abc"), 1000), byte(2), uint16(7), uint8(2))
	f.Add(randomBytes(16, 3000), byte(3), uint16(1000), uint8(3))
	f.Add(shaStream(3000), byte(0), uint16(65535), uint8(4))
	// Chunkers are reused across inputs, as Reset promises they can be;
	// the fuzz function is not run in parallel.
	type keyed struct {
		c   *Chunker
		tab *[256]uint64
	}
	cache := make(map[[2]byte]keyed)
	f.Fuzz(func(t *testing.T, data []byte, key byte, step uint16, shape uint8) {
		shape %= uint8(len(fuzzParams))
		p := fuzzParams[shape]
		k, ok := cache[[2]byte{key, shape}]
		if !ok {
			k = keyed{New(nil, testKey(key), p), GearTable(testKey(key))}
			cache[[2]byte{key, shape}] = k
		}
		k.c.Reset(&stepReader{data, int(step) + 1})
		chunks, err := chunkAll(t, k.c)
		if err != nil {
			t.Fatal(err)
		}
		checkChunks(t, k.tab, p, data, chunks)
	})
}

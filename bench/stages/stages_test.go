// Package stages measures each stage of the backup and restore pipelines
// alone, on one core, so the peer benchmark can say how close the whole
// pipeline is to the machine's limit. Run: go test -run '^$' -bench . ./bench/stages/
package stages

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/chunker"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/pack"
)

const chunkSize = 1 << 20

// inputs returns 1 MiB of random bytes and 1 MiB of source-like text.
func inputs() map[string][]byte {
	rng := rand.New(rand.NewPCG(1, 1))
	random := make([]byte, chunkSize)
	for i := range random {
		random[i] = byte(rng.UintN(256))
	}
	words := []string{"func", "return", "if", "err", "!=", "nil", "{", "}", "ctx", "repo", "blob", "ID", ":=", "for", "range"}
	var text bytes.Buffer
	for text.Len() < chunkSize {
		for range 1 + rng.IntN(12) {
			text.WriteString(words[rng.IntN(len(words))])
			text.WriteByte(' ')
		}
		text.WriteByte('\n')
	}
	return map[string][]byte{"random": random, "text": text.Bytes()[:chunkSize]}
}

func keys(b *testing.B) *crypto.Keys {
	k, err := crypto.NewKeys(blob.ID{})
	if err != nil {
		b.Fatal(err)
	}
	return k
}

func BenchmarkChunk(b *testing.B) {
	data := bytes.Repeat(inputs()["random"], 64)
	c := chunker.New(nil, [32]byte{}, chunker.DefaultParams())
	buf := make([]byte, 0, 4<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		c.Reset(bytes.NewReader(data))
		for {
			if _, err := c.Next(buf); err == io.EOF {
				break
			}
		}
	}
}

// BenchmarkBlobID hashes a whole chunk and a small file's 16 KiB with each
// ID function: BLAKE3 (format version 2) and HMAC-SHA256 (version 1).
func BenchmarkBlobID(b *testing.B) {
	data := inputs()["random"]
	for _, f := range []crypto.IDFunc{crypto.BLAKE3, crypto.HMACSHA256} {
		for _, n := range []int{16 << 10, chunkSize} {
			b.Run(fmt.Sprintf("%s/%dKiB", f, n>>10), func(b *testing.B) {
				h := keys(b).NewIDHasher(f)
				b.SetBytes(int64(n))
				for b.Loop() {
					h.Sum(data[:n])
				}
			})
		}
	}
}

func BenchmarkPackHash(b *testing.B) {
	data := inputs()["random"]
	b.SetBytes(chunkSize)
	for b.Loop() {
		sha256.Sum256(data)
	}
}

func BenchmarkCompress(b *testing.B) {
	for _, level := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault} {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1))
		if err != nil {
			b.Fatal(err)
		}
		for name, data := range inputs() {
			b.Run(level.String()+"/"+name, func(b *testing.B) {
				var out []byte
				b.SetBytes(chunkSize)
				for b.Loop() {
					out = enc.EncodeAll(data, out[:0])
				}
				b.ReportMetric(float64(len(out))/float64(len(data)), "ratio")
			})
		}
	}
}

func BenchmarkDecompress(b *testing.B) {
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault))
	dec, _ := zstd.NewReader(nil)
	data := inputs()["text"]
	z := enc.EncodeAll(data, nil)
	var out []byte
	b.SetBytes(chunkSize)
	for b.Loop() {
		out, _ = dec.DecodeAll(z, out[:0])
	}
}

func BenchmarkEncrypt(b *testing.B) {
	k := keys(b)
	data := inputs()["random"]
	h := blob.Handle{Type: blob.Data, ID: blob.Hash(data)}
	w, err := pack.NewWriter(k, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(chunkSize)
	for i := 0; b.Loop(); i++ {
		if i%512 == 0 {
			w, _ = pack.NewWriter(k, io.Discard)
		}
		if err := w.Add(h, data, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	k := keys(b)
	data := inputs()["random"]
	var buf bytes.Buffer
	w, _ := pack.NewWriter(k, &buf)
	w.Add(blob.Handle{Type: blob.Data, ID: blob.Hash(data)}, data, 0)
	w.Finish()
	p := buf.Bytes()
	hdr, err := pack.ReadHeader(k, bytes.NewReader(p), int64(len(p)))
	if err != nil {
		b.Fatal(err)
	}
	key, e := hdr.Key, hdr.Entries[0]
	ct := p[e.Offset : e.Offset+e.Length]
	var out []byte
	b.SetBytes(chunkSize)
	for b.Loop() {
		out, _ = e.Open(key, out[:0], ct)
	}
}

package detect

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// BenchmarkAnalyze measures the features of one file's sample: four full
// blocks of text (a source file), of random bytes (an encrypted one) or
// of a gzip file.
func BenchmarkAnalyze(b *testing.B) {
	for _, tc := range []struct {
		name string
		data []byte
	}{{"text", text(4 * BlockSize)}, {"random", random(4 * BlockSize)},
		// gzip: the first block is also decompressed (Sample.Inner).
		{"gzip", append(gzipped(text(64*BlockSize)), random(4*BlockSize)...)[:4*BlockSize]}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.data)))
			for b.Loop() {
				sample(tc.data)
			}
		})
	}
}

// BenchmarkJudge measures the fingerprint a backup takes of every file it
// reads: one block of text or of random bytes.
func BenchmarkJudge(b *testing.B) {
	for _, tc := range []struct {
		name string
		data []byte
	}{{"text", text(BlockSize)}, {"random", random(BlockSize)}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.data)))
			for b.Loop() {
				Judge(int64(len(tc.data)), tc.data)
			}
		})
	}
}

// The table-driven entropy equals the textbook sum over byte frequencies.
func TestEntropy(t *testing.T) {
	for _, n := range []int{1, 2, 127, 128, 1000, BlockSize} {
		for name, b := range map[string][]byte{"text": text(n), "random": random(n), "zeros": make([]byte, n)} {
			t.Run(fmt.Sprintf("%s/%d", name, n), func(t *testing.T) {
				var counts [256]int
				for _, c := range b {
					counts[c]++
				}
				want := 0.0
				for _, c := range counts {
					if c > 0 {
						p := float64(c) / float64(n)
						want -= p * math.Log2(p)
					}
				}
				h := countBytes(b)
				if got := h.entropy(len(b)); math.Abs(got-want) > 1e-9 {
					t.Errorf("entropy = %v, want %v", got, want)
				}
			})
		}
	}
	var none histogram
	if got := none.entropy(0); got != 0 {
		t.Errorf("entropy of nothing = %v, want 0", got)
	}
}

// BenchmarkMoveAway measures the deletions of mv onto another file system:
// one process has written a copy of each file there (a group's full list
// of files written) and deletes the originals, each judged against the
// copy it names and the files the group wrote.
func BenchmarkMoveAway(b *testing.B) {
	d, err := New(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	a := Actor{PID: 100, Command: "mv", UID: 1000}
	old := sample(text(3 * BlockSize))
	t0 := time.Now()
	const n = 4096
	src := make([]string, n)
	dst := make([]string, n)
	for i := range n {
		src[i] = fmt.Sprintf("/srv/registry/files/Documents/Finance/2026/report-%04d.odt", i)
		dst[i] = "/media/usb/archive" + src[i]
	}
	i := 0
	for b.Loop() {
		t := t0.Add(time.Duration(i) * time.Millisecond)
		d.Observe(Event{Op: Create, Path: dst[i%n], Actor: a, Time: t})
		d.Observe(Event{Op: Write, Path: dst[i%n], New: old, Actor: a, Time: t})
		d.Observe(Event{Op: Delete, Path: src[i%n], Old: old, Copies: []string{dst[i%n]}, Actor: a, Time: t})
		i++
	}
}

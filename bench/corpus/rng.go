package main

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// baseTime is the newest modification time of a generated file; older files
// are spread over the year before it.
var baseTime = time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC)

// key derives an independent 32-byte seed for one part of the corpus, so each
// part can be generated concurrently and still depend only on (seed, parts).
func key(seed uint64, parts ...any) [32]byte {
	return sha256.Sum256(fmt.Appendf(nil, "kalaja-bench-corpus/%d/%v", seed, parts))
}

// newRand returns a fast PCG-based generator for decisions and text.
func newRand(k [32]byte) *rand.Rand {
	return rand.New(rand.NewPCG(binary.LittleEndian.Uint64(k[:8]), binary.LittleEndian.Uint64(k[8:16])))
}

// newBytes returns a ChaCha8 stream for bulk random bytes.
func newBytes(k [32]byte) *rand.ChaCha8 { return rand.NewChaCha8(k) }

// logUniform returns an integer in [lo, hi] with a log-uniform distribution.
func logUniform(r *rand.Rand, lo, hi int64) int64 {
	if hi <= lo {
		return lo
	}
	v := float64(lo) * math.Exp(r.Float64()*math.Log(float64(hi)/float64(lo)))
	return min(max(int64(v), lo), hi)
}

// pastTime returns a modification time within the year before baseTime.
func pastTime(r *rand.Rand) time.Time {
	return baseTime.Add(-time.Duration(r.Int64N(365*24*3600)) * time.Second)
}

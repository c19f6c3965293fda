package index

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/pack"
)

// benchEntries is the size of the benchmarks' index: a few million blobs,
// or $KALAJA_BENCH_ENTRIES.
func benchEntries() int {
	if n, err := strconv.Atoi(os.Getenv("KALAJA_BENCH_ENTRIES")); err == nil && n > 0 {
		return n
	}
	return 4 << 20
}

const (
	benchPerPack = 1000
	benchPerFile = 10
)

// benchHandle is the j-th blob of pack i of the benchmark's repository:
// a hash, so that IDs are uniform as keyed BLAKE3 IDs are.
func benchHandle(i, j int) blob.Handle {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:], uint64(i))
	binary.LittleEndian.PutUint64(b[8:], uint64(j))
	t := blob.Data
	if j%50 == 0 {
		t = blob.Tree
	}
	return blob.Handle{Type: t, ID: blob.Hash(b[:])}
}

func benchPack(i int) Pack {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(i))
	p := Pack{ID: blob.Hash(append([]byte("pack"), b[:]...)), Ephemeral: [crypto.KeySize]byte{byte(i)}}
	for j := range benchPerPack {
		h := benchHandle(i, j)
		p.Entries = append(p.Entries, pack.Entry{Type: h.Type, ID: h.ID, Offset: uint32(j * 1000), Length: 1000})
	}
	return p
}

// benchFiles names the index files of n blobs and reads them by
// generating their packs.
func benchFiles(n int) ([]string, ReadFunc) {
	npacks := n / benchPerPack
	var names []string
	for f := 0; f*benchPerFile < npacks; f++ {
		names = append(names, fmt.Sprintf("%08d", f))
	}
	read := func(ctx context.Context, names []string, fn func(string, []Pack) error) error {
		for _, name := range names {
			f, _ := strconv.Atoi(name)
			var packs []Pack
			for i := f * benchPerFile; i < min((f+1)*benchPerFile, npacks); i++ {
				packs = append(packs, benchPack(i))
			}
			if err := fn(name, packs); err != nil {
				return err
			}
		}
		return nil
	}
	return names, read
}

// benchCache is one warm cache for all benchmarks of a run.
var benchCache struct {
	dir   string
	n     int
	names []string
	read  ReadFunc
	keep  bool
}

func warmCache(b *testing.B) {
	b.Helper()
	if benchCache.dir != "" {
		return
	}
	n := benchEntries()
	// $KALAJA_BENCH_CACHE keeps the cache between runs (it must have been
	// made for the same size).
	dir, keep := os.LookupEnv("KALAJA_BENCH_CACHE")
	if !keep {
		var err error
		if dir, err = os.MkdirTemp("", "i-runs-bench-"); err != nil {
			b.Fatal(err)
		}
	}
	names, read := benchFiles(n)
	x, _, err := OpenCache(context.Background(), dir, names, read)
	if err != nil {
		b.Fatal(err)
	}
	x.Close()
	benchCache.dir, benchCache.n, benchCache.names, benchCache.read, benchCache.keep = dir, n, names, read, keep
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchCache.dir != "" && !benchCache.keep {
		os.RemoveAll(benchCache.dir)
	}
	os.Exit(code)
}

// BenchmarkLookup looks up blobs that are indexed (hit) and that are not
// (miss, the question a backup asks of every new chunk), in the runs of a
// warm cache, through the mapping and with pread (direct), and, for
// comparison, in an index held in memory (New).
func BenchmarkLookup(b *testing.B) {
	warmCache(b)
	n := benchCache.n
	npacks := n / benchPerPack
	x, _, err := OpenCache(context.Background(), benchCache.dir, benchCache.names, benchCache.read)
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	hits := make([]blob.Handle, 1<<16)
	for i := range hits {
		hits[i] = benchHandle((i*7919)%npacks, (i*104729)%benchPerPack)
	}
	misses := make([]blob.Handle, 1<<16)
	for i := range misses {
		misses[i] = benchHandle(npacks+i, 0)
	}
	run := func(b *testing.B, name string, x *Index, hs []blob.Handle, want bool) {
		b.Run(name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				if _, ok := x.Lookup(hs[i&(len(hs)-1)]); ok != want {
					b.Fatalf("Lookup = %v", ok)
				}
				i++
			}
		})
	}
	run(b, "runs/hit", x, hits, true)
	run(b, "runs/miss", x, misses, false)
	b.Run("runs/direct", func(b *testing.B) {
		// As past the resident bound: records read with pread.
		old := residentBound
		residentBound = 0
		defer func() { residentBound = old }()
		y, _, err := OpenCache(context.Background(), benchCache.dir, benchCache.names, benchCache.read)
		if err != nil {
			b.Fatal(err)
		}
		defer y.Close()
		run(b, "hit", y, hits, true)
		run(b, "miss", y, misses, false)
	})
	b.Run("runs/ordinal", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, ok := x.Ordinal(hits[i&(len(hits)-1)]); !ok {
				b.Fatal("no ordinal")
			}
			i++
		}
	})
	b.Run("memory", func(b *testing.B) {
		m := New()
		if err := benchCache.read(context.Background(), benchCache.names, func(_ string, ps []Pack) error {
			for _, p := range ps {
				m.Add(p)
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		run(b, "hit", m, hits, true)
		run(b, "miss", m, misses, false)
	})
}

// BenchmarkOpenWarm opens the warm cache, as every backup does: list,
// lock, read the manifest, map and check the runs.
func BenchmarkOpenWarm(b *testing.B) {
	warmCache(b)
	for b.Loop() {
		x, _, err := OpenCache(context.Background(), benchCache.dir, benchCache.names, func(context.Context, []string, func(string, []Pack) error) error {
			b.Fatal("warm open read an index file")
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		x.Close()
	}
}

// BenchmarkOpenCold builds the cache from nothing (every index file read,
// batches sorted and merged).
func BenchmarkOpenCold(b *testing.B) {
	names, read := benchFiles(benchEntries())
	for b.Loop() {
		dir := b.TempDir()
		x, _, err := OpenCache(context.Background(), dir, names, read)
		if err != nil {
			b.Fatal(err)
		}
		x.Close()
		os.RemoveAll(dir)
	}
}

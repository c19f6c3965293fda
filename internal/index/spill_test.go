package index

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kalaja/kalaja/internal/blob"
)

func withSpill(t *testing.T, n int) {
	old := SpillRecords
	SpillRecords = n
	t.Cleanup(func() { SpillRecords = old })
}

// spillRounds adds rounds of four packs of 20 blobs to x as a backup
// does, each stored in an index file named prefix and the round, and
// returns the packs and the pool of handles grown. Meanwhile lookups of
// every handle added before run on other goroutines, and must find each.
func spillRounds(t *testing.T, x *Index, f *files, rng *rand.Rand, rounds int, prefix string, packs []Pack, pool []blob.Handle) ([]Pack, []blob.Handle) {
	t.Helper()
	var missed atomic.Int64
	for round := range rounds {
		more, p2 := randomPacks(rng, 4, 20, pool)
		pool, packs = p2, append(packs, more...)
		for _, p := range more {
			x.Add(p)
		}
		known := slices.Clone(pool)
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				for _, h := range known {
					if !x.Has(h) {
						missed.Add(1)
					}
				}
			})
		}
		name := fmt.Sprintf("%s%02d", prefix, round)
		f.byName[name] = more
		x.Persisted(name, more)
		wg.Wait()
		if err := x.SpillErr(); err != nil {
			t.Fatal(err)
		}
	}
	if n := missed.Load(); n > 0 {
		t.Fatalf("%d lookups during the spills missed a handle added before", n)
	}
	return packs, pool
}

// spillCache opens a cache of five index files of random packs, with
// spilling on at 150 entries.
func spillCache(t *testing.T, seed uint64) (x *Index, f *files, dir string, packs []Pack, pool []blob.Handle, rng *rand.Rand) {
	withSpill(t, 150)
	rng = rand.New(rand.NewPCG(seed, seed))
	dir = t.TempDir()
	packs, pool = randomPacks(rng, 20, 20, nil)
	f = &files{byName: makeFiles(packs, 4, "a")}
	x, _ = open(t, dir, f)
	x.SetSpill(true)
	return x, f, dir, packs, pool, rng
}

// TestSpill: a backup's packs, once their index files are stored, leave
// memory for runs in the cache; lookups answer as before, during the
// spill too, and the next open reads none of those index files again.
func TestSpill(t *testing.T) { eachRead(t, testSpill) }

func testSpill(t *testing.T) {
	x, f, dir, packs, pool, rng := spillCache(t, 9)
	packs, pool = spillRounds(t, x, f, rng, 10, "b", packs, pool)

	// A pack added but not yet in an index file stays in memory, with
	// what has not added up to a spill.
	cur, _ := randomPacks(rng, 1, 10, nil)
	x.Add(cur[0])
	distinct := map[blob.Handle]bool{}
	for _, e := range cur[0].Entries {
		distinct[e.Handle()] = true
	}
	x.mu.RLock()
	held := len(x.blobs)
	x.mu.RUnlock()
	if held != len(distinct) {
		t.Errorf("%d blobs held in memory after the spills, want the %d of the pack not yet in an index file", held, len(distinct))
	}
	if n := len(x.rs.Load().runs); n < 5 {
		t.Errorf("%d runs after five spills", n)
	}
	ref := reference(f)
	ref.Add(cur[0])
	for _, e := range cur[0].Entries {
		pool = append(pool, e.Handle())
	}
	sameAnswers(t, x, ref, pool, append(slices.Clone(packs), cur[0]), rng)

	f.reads = nil
	x2, _ := open(t, dir, f)
	if len(f.reads) != 0 {
		t.Errorf("the open after the spills read %v", f.reads)
	}
	pool = pool[:len(pool)-len(cur[0].Entries)]
	sameAnswers(t, x2, reference(f), pool, packs, rng)
}

// TestSpillCacheChanged: when another process changed the cache since the
// index was opened, a spill still serves the index, but the manifest does
// not list its run, and the next open reads its index files.
func TestSpillCacheChanged(t *testing.T) {
	x, f, dir, packs, pool, rng := spillCache(t, 10)

	other, p2 := randomPacks(rng, 3, 20, pool)
	pool, packs = p2, append(packs, other...)
	f.byName["c00"] = other
	open(t, dir, f) // another process reads c00 into the cache
	x.Add(other[0])
	x.Add(other[1])
	x.Add(other[2])

	packs, pool = spillRounds(t, x, f, rng, 2, "b", packs, pool)
	if n := len(x.rs.Load().runs); n < 2 {
		t.Fatalf("%d runs: no spill", n)
	}
	sameAnswers(t, x, reference(f), pool, packs, rng)

	f.reads = nil
	x2, _ := open(t, dir, f)
	if !slices.Equal(f.reads, []string{"b00", "b01"}) {
		t.Errorf("the open after the spill read %v, want b00 and b01", f.reads)
	}
	sameAnswers(t, x2, reference(f), pool, packs, rng)
}

// TestSpillOff: without SetSpill nothing leaves memory.
func TestSpillOff(t *testing.T) {
	withSpill(t, 10)
	rng := rand.New(rand.NewPCG(11, 11))
	f := &files{byName: map[string][]Pack{}}
	x, _ := open(t, t.TempDir(), f)
	packs, _ := spillRounds(t, x, f, rng, 3, "b", nil, nil)
	if n := len(x.rs.Load().runs); n != 0 {
		t.Errorf("%d runs", n)
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	if len(x.packs) != len(packs) {
		t.Errorf("%d packs in memory, want %d", len(x.packs), len(packs))
	}
}

package index

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"syscall"
	"testing"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/pack"
)

// files is a fake store of index files.
type files struct {
	byName map[string][]Pack
	reads  []string
	fail   map[string]bool
}

func (f *files) names() []string {
	var out []string
	for n := range f.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (f *files) read(ctx context.Context, names []string, fn func(string, []Pack) error) error {
	var errs []error
	for _, n := range names {
		f.reads = append(f.reads, n)
		if f.fail[n] {
			errs = append(errs, fmt.Errorf("index %s: unreadable", n))
			continue
		}
		if err := fn(n, f.byName[n]); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

// randomPacks returns packs of random blobs; some blobs appear in several
// packs, some IDs start with 0x0000 or 0xffff (the fan-out's edges).
func randomPacks(rng *rand.Rand, npacks, perPack int, pool []blob.Handle) ([]Pack, []blob.Handle) {
	var packs []Pack
	for range npacks {
		var p Pack
		fillRandom(rng, p.ID[:])
		fillRandom(rng, p.Ephemeral[:])
		off := uint32(0)
		for range perPack {
			var h blob.Handle
			switch r := rng.IntN(20); {
			case r == 0 && len(pool) > 0:
				h = pool[rng.IntN(len(pool))]
			default:
				h.Type = blob.Data
				if r%5 == 1 {
					h.Type = blob.Tree
				}
				fillRandom(rng, h.ID[:])
				switch r {
				case 2:
					h.ID[0], h.ID[1] = 0, 0
				case 3:
					h.ID[0], h.ID[1] = 0xff, 0xff
				}
				pool = append(pool, h)
			}
			l := uint32(100 + rng.IntN(1000))
			p.Entries = append(p.Entries, pack.Entry{Type: h.Type, ID: h.ID, Offset: off, Length: l, RawLength: uint32(rng.IntN(3000))})
			off += l
		}
		packs = append(packs, p)
	}
	return packs, pool
}

func fillRandom(rng *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
}

// makeFiles spreads packs over index files of up to per packs.
func makeFiles(packs []Pack, per int, prefix string) map[string][]Pack {
	out := map[string][]Pack{}
	for i := 0; i < len(packs); i += per {
		out[fmt.Sprintf("%s%04d", prefix, i/per)] = packs[i:min(i+per, len(packs))]
	}
	return out
}

// reference returns the in-memory index of the files (in name order).
func reference(f *files) *Index {
	x := New()
	for _, n := range f.names() {
		for _, p := range f.byName[n] {
			x.Add(p)
		}
	}
	return x
}

// sameAnswers checks that x answers as ref for every handle in pool,
// for missing handles and for every pack: a blob in several packs may be
// found in any of them (Lookup's location must be one ref lists).
func sameAnswers(t *testing.T, x, ref *Index, pool []blob.Handle, packs []Pack, rng *rand.Rand) {
	t.Helper()
	all := ref.ByPack()
	locs := map[blob.Handle][]Location{}
	for _, p := range all {
		for _, e := range p.Entries {
			locs[e.Handle()] = append(locs[e.Handle()], Location{p.ID, p.Ephemeral, e})
		}
	}
	if x.Len() != ref.Len() {
		t.Fatalf("Len %d, want %d", x.Len(), ref.Len())
	}
	seen := map[uint64]blob.Handle{}
	for _, h := range pool {
		loc, ok := x.Lookup(h)
		if !ok || !slices.Contains(locs[h], loc) {
			t.Fatalf("Lookup(%v) = %v, %v; want one of %v", h, loc, ok, locs[h])
		}
		if !x.Has(h) {
			t.Fatalf("Has(%v) = false", h)
		}
		o, ok := x.Ordinal(h)
		if !ok || o >= uint64(x.Len()) {
			t.Fatalf("Ordinal(%v) = %d, %v of %d", h, o, ok, x.Len())
		}
		if prev, ok := seen[o]; ok && prev != h {
			t.Fatalf("Ordinal %d for %v and %v", o, prev, h)
		}
		seen[o] = h
	}
	for range 1000 {
		var h blob.Handle
		h.Type = blob.Type(1 + rng.IntN(2))
		fillRandom(rng, h.ID[:])
		if rng.IntN(4) == 0 {
			h.ID[0], h.ID[1] = 0xff, 0xff
		}
		if _, ok := x.Lookup(h); ok || x.Has(h) {
			t.Fatalf("missing %v found", h)
		}
		if _, ok := x.Ordinal(h); ok {
			t.Fatalf("missing %v has an ordinal", h)
		}
	}
	if h := pool[0]; true {
		h.Type = 3 - h.Type
		if _, ok := locs[h]; !ok && x.Has(h) {
			t.Fatalf("%v found under the other type", h)
		}
	}
	for _, p := range packs {
		if !x.HasPack(p.ID) || x.TreesOnly(p.ID) != ref.TreesOnly(p.ID) {
			t.Fatalf("pack %v: HasPack %v, TreesOnly %v", p.ID, x.HasPack(p.ID), x.TreesOnly(p.ID))
		}
	}
	var missing blob.ID
	fillRandom(rng, missing[:])
	if x.HasPack(missing) || x.TreesOnly(missing) {
		t.Fatal("missing pack found")
	}
	got := x.ByPack()
	if len(got) != len(all) {
		t.Fatalf("ByPack: %d packs, want %d", len(got), len(all))
	}
	for id, p := range all {
		if !slices.Equal(got[id].Entries, p.Entries) {
			t.Fatalf("ByPack %v: %d entries, want %d", id, len(got[id].Entries), len(p.Entries))
		}
	}
	if err := x.Err(); err != nil {
		t.Fatal(err)
	}
}

func withBatch(t *testing.T, n int) {
	old := batchRecords
	batchRecords = n
	t.Cleanup(func() { batchRecords = old })
}

// eachRead runs test with the lookups of runs reading through their
// mappings and, with the resident bound at zero, from their files.
func eachRead(t *testing.T, test func(t *testing.T)) {
	for _, mode := range []struct {
		name  string
		bound int
	}{{"mapped", residentBound}, {"direct", 0}} {
		t.Run(mode.name, func(t *testing.T) {
			old := residentBound
			residentBound = mode.bound
			t.Cleanup(func() { residentBound = old })
			test(t)
		})
	}
}

func open(t *testing.T, dir string, f *files) (*Index, []string) {
	t.Helper()
	x, covered, err := OpenCache(context.Background(), dir, f.names(), f.read)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x, covered
}

func TestCacheLookups(t *testing.T) { eachRead(t, testCacheLookups) }

func testCacheLookups(t *testing.T) {
	tests := []struct {
		name                 string
		npacks, perPack, per int
		batch                int
		delta                int // packs added after open
	}{
		{"one file", 1, 10, 1, 1 << 20, 0},
		{"one batch", 50, 40, 7, 1 << 20, 0},
		{"many batches merged", 200, 30, 3, 500, 0},
		{"batch per file", 40, 30, 1, 1, 5},
		{"with delta", 50, 20, 5, 1 << 20, 10},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			withBatch(t, tt.batch)
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			packs, pool := randomPacks(rng, tt.npacks, tt.perPack, nil)
			f := &files{byName: makeFiles(packs, tt.per, "a")}
			x, covered := open(t, t.TempDir(), f)
			if len(covered) != len(f.byName) {
				t.Fatalf("covers %d files of %d", len(covered), len(f.byName))
			}
			for _, r := range x.rs.Load().runs {
				if r.direct.Load() != (residentBound == 0) {
					t.Fatalf("run direct = %v with the resident bound at %d", r.direct.Load(), residentBound)
				}
			}
			ref := reference(f)
			more, pool := randomPacks(rng, tt.delta, tt.perPack, pool)
			for _, p := range more {
				x.Add(p)
				ref.Add(p)
			}
			sameAnswers(t, x, ref, pool, slices.Concat(packs, more), rng)
		})
	}
}

// TestCacheCrowdedBuckets puts every blob in a few fan-out buckets, so
// that lookups search buckets of thousands of records (run.search).
func TestCacheCrowdedBuckets(t *testing.T) { eachRead(t, testCacheCrowdedBuckets) }

func testCacheCrowdedBuckets(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	packs, pool := randomPacks(rng, 40, 200, nil)
	crowd := func(id *blob.ID) { id[0], id[1] = id[31]&1, 0xff*(id[30]&1) }
	for i := range pool {
		crowd(&pool[i].ID)
	}
	for _, p := range packs {
		for i := range p.Entries {
			crowd(&p.Entries[i].ID)
		}
	}
	f := &files{byName: makeFiles(packs, 3, "a")}
	x, _ := open(t, t.TempDir(), f)
	sameAnswers(t, x, reference(f), pool, packs, rng)
	for _, h := range pool[:500] {
		for _, d := range []byte{1, 0xff} {
			m := h
			m.ID[31] += d
			if _, ok := x.Lookup(m); ok != slices.Contains(pool, m) {
				t.Fatalf("Lookup(%v) = %v", m, ok)
			}
		}
	}
}

func TestCacheIncremental(t *testing.T) {
	withBatch(t, 200)
	rng := rand.New(rand.NewPCG(7, 7))
	dir := t.TempDir()
	packs, pool := randomPacks(rng, 60, 20, nil)
	f := &files{byName: makeFiles(packs, 4, "a")}
	x, _ := open(t, dir, f)
	sameAnswers(t, x, reference(f), pool, packs, rng)

	// Warm: nothing is read.
	f.reads = nil
	x, _ = open(t, dir, f)
	if len(f.reads) != 0 {
		t.Fatalf("warm open read %d files", len(f.reads))
	}
	sameAnswers(t, x, reference(f), pool, packs, rng)

	// New files: only they are read, many times (runs merge as they grow).
	for round := range 12 {
		more, p2 := randomPacks(rng, 1+round, 10, pool)
		pool, packs = p2, append(packs, more...)
		for n, ps := range makeFiles(more, 2, fmt.Sprintf("b%02d-", round)) {
			f.byName[n] = ps
		}
		f.reads = nil
		x, _ = open(t, dir, f)
		for _, n := range f.reads {
			if n[0] != 'b' || n[1:3] != fmt.Sprintf("%02d", round) {
				t.Fatalf("round %d read old file %s", round, n)
			}
		}
		sameAnswers(t, x, reference(f), pool, packs, rng)
		if len(x.rs.Load().runs) > maxRuns {
			t.Fatalf("%d runs", len(x.rs.Load().runs))
		}
	}

	// Removed files (prune): their blobs go, what else their runs held is
	// read again.
	var kept []Pack
	pool = nil
	for _, n := range f.names() {
		if n[0] == 'a' && n[len(n)-1] == '1' {
			delete(f.byName, n)
			continue
		}
		kept = append(kept, f.byName[n]...)
	}
	for _, p := range kept {
		for _, e := range p.Entries {
			pool = append(pool, e.Handle())
		}
	}
	x, _ = open(t, dir, f)
	ref := reference(f)
	sameAnswers(t, x, ref, pool, kept, rng)
	for _, p := range packs {
		if x.HasPack(p.ID) != ref.HasPack(p.ID) {
			t.Fatalf("pack %v: HasPack %v after removal", p.ID, x.HasPack(p.ID))
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(x.rs.Load().runs)+2 {
		t.Fatalf("%d files in the cache for %d runs", len(entries), len(x.rs.Load().runs))
	}
}

func TestCacheUnreadable(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	packs, _ := randomPacks(rng, 10, 5, nil)
	f := &files{byName: makeFiles(packs, 2, "a"), fail: map[string]bool{"a0001": true}}
	dir := t.TempDir()
	x, covered, err := OpenCache(context.Background(), dir, f.names(), f.read)
	if err == nil || x == nil {
		t.Fatalf("got %v, %v", x, err)
	}
	if slices.Contains(covered, "a0001") || len(covered) != len(f.byName)-1 {
		t.Fatalf("covered %v", covered)
	}
	x.Close()
	f.fail, f.reads = nil, nil
	x, _ = open(t, dir, f)
	if !slices.Equal(f.reads, []string{"a0001"}) {
		t.Fatalf("read %v, want the unreadable file again", f.reads)
	}
	if !x.HasPack(packs[2].ID) {
		t.Fatal("pack of the file read late missing")
	}
}

func TestCacheEmpty(t *testing.T) {
	f := &files{byName: map[string][]Pack{}}
	x, _ := open(t, t.TempDir(), f)
	if x.Len() != 0 || x.Has(blob.Handle{Type: blob.Data}) {
		t.Fatal("empty cache has blobs")
	}
	f.byName["empty"] = nil
	x, covered := open(t, t.TempDir(), f)
	if x.Len() != 0 || !slices.Equal(covered, []string{"empty"}) {
		t.Fatalf("covered %v", covered)
	}
}

func TestCachePermissions(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	packs, _ := randomPacks(rng, 3, 3, nil)
	dir := filepath.Join(t.TempDir(), "c", "index")
	open(t, dir, &files{byName: makeFiles(packs, 1, "a")})
	err := filepath.WalkDir(filepath.Dir(dir), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := os.FileMode(0o600)
		if d.IsDir() {
			want = 0o700 | os.ModeDir
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestFilterFalsePositives(t *testing.T) {
	const n = 100_000
	rng := rand.New(rand.NewPCG(5, 5))
	f := make([]byte, filterBlocks(n)*filterBlockSize)
	for range n {
		var h blob.Handle
		h.Type = blob.Data
		fillRandom(rng, h.ID[:])
		filterAdd(f, h)
		if !filterHas(f, h) {
			t.Fatal("added handle not in filter")
		}
	}
	fp := 0
	for range n {
		var h blob.Handle
		h.Type = blob.Data
		fillRandom(rng, h.ID[:])
		if filterHas(f, h) {
			fp++
		}
	}
	if rate := float64(fp) / n; rate > 0.02 {
		t.Fatalf("false positive rate %.4f", rate)
	}
}

func TestCompactFrom(t *testing.T) {
	mk := func(sizes ...int) []*run {
		var out []*run
		for _, s := range sizes {
			out = append(out, &run{main: s})
		}
		return out
	}
	tests := []struct {
		sizes []int
		want  int
	}{
		{nil, -1},
		{[]int{10}, -1},
		{[]int{100, 10}, -1},
		{[]int{100, 10, 10}, 1},
		{[]int{100, 30}, 0},
		{[]int{1000, 100, 20, 5}, -1},
		{[]int{1000, 100, 20, 5, 5}, 1},
		{[]int{1000, 200, 20, 5, 5}, 2},
		{[]int{152587890625, 30517578125, 6103515625, 1220703125, 244140625, 48828125, 9765625, 1953125, 390625, 78125, 15625, 3125, 625, 125, 25, 5, 1}, 1},
	}
	for _, tt := range tests {
		if got := compactFrom(mk(tt.sizes...)); got != tt.want {
			t.Errorf("compactFrom(%v) = %d, want %d", tt.sizes, got, tt.want)
		}
	}
}

// TestRunRecordCorrupt flips a byte of one record of a mapped run: the
// lookup of that blob says "not indexed" and Err reports it, never another
// location; the next open rebuilds.
func TestRunRecordCorrupt(t *testing.T) { eachRead(t, testRunRecordCorrupt) }

func testRunRecordCorrupt(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	packs, pool := randomPacks(rng, 5, 10, nil)
	f := &files{byName: makeFiles(packs, 5, "a")}
	dir := t.TempDir()
	x, _ := open(t, dir, f)
	x.Close()
	m, err := decodeManifest(mustRead(t, filepath.Join(dir, manifestName)))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, m.runs[0].name)
	b := mustRead(t, path)
	r, err := parseRun(b)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := r.record(3)
	if err != nil {
		t.Fatal(err)
	}
	off := len(b) - len(r.records) + 3*recordSize + 40 // the offset field
	b[off] ^= 1
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	f.reads = nil
	y, _ := open(t, dir, f)
	if len(f.reads) != 0 { // warm: the damage is in a record, found on use
		t.Fatalf("read %v", f.reads)
	}
	if _, ok := y.Lookup(rec.h); ok {
		t.Fatal("corrupt record found")
	}
	if !errors.Is(y.Err(), blob.ErrCorrupt) {
		t.Fatalf("Err %v", y.Err())
	}
	f.reads = nil
	z, _ := open(t, dir, f)
	if len(f.reads) != len(f.byName) {
		t.Fatalf("after corruption read %v, want a rebuild", f.reads)
	}
	sameAnswers(t, z, reference(f), pool, packs, rng)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCacheDamage truncates and alters the manifest and a run at byte
// boundaries of interest (each field of the header, the fan-out, the
// filter, the pack table and records): every open answers right, rebuilding
// from the index files what it cannot use.
func TestCacheDamage(t *testing.T) { eachRead(t, testCacheDamage) }

func testCacheDamage(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	packs, pool := randomPacks(rng, 8, 10, nil)
	f := &files{byName: makeFiles(packs, 2, "a")}
	ref := reference(f)
	dir := t.TempDir()
	x, _ := open(t, dir, f)
	x.Close()
	manifestBytes := mustRead(t, filepath.Join(dir, manifestName))
	m, err := decodeManifest(manifestBytes)
	if err != nil {
		t.Fatal(err)
	}
	runPath := filepath.Join(dir, m.runs[0].name)
	runBytes := mustRead(t, runPath)
	r, _ := parseRun(runBytes)
	packsAt := len(runBytes) - len(r.records) - len(r.packs)
	recordsAt := len(runBytes) - len(r.records)
	runPoints := []int{0, 4, 8, 16, 24, 32, 40, 44, 60, runHeaderSize, runHeaderSize + 4*100, runHeaderSize + fanoutSize - 1,
		runHeaderSize + fanoutSize, packsAt - 1, packsAt, packsAt + 70, recordsAt, recordsAt + 33, len(runBytes) - 1}
	restore := func() {
		if err := os.WriteFile(filepath.Join(dir, manifestName), manifestBytes, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(runPath, runBytes, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	locs := map[Location]bool{}
	for _, p := range ref.ByPack() {
		for _, e := range p.Entries {
			locs[Location{p.ID, p.Ephemeral, e}] = true
		}
	}
	check := func(t *testing.T) {
		x, _ := open(t, dir, f)
		for _, h := range pool {
			loc, ok := x.Lookup(h)
			if ok && !locs[loc] {
				t.Fatalf("Lookup(%v) = %v, not a location of it", h, loc)
			}
			if !ok && x.Err() == nil {
				t.Fatalf("Lookup(%v) missed without an error", h)
			}
		}
		x.Close()
		restore()
	}
	for _, n := range []int{0, 1, 4, 8, 12, len(manifestBytes) / 2, len(manifestBytes) - 5, len(manifestBytes) - 1} {
		t.Run(fmt.Sprintf("manifest truncated at %d", n), func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(dir, manifestName), manifestBytes[:n], 0o600); err != nil {
				t.Fatal(err)
			}
			check(t)
		})
	}
	for i := range manifestBytes {
		t.Run(fmt.Sprintf("manifest byte %d", i), func(t *testing.T) {
			b := slices.Clone(manifestBytes)
			b[i] ^= 0x40
			if err := os.WriteFile(filepath.Join(dir, manifestName), b, 0o600); err != nil {
				t.Fatal(err)
			}
			check(t)
		})
	}
	for _, n := range runPoints {
		t.Run(fmt.Sprintf("run truncated at %d", n), func(t *testing.T) {
			if err := os.WriteFile(runPath, runBytes[:n], 0o600); err != nil {
				t.Fatal(err)
			}
			check(t)
		})
		t.Run(fmt.Sprintf("run byte %d", n), func(t *testing.T) {
			b := slices.Clone(runBytes)
			b[n] ^= 0x01
			if err := os.WriteFile(runPath, b, 0o600); err != nil {
				t.Fatal(err)
			}
			check(t)
		})
	}
	t.Run("run missing", func(t *testing.T) {
		if err := os.Remove(runPath); err != nil {
			t.Fatal(err)
		}
		check(t)
	})
}

// FuzzRun decodes runs: raw bytes, and a valid run with bytes patched in
// at an offset and cut at a length (a valid run is half a megabyte, too
// large for the fuzzer to mutate whole). Every decode and lookup either
// succeeds or errs; none panics.
func FuzzRun(f *testing.F) {
	rng := rand.New(rand.NewPCG(9, 9))
	packs, _ := randomPacks(rng, 3, 4, nil)
	dir := f.TempDir()
	var bt batch
	for _, p := range packs {
		bt.add(p)
	}
	name, err := bt.write(dir, nil)
	if err != nil {
		f.Fatal(err)
	}
	valid, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("KLJR"), uint32(0), []byte{}, uint32(len(valid)))
	f.Add([]byte{}, uint32(8), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, uint32(len(valid)))
	f.Add([]byte{}, uint32(len(valid)-100), []byte{1, 2, 3}, uint32(len(valid)))
	f.Add([]byte{}, uint32(runHeaderSize+4), []byte{9}, uint32(len(valid)-56))
	f.Fuzz(func(t *testing.T, raw []byte, off uint32, patch []byte, cut uint32) {
		exercise(raw)
		b := slices.Clone(valid)
		if o := int(off) % len(b); len(patch) > 0 {
			copy(b[o:], patch)
		}
		exercise(b[:int(cut)%(len(b)+1)])
	})
}

// exercise decodes b as a run and reads all of it that decodes.
func exercise(b []byte) {
	r, err := parseRun(b)
	if err != nil {
		return
	}
	for i := range r.main + r.extra {
		if rec, err := r.record(i); err == nil {
			_, _ = r.location(rec)
			_, _, _, _ = r.find(rec.h)
		}
	}
	for i := range r.npacks {
		if p, err := r.pack(i); err == nil {
			_, _, _ = r.findPack(p.id)
		}
	}
	var h blob.Handle
	for _, t := range []blob.Type{0, blob.Data, blob.Tree, 9} {
		for _, id := range []byte{0, 0x80, 0xff} {
			h.Type, h.ID[0], h.ID[1] = t, id, id
			_, _, _, _ = r.find(h)
		}
	}
	_, _, _ = r.findPack(blob.ID{})
}

func FuzzRunManifest(f *testing.F) {
	m := &manifest{runs: []manifestRun{{"run-0123456789abcdef", 7}}, files: map[string]int{"abc": 0, "def": 0}}
	f.Add(m.encode())
	f.Add([]byte("KLJM"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeManifest(b)
		if err != nil {
			return
		}
		if _, err := decodeManifest(m.encode()); err != nil {
			t.Fatalf("re-encoded manifest: %v", err)
		}
	})
}

// crashFiles is the repository the crash test's processes index.
func crashFiles(n int) (*files, []Pack, []blob.Handle) {
	rng := rand.New(rand.NewPCG(10, 10))
	packs, pool := randomPacks(rng, n, 20, nil)
	return &files{byName: makeFiles(packs, 2, "a")}, packs, pool
}

// TestCacheKilled kills (SIGKILL) a process in the middle of building the
// cache, cold and then warm, after it wrote some runs and before its
// manifest: the next open answers right, reads only what the surviving
// manifest does not cover, and removes what the killed process left.
func TestCacheKilled(t *testing.T) {
	if dir := os.Getenv("KALAJA_INDEX_CRASH_DIR"); dir != "" {
		n, _ := strconv.Atoi(os.Getenv("KALAJA_INDEX_CRASH_PACKS"))
		f, _, _ := crashFiles(n)
		batchRecords = 50
		written := 0
		testHookRunWritten = func() {
			if written++; written == 3 {
				fmt.Println("written")
				select {} // until killed
			}
		}
		_, _, err := OpenCache(context.Background(), dir, f.names(), f.read)
		t.Fatalf("not killed: %v", err)
	}
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	kill := func(npacks int) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCacheKilled$")
		cmd.Env = append(os.Environ(), "KALAJA_INDEX_CRASH_DIR="+dir, fmt.Sprint("KALAJA_INDEX_CRASH_PACKS=", npacks))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if line != "written\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child said %q, %v", line, err)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
	}
	check := func(npacks, wantReads int) {
		t.Helper()
		f, packs, pool := crashFiles(npacks)
		entries, _ := os.ReadDir(dir)
		if len(entries) < 3 {
			t.Fatalf("the killed process left %d files", len(entries))
		}
		x, _ := open(t, dir, f)
		if len(f.reads) != wantReads {
			t.Fatalf("read %d files, want %d", len(f.reads), wantReads)
		}
		sameAnswers(t, x, reference(f), pool, packs, rand.New(rand.NewPCG(1, 1)))
		entries, _ = os.ReadDir(dir)
		if len(entries) != len(x.rs.Load().runs)+2 {
			t.Fatalf("%d files in the cache for %d runs", len(entries), len(x.rs.Load().runs))
		}
	}
	withBatch(t, 50)
	kill(20)
	check(20, 10) // cold: every file
	kill(40)
	check(40, 10) // warm: the 10 new files only
}

// TestCachePackListedTwice: a pack listed by two index files (an orphan
// adopted by two backups), read into different runs, in one batch, or
// merged, lists its blobs once, as the in-memory index does.
func TestCachePackListedTwice(t *testing.T) {
	withBatch(t, 30)
	rng := rand.New(rand.NewPCG(12, 12))
	packs, pool := randomPacks(rng, 6, 10, nil)
	dir := t.TempDir()
	f := &files{byName: map[string][]Pack{"a0": packs[:3], "a1": packs[3:]}}
	open(t, dir, f)
	f.byName["b0"] = []Pack{packs[1], packs[4]}
	f.byName["b1"] = []Pack{packs[1]}
	x, _ := open(t, dir, f)
	sameAnswers(t, x, reference(f), pool, packs, rng)
	f.byName["c0"] = []Pack{packs[2], packs[0], packs[2]}
	for i := range 8 {
		f.byName[fmt.Sprint("d", i)] = []Pack{packs[i%6]}
	}
	x, _ = open(t, dir, f)
	sameAnswers(t, x, reference(f), pool, packs, rng)
	x, _ = open(t, t.TempDir(), f)
	sameAnswers(t, x, reference(f), pool, packs, rng)
}

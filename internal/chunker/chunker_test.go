package chunker

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// small are the Params used where many chunks are wanted from little data.
var small = Params{Min: 64, Avg: 256, Max: 1024}

// chunkAll returns the chunks of c's stream, and the first error other than
// io.EOF.
func chunkAll(t testing.TB, c *Chunker) ([][]byte, error) {
	t.Helper()
	var chunks [][]byte
	for {
		ch, err := c.Next(nil)
		if err == io.EOF {
			if ch != nil {
				t.Fatalf("Next returned %d bytes with io.EOF", len(ch))
			}
			return chunks, nil
		}
		if err != nil {
			return chunks, err
		}
		if len(ch) == 0 {
			t.Fatalf("Next returned an empty chunk after %d chunks", len(chunks))
		}
		chunks = append(chunks, ch)
	}
}

// checkChunks checks the invariants of chunks cut from data: they concatenate
// to data, all but the last are within [Min, Max], the last within [1, Max],
// and their lengths are those of the reference implementation.
func checkChunks(t testing.TB, tab *[256]uint64, p Params, data []byte, chunks [][]byte) {
	t.Helper()
	if got := bytes.Join(chunks, nil); !bytes.Equal(got, data) {
		t.Fatalf("chunks concatenate to %d bytes that differ from the %d input bytes", len(got), len(data))
	}
	lens := make([]int, len(chunks))
	for i, ch := range chunks {
		lens[i] = len(ch)
		lo := p.Min
		if i == len(chunks)-1 {
			lo = 1
		}
		if len(ch) < lo || len(ch) > p.Max {
			t.Fatalf("chunk %d of %d has %d bytes, want [%d, %d]", i, len(chunks), len(ch), lo, p.Max)
		}
	}
	if want := refLengths(tab, p, data); !slices.Equal(lens, want) {
		t.Fatalf("chunk lengths differ from the reference:\n got %v\nwant %v", lens, want)
	}
}

// choppyReader returns data in reads of random length, some of them empty.
type choppyReader struct {
	data []byte
	rng  *rand.Rand
	max  int
}

func (r *choppyReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.rng.IntN(r.max+1))], r.data)
	r.data = r.data[n:]
	return n, nil
}

// failingReader returns data, then fails with err; with together it returns
// the last bytes and the error from the same call.
type failingReader struct {
	data     []byte
	err      error
	together bool
}

func (r *failingReader) Read(p []byte) (int, error) {
	n := copy(p, r.data)
	r.data = r.data[n:]
	if len(r.data) == 0 && (n == 0 || r.together) {
		return n, r.err
	}
	return n, nil
}

// stuckReader returns no bytes and no error.
type stuckReader struct{}

func (stuckReader) Read([]byte) (int, error) { return 0, nil }

func TestParamsValidate(t *testing.T) {
	tests := []struct {
		name string
		p    Params
		bad  string // field named in the error; "" if p is valid
	}{
		{"default", DefaultParams(), ""},
		{"small", small, ""},
		{"smallest", Params{64, 128, 129}, ""},
		{"largest", Params{1 << 26, 1 << 27, 256 << 20}, ""},
		{"min of one", Params{1, 1 << 27, 256 << 20}, "Min"},
		{"large", Params{64 << 20, 128 << 20, 256 << 20}, ""},
		{"zero", Params{}, "Min"},
		{"min below 64", Params{63, 256, 1024}, "Min"},
		{"negative min", Params{-1, 256, 1024}, "Min"},
		{"avg equals min", Params{256, 256, 1024}, "Avg"},
		{"avg below min", Params{512, 256, 1024}, "Avg"},
		{"avg not power of two", Params{64, 1000, 4096}, "Avg"},
		{"max equals avg", Params{64, 256, 256}, "Max"},
		{"max below avg", Params{64, 256, 128}, "Max"},
		{"max too large", Params{1 << 20, 1 << 22, 256<<20 + 1}, "Max"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			switch {
			case tt.bad == "" && err != nil:
				t.Fatalf("Validate(%+v) = %v, want nil", tt.p, err)
			case tt.bad != "" && err == nil:
				t.Fatalf("Validate(%+v) = nil, want an error naming %s", tt.p, tt.bad)
			case tt.bad != "" && !strings.Contains(err.Error(), " "+tt.bad+" "):
				t.Fatalf("Validate(%+v) = %q, want it to name %s", tt.p, err, tt.bad)
			}
		})
	}
}

func TestNewPanicsOnInvalidParams(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New with invalid Params did not panic")
		}
	}()
	New(bytes.NewReader(nil), testKey(0), Params{64, 100, 1024})
}

func TestDefaultMasks(t *testing.T) {
	// The values stated in the package documentation.
	s, l := DefaultParams().masks()
	if s != 0xFFFFF80000000000 || l != 0xFFFF800000000000 {
		t.Fatalf("default masks = %#x, %#x", s, l)
	}
}

func TestGearTable(t *testing.T) {
	a, b := GearTable(testKey(0)), GearTable(testKey(0))
	if a == b || *a != *b {
		t.Fatal("GearTable is not deterministic or returns a shared table")
	}
	if c := GearTable(testKey(1)); *c == *a {
		t.Fatal("different keys give the same table")
	}
	seen := make(map[uint64]bool)
	for _, g := range a {
		seen[g] = true
	}
	if len(seen) != 256 {
		t.Fatalf("table has %d distinct entries, want 256", len(seen))
	}
}

// TestGolden pins the algorithm: gear table entries and chunk lengths for the
// SHA-256 counter stream (see shaStream) under a fixed key. Any change is a
// new algorithm version and must be recorded as such in docs/design.md.
func TestGolden(t *testing.T) {
	key := testKey(0)
	tab := GearTable(key)
	var out strings.Builder
	fmt.Fprintf(&out, "# Known-answer vectors for chunker algorithm v1.\n")
	fmt.Fprintf(&out, "# Input: bytes 32i..32i+31 are SHA-256 of uint64 i, little-endian.\n")
	fmt.Fprintf(&out, "key %x\n", key)
	for _, i := range []int{0, 1, 2, 3, 4, 127, 255} {
		fmt.Fprintf(&out, "G[%d] %016x\n", i, tab[i])
	}
	for _, tc := range []struct {
		p Params
		n int
	}{{small, 64 << 10}, {Params{256 << 10, 1 << 20, 4 << 20}, 24 << 20}} { // the defaults until format 2
		data := shaStream(tc.n)
		chunks, err := chunkAll(t, New(bytes.NewReader(data), key, tc.p))
		if err != nil {
			t.Fatal(err)
		}
		checkChunks(t, tab, tc.p, data, chunks)
		fmt.Fprintf(&out, "params %d %d %d input %d chunks %d\n", tc.p.Min, tc.p.Avg, tc.p.Max, tc.n, len(chunks))
		for i, ch := range chunks {
			sep := " "
			if i%8 == 7 || i == len(chunks)-1 {
				sep = "\n"
			}
			fmt.Fprintf(&out, "%d%s", len(ch), sep)
		}
	}
	path := filepath.Join("testdata", "v1.golden")
	if *update {
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Fatalf("output differs from %s:\n%s", path, out.String())
	}
}

func TestChunks(t *testing.T) {
	key := testKey(0)
	tab := GearTable(key)
	inputs := []struct {
		name string
		data func(p Params) []byte
	}{
		{"empty", func(Params) []byte { return nil }},
		{"one byte", func(Params) []byte { return []byte{7} }},
		{"min-1", func(p Params) []byte { return randomBytes(1, p.Min-1) }},
		{"min", func(p Params) []byte { return randomBytes(2, p.Min) }},
		{"min+1", func(p Params) []byte { return randomBytes(3, p.Min+1) }},
		{"avg", func(p Params) []byte { return randomBytes(4, p.Avg) }},
		{"max-1", func(p Params) []byte { return randomBytes(5, p.Max-1) }},
		{"max", func(p Params) []byte { return randomBytes(6, p.Max) }},
		{"max+1", func(p Params) []byte { return randomBytes(7, p.Max+1) }},
		{"random", func(p Params) []byte { return randomBytes(8, 20*p.Max+17) }},
		{"zeros", func(p Params) []byte { return make([]byte, 3*p.Max+5) }},
		{"text", func(p Params) []byte {
			return bytes.Repeat([]byte("all work and no play makes jack a dull boy\n"), 2*p.Max/43+1)
		}},
	}
	readers := []struct {
		name string
		r    func([]byte) io.Reader
	}{
		{"whole", func(b []byte) io.Reader { return bytes.NewReader(b) }},
		{"one byte", func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) }},
		{"half", func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) }},
		{"data with EOF", func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) }},
		{"choppy", func(b []byte) io.Reader { return &choppyReader{b, rand.New(rand.NewPCG(1, 2)), 300} }},
	}
	for _, p := range []Params{small, {Min: 100, Avg: 128, Max: 129}, DefaultParams()} {
		c := New(nil, key, p)
		for _, in := range inputs {
			data := in.data(p)
			for _, rd := range readers {
				if rd.name == "one byte" && len(data) > 1<<20 {
					continue // correct but slow
				}
				t.Run(fmt.Sprintf("%d-%d-%d/%s/%s", p.Min, p.Avg, p.Max, in.name, rd.name), func(t *testing.T) {
					c.Reset(rd.r(data))
					chunks, err := chunkAll(t, c)
					if err != nil {
						t.Fatal(err)
					}
					checkChunks(t, tab, p, data, chunks)
					if ch, err := c.Next(nil); ch != nil || err != io.EOF {
						t.Fatalf("Next after the end = %d bytes, %v; want nil, io.EOF", len(ch), err)
					}
				})
			}
		}
	}
}

func TestNextReusesBuf(t *testing.T) {
	data := randomBytes(9, 40*small.Max)
	c := New(bytes.NewReader(data), testKey(0), small)
	buf := make([]byte, 0, small.Max)
	var got []byte
	for {
		ch, err := c.Next(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if &ch[0] != &buf[:1][0] {
			t.Fatal("Next did not use buf's array although it was large enough")
		}
		got = append(got, ch...)
		clear(ch) // must not disturb later chunks
	}
	if !bytes.Equal(got, data) {
		t.Fatal("chunks do not concatenate to the input")
	}
}

// TestResetNoAlloc checks that a reused Chunker and buffer chunk a stream
// without allocating.
func TestResetNoAlloc(t *testing.T) {
	data := randomBytes(10, 8<<20)
	rd := bytes.NewReader(data)
	c := New(rd, testKey(0), DefaultParams())
	buf := make([]byte, 0, DefaultParams().Max)
	allocs := testing.AllocsPerRun(3, func() {
		rd.Reset(data)
		c.Reset(rd)
		for {
			ch, err := c.Next(buf)
			if err != nil {
				break
			}
			buf = ch
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per stream, want 0", allocs)
	}
}

// boundaries returns the end offsets of the chunks of data.
func boundaries(t *testing.T, key [32]byte, p Params, data []byte) []int {
	t.Helper()
	chunks, err := chunkAll(t, New(bytes.NewReader(data), key, p))
	if err != nil {
		t.Fatal(err)
	}
	var ends []int
	off := 0
	for _, ch := range chunks {
		off += len(ch)
		ends = append(ends, off)
	}
	return ends
}

func TestKeys(t *testing.T) {
	for _, p := range []Params{small, DefaultParams()} {
		t.Run(fmt.Sprintf("%d-%d-%d", p.Min, p.Avg, p.Max), func(t *testing.T) {
			data := randomBytes(11, min(64*p.Max, 64<<20))
			a := boundaries(t, testKey(0), p, data)
			if b := boundaries(t, testKey(0), p, data); !slices.Equal(a, b) {
				t.Fatal("the same key gives different boundaries")
			}
			b := boundaries(t, testKey(1), p, data)
			shared := 0
			for _, end := range b[:len(b)-1] {
				if _, ok := slices.BinarySearch(a, end); ok {
					shared++
				}
			}
			if shared*10 > len(b) {
				t.Fatalf("%d of %d boundaries under another key coincide", shared, len(b))
			}
		})
	}
}

// chunkSums returns the set of SHA-256 sums of the chunks of data.
func chunkSums(t *testing.T, p Params, data []byte) (map[[32]byte]bool, int) {
	t.Helper()
	chunks, err := chunkAll(t, New(bytes.NewReader(data), testKey(0), p))
	if err != nil {
		t.Fatal(err)
	}
	sums := make(map[[32]byte]bool)
	for _, ch := range chunks {
		sums[sha256.Sum256(ch)] = true
	}
	return sums, len(chunks)
}

func TestShiftResistance(t *testing.T) {
	data := randomBytes(12, 64<<20)
	before, _ := chunkSums(t, DefaultParams(), data)
	edits := []struct {
		name string
		edit func([]byte) []byte
	}{
		{"insert", func(b []byte) []byte { return slices.Insert(slices.Clone(b), 1000, []byte("kalaja!")...) }},
		{"delete", func(b []byte) []byte { return slices.Delete(slices.Clone(b), 1000, 1003) }},
		{"overwrite", func(b []byte) []byte { b = slices.Clone(b); copy(b[5<<20:], "kalaja"); return b }},
		{"prepend", func(b []byte) []byte { return append([]byte{1}, b...) }},
	}
	for _, e := range edits {
		t.Run(e.name, func(t *testing.T) {
			after, n := chunkSums(t, DefaultParams(), e.edit(data))
			shared := 0
			for s := range after {
				if before[s] {
					shared++
				}
			}
			if shared*10 <= n*9 {
				t.Fatalf("only %d of %d chunks unchanged after the edit", shared, n)
			}
		})
	}
}

func TestAverageSize(t *testing.T) {
	for _, p := range []Params{small, {Min: 1024, Avg: 8192, Max: 65536}, DefaultParams()} {
		t.Run(fmt.Sprintf("%d-%d-%d", p.Min, p.Avg, p.Max), func(t *testing.T) {
			data := randomBytes(13, min(1000*p.Avg, 64<<20))
			ends := boundaries(t, testKey(0), p, data)
			n := len(ends) - 1 // the last chunk is cut short by the input's end
			avg := float64(ends[n-1]) / float64(n)
			t.Logf("%d chunks, average %.0f bytes = %.3f·Avg", n, avg, avg/float64(p.Avg))
			if avg < 0.75*float64(p.Avg) || avg > 1.25*float64(p.Avg) {
				t.Fatalf("average chunk size %.0f, want within 25%% of %d", avg, p.Avg)
			}
		})
	}
}

var errBoom = errors.New("boom")

func TestReadErrors(t *testing.T) {
	key := testKey(0)
	tab := GearTable(key)
	data := randomBytes(14, 30*small.Max)
	want := refLengths(tab, small, data)
	tests := []struct {
		name string
		r    io.Reader
		err  error
		good int // bytes before the failure
	}{
		{"immediately", iotest.ErrReader(errBoom), errBoom, 0},
		{"after data", &failingReader{data, errBoom, false}, errBoom, len(data)},
		{"with data", &failingReader{data, errBoom, true}, errBoom, len(data)},
		{"unexpected EOF", &failingReader{data[:5000], io.ErrUnexpectedEOF, true}, io.ErrUnexpectedEOF, 5000},
		{"timeout", iotest.TimeoutReader(bytes.NewReader(data)), iotest.ErrTimeout, len(data)},
		{"no progress", stuckReader{}, io.ErrNoProgress, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(tt.r, key, small)
			chunks, err := chunkAll(t, c)
			if !errors.Is(err, tt.err) {
				t.Fatalf("error = %v, want %v", err, tt.err)
			}
			// The chunks returned are those of the input before the
			// failure whose ends that input determines.
			var got []int
			off := 0
			for _, ch := range chunks {
				if !bytes.Equal(ch, data[off:off+len(ch)]) {
					t.Fatalf("chunk at %d differs from the input", off)
				}
				got = append(got, len(ch))
				off += len(ch)
			}
			if off > tt.good || !slices.Equal(got, want[:len(got)]) {
				t.Fatalf("chunk lengths %v are not a prefix of the input's %v", got, want)
			}
			if ch, err2 := c.Next(nil); ch != nil || err2 != err {
				t.Fatalf("Next after the error = %d bytes, %v; want nil, %v", len(ch), err2, err)
			}
			c.Reset(bytes.NewReader(data))
			chunks, err = chunkAll(t, c)
			if err != nil {
				t.Fatalf("after Reset: %v", err)
			}
			checkChunks(t, tab, small, data, chunks)
		})
	}
}

// randomData is the benchmark input.
var randomData = sync.OnceValue(func() []byte { return randomBytes(15, 64<<20) })

// BenchmarkNext measures the whole chunker: reading from memory, searching
// boundaries and copying chunks out, with DefaultParams on random data.
func BenchmarkNext(b *testing.B) {
	data := randomData()
	rd := bytes.NewReader(data)
	c := New(rd, testKey(0), DefaultParams())
	buf := make([]byte, 0, DefaultParams().Max)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		rd.Reset(data)
		c.Reset(rd)
		for {
			ch, err := c.Next(buf)
			if err != nil {
				break
			}
			buf = ch
		}
	}
}

// BenchmarkFind measures the boundary search alone: the gear hash and mask
// test over random data, restarting after each match as Next does.
func BenchmarkFind(b *testing.B) {
	data := randomData()
	tab := GearTable(testKey(0))
	maskS, _ := DefaultParams().masks()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		for d := data; ; {
			i, _ := find(tab, d, 0, maskS)
			if i < 0 {
				break
			}
			d = d[i+1:]
		}
	}
}

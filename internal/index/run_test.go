package index

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kalaja/kalaja/internal/blob"
)

// TestRunSearch checks the windowed search of a sorted table against a
// binary search of it, for tables smaller and larger than a window, with
// guesses that are right, wrong at either end, and out of the range, both
// in memory and read from a file. When the key is absent, search checks
// the items on both sides of where it would be, and only then.
func TestRunSearch(t *testing.T) {
	const size = 40 // an ID and 8 more bytes
	for _, n := range []int{1, 2, window - 1, window, window + 1, 3 * window, 5000} {
		rng := rand.New(rand.NewPCG(uint64(n), 1))
		ids := make([]blob.ID, n)
		for i := range ids {
			fillRandom(rng, ids[i][:])
		}
		slices.SortFunc(ids, func(a, b blob.ID) int { return bytes.Compare(a[:], b[:]) })
		ids = slices.Compact(ids)
		table := make([]byte, 0, len(ids)*size)
		for _, id := range ids {
			table = append(append(table, id[:]...), make([]byte, size-blob.IDSize)...)
		}
		path := filepath.Join(t.TempDir(), "table")
		if err := os.WriteFile(path, table, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		// Keys: every ID, and one beside each (absent but for a collision).
		var keys []blob.ID
		for _, id := range ids {
			k := id
			k[31]++
			keys = append(keys, id, k)
		}
		keys = append(keys, blob.ID{}, blob.ID{0: 0xff, 31: 0xff})
		for _, src := range []struct {
			table []byte
			r     *run
		}{{table, &run{}}, {nil, &run{file: f}}} {
			r := src.r
			for _, guess := range []int{0, len(ids) - 1, len(ids) / 2, -10, len(ids) + 10} {
				var buf [window * packRecordSize]byte
				for _, k := range keys {
					want, wantFound := slices.BinarySearchFunc(ids, k, func(a, b blob.ID) int { return bytes.Compare(a[:], b[:]) })
					g := guess
					if guess == len(ids)/2 {
						g = rng.IntN(len(ids))
					}
					var checked []int
					check := func(item []byte, i int) error {
						if !bytes.Equal(item, table[i*size:(i+1)*size]) {
							t.Fatalf("n=%d: check(item %d) got another item's bytes", n, i)
						}
						checked = append(checked, i)
						return nil
					}
					win, start, pos, found, err := r.search(src.table, 0, size, 0, len(ids), g, k[:], buf[:], check)
					if err != nil {
						t.Fatal(err)
					}
					if pos != want || found != wantFound {
						t.Fatalf("n=%d file=%v guess %d: search(%x) = %d, %v; want %d, %v", n, r.file != nil, g, k[:4], pos, found, want, wantFound)
					}
					end := start + len(win)/size
					if !bytes.Equal(win, table[start*size:end*size]) { // read from the file, or part of b
						t.Fatalf("n=%d: window [%d, %d) is not the table's", n, start, end)
					}
					var beside []int
					for _, i := range []int{pos - 1, pos} {
						if !found && i >= 0 && i < len(ids) {
							beside = append(beside, i)
						}
					}
					if !slices.Equal(checked, beside) {
						t.Fatalf("n=%d guess %d: search(%x) checked items %v, want %v (beside position %d)", n, g, k[:4], checked, beside, pos)
					}
				}
			}
		}
	}
}

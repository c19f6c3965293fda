package index

import (
	"testing"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/pack"
)

// TestOrdinal: every distinct handle has its own number in [0, Len()), a
// blob stored in two packs has one, and an unindexed handle none.
func TestOrdinal(t *testing.T) {
	packs := samplePacks()
	dup := Pack{ID: blob.Hash([]byte("dup")), Entries: []pack.Entry{packs[2].Entries[1], {Type: blob.Tree, ID: packs[2].Entries[1].ID, Length: 50}}}
	x := New()
	for _, p := range append(packs, dup) {
		x.Add(p)
	}
	if x.Len() != 7 {
		t.Fatalf("Len %d, want 7 distinct handles", x.Len())
	}
	seen := map[uint64]blob.Handle{}
	for _, p := range append(packs, dup) {
		for _, e := range p.Entries {
			h := e.Handle()
			n, ok := x.Ordinal(h)
			if !ok || n >= uint64(x.Len()) {
				t.Fatalf("Ordinal(%v) = %d, %v; want a number below %d", h, n, ok, x.Len())
			}
			if other, ok := seen[n]; ok && other != h {
				t.Fatalf("%v and %v share the number %d", h, other, n)
			}
			seen[n] = h
		}
	}
	if len(seen) != x.Len() {
		t.Errorf("%d numbers for %d handles", len(seen), x.Len())
	}
	if _, ok := x.Ordinal(blob.Handle{Type: blob.Data, ID: blob.Hash([]byte("none"))}); ok {
		t.Error("an unindexed handle has a number")
	}
}

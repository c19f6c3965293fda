package prune

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/index"
	"github.com/kalaja/kalaja/internal/pack"
)

// model is a repository's index as a plan sees it: index files listing
// packs, some blobs in several packs, some packs and files recent.
type model struct {
	files     [][]index.Pack
	youngFile []bool
	youngPack map[blob.ID]bool
	used      map[blob.Handle]bool
	byPack    map[blob.ID]index.Pack
	maxUnused float64
}

func newModel(rng *rand.Rand) *model {
	m := &model{youngPack: map[blob.ID]bool{}, used: map[blob.Handle]bool{}, byPack: map[blob.ID]index.Pack{}}
	m.maxUnused = []float64{0, 0.1, 0.5, 1}[rng.IntN(4)]
	blobs := make([]blob.Handle, 5+rng.IntN(40))
	for i := range blobs {
		blobs[i] = blob.Handle{Type: blob.Type(1 + rng.IntN(2)), ID: blob.Hash(fmt.Appendf(nil, "blob %d %d", i, rng.Uint64()))}
		if rng.IntN(2) == 0 {
			m.used[blobs[i]] = true
		}
	}
	var packs []index.Pack
	for i := range 1 + rng.IntN(20) {
		pk := index.Pack{ID: blob.Hash(fmt.Appendf(nil, "pack %d %d", i, rng.Uint64()))}
		var off uint32
		for _, k := range rng.Perm(len(blobs))[:1+rng.IntN(5)] {
			// Lengths from few values, so that packs tie on their share.
			l := uint32(100 * (1 + rng.IntN(3)))
			pk.Entries = append(pk.Entries, pack.Entry{Type: blobs[k].Type, ID: blobs[k].ID, Offset: off, Length: l})
			off += l
		}
		packs = append(packs, pk)
		m.byPack[pk.ID] = pk
		m.youngPack[pk.ID] = rng.IntN(8) == 0
	}
	// Used blobs no pack holds are not used (a snapshot using them is
	// damage, refused before any of this).
	held := map[blob.Handle]bool{}
	for _, pk := range packs {
		for _, e := range pk.Entries {
			held[e.Handle()] = true
		}
	}
	for h := range m.used {
		if !held[h] {
			delete(m.used, h)
		}
	}
	m.files = make([][]index.Pack, 1+rng.IntN(4))
	for _, pk := range packs {
		f := rng.IntN(len(m.files))
		m.files[f] = append(m.files[f], pk)
		if rng.IntN(6) == 0 { // listed again, as by a prune whose index file was retained
			f := rng.IntN(len(m.files))
			m.files[f] = append(m.files[f], pk)
		}
	}
	for range m.files {
		m.youngFile = append(m.youngFile, rng.IntN(6) == 0)
	}
	return m
}

// reference is the plan as prune made it with the whole index in memory:
// packs claim their used blobs in turn, recent ones first, then the others
// from the least unused share up (ties in ID order). It returns the stats,
// the packs to copy and delete in order, and the blobs copied: the used
// blobs the packs to copy claim that no pack that stays holds.
func (m *model) reference() (Stats, []blob.ID, []blob.ID, map[blob.Handle]bool) {
	var st Stats
	protected := map[blob.ID]bool{}
	for f, packs := range m.files {
		if m.youngFile[f] {
			for _, pk := range packs {
				protected[pk.ID] = true
			}
		} else {
			st.IndexFiles++
		}
	}
	ids := slices.SortedFunc(func(yield func(blob.ID) bool) {
		for id := range m.byPack {
			if !yield(id) {
				return
			}
		}
	}, func(a, b blob.ID) int { return cmp.Compare(a.String(), b.String()) })
	claimed := map[blob.Handle]bool{}
	var keep, candidates, repackList, deleteList []index.Pack
	for _, id := range ids {
		pk := m.byPack[id]
		st.Packs++
		if m.youngPack[id] || protected[id] {
			st.RecentPacks++
			keep = append(keep, pk)
			for _, e := range pk.Entries {
				claimed[e.Handle()] = true
			}
			continue
		}
		candidates = append(candidates, pk)
	}
	unused := func(pk index.Pack) float64 {
		var usedN, total int64
		for _, e := range pk.Entries {
			total += int64(e.Length)
			if m.used[e.Handle()] {
				usedN += int64(e.Length)
			}
		}
		return float64(total-usedN) / float64(max(total, 1))
	}
	slices.SortStableFunc(candidates, func(a, b index.Pack) int { return cmp.Compare(unused(a), unused(b)) })
	toCopy := map[blob.Handle]bool{}
	for _, pk := range candidates {
		var usedN, total int64
		for _, e := range pk.Entries {
			total += int64(e.Length)
			if m.used[e.Handle()] && !claimed[e.Handle()] {
				usedN += int64(e.Length)
			}
		}
		switch {
		case usedN == 0:
			deleteList = append(deleteList, pk)
			st.FreedBytes += total
		case float64(total-usedN) > m.maxUnused*float64(total):
			repackList = append(repackList, pk)
			for _, e := range pk.Entries {
				if h := e.Handle(); m.used[h] && !claimed[h] {
					toCopy[h], claimed[h] = true, true
				}
			}
			st.CopyBytes += usedN
			st.FreedBytes += total
		default:
			keep = append(keep, pk)
			for _, e := range pk.Entries {
				claimed[e.Handle()] = true
			}
		}
		st.UsedBytes += usedN
		st.UnusedBytes += total - usedN
	}
	st.KeptPacks, st.RepackPacks, st.DeletePacks = len(keep), len(repackList), len(deleteList)
	st.UsedBlobs = len(m.used)
	for _, pk := range keep {
		for _, e := range pk.Entries {
			delete(toCopy, e.Handle())
		}
	}
	idsOf := func(packs []index.Pack) []blob.ID {
		var out []blob.ID
		for _, pk := range packs {
			out = append(out, pk.ID)
		}
		return out
	}
	return st, idsOf(repackList), idsOf(deleteList), toCopy
}

// plan makes the plan of m as NewPlan does, from the index files one at a
// time, and returns it with the blobs Execute copies, failing if one would
// be copied twice.
func (m *model) plan(t *testing.T) (*Plan, map[blob.Handle]bool) {
	x := index.New()
	for _, packs := range m.files {
		for _, pk := range packs {
			x.Add(pk)
		}
	}
	p := newPlan(x, nil)
	for id := range m.byPack {
		p.packs = append(p.packs, packInfo{id: id, young: m.youngPack[id]})
	}
	slices.SortFunc(p.packs, func(a, b packInfo) int { return cmp.Compare(a.id.String(), b.id.String()) })
	p.used = index.NewBitmap(x.Len())
	for h := range m.used {
		n, _ := x.Ordinal(h)
		p.used.Set(n)
	}
	tl := newTally(x.Len())
	for f, packs := range m.files {
		p.tallyFile(tl, fmt.Sprint(f), m.youngFile[f], packs)
	}
	dup, err := p.tallied(tl, "model")
	if err != nil {
		t.Fatal(err)
	}
	order := p.candidates()
	var holders []holder
	if dup != nil {
		c := p.newCollector(dup, order)
		for f, packs := range m.files {
			p.collect(c, uint32(f), packs)
		}
		holders = c.sorted()
	}
	p.decide(Options{MaxUnused: m.maxUnused}, order, holders)
	copied := map[blob.Handle]bool{}
	for _, id := range p.Repack {
		i, _ := p.packs.find(id)
		for _, e := range m.byPack[id].Entries {
			if h := e.Handle(); p.copies(i, h) {
				if copied[h] {
					t.Fatalf("blob %v copied twice", h)
				}
				copied[h] = true
			}
		}
	}
	return p, copied
}

// TestPlanAsInMemory: planning from the index files one at a time, with
// bitmaps and per-pack sums, decides exactly what the plan over the whole
// index in memory decided, duplicates included.
func TestPlanAsInMemory(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 1))
	dups := 0
	for i := range 2000 {
		m := newModel(rng)
		st, rep, del, toCopy := m.reference()
		p, copied := m.plan(t)
		if len(p.claim) > 0 {
			dups++
		}
		if p.Stats != st || !slices.Equal(p.Repack, rep) || !slices.Equal(p.Delete, del) {
			t.Fatalf("model %d: plan %+v, copy %v, delete %v; in memory %+v, %v, %v", i, p.Stats, p.Repack, p.Delete, st, rep, del)
		}
		if len(copied) != len(toCopy) {
			t.Fatalf("model %d: copies %d blobs, in memory %d", i, len(copied), len(toCopy))
		}
		for h := range toCopy {
			if !copied[h] {
				t.Fatalf("model %d: blob %v is not copied", i, h)
			}
		}
	}
	if dups < 100 {
		t.Errorf("only %d models with used blobs stored twice: the test does not test", dups)
	}
}

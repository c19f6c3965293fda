package prune

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"time"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/index"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store"
)

// Plan is what Execute will do: which packs are copied, which deleted, and
// which index files are replaced. It holds a few dozen bytes per stored
// pack and a bit per indexed blob, never the index itself: Execute reads
// the index files again to write the new ones.
type Plan struct {
	// Repack are the packs whose used blobs are copied before they are
	// deleted; Delete those deleted outright.
	Repack, Delete []blob.ID
	// Indexes are the index files to replace; their packs that stay are
	// listed again in the new index.
	Indexes []string
	Stats   Stats

	idx   *index.Index // the index read for the plan, whose Ordinal numbers blobs
	packs packTable
	files []string // the index files read, numbered by packInfo.file
	// moreFiles are the further index files that list a pack, by its
	// place in packs.
	moreFiles map[int][]uint32
	used      index.Bitmap // the blobs the snapshots use, by ordinal
	// claim holds, for each used blob stored in more than one pack, the
	// place of the pack it is copied from, or noPack if it stays where
	// it is.
	claim map[uint64]uint32
	seed  maphash.Seed // of packInfo.digest
	// snapshots are those the plan was made for, by ID.
	snapshots map[string]bool
}

const noPack = ^uint32(0)

// NewPlan reads the index and the trees of snaps, the snapshots that stay,
// and plans what to copy and delete. It refuses a repository with damage
// it would make worse: an unreadable index file, a missing tree or blob,
// or an indexed pack that is missing.
//
// Memory: three bits per indexed blob (used, seen, stored twice), a few
// dozen bytes per stored pack and per index file, and 16 bytes for each
// place of a used blob stored in more than one pack; the index files are
// read one at a time (repo.EachIndexFile), twice when blobs are stored
// more than once.
func NewPlan(ctx context.Context, r *repo.Repository, snaps []*snapshot.Snapshot, o Options) (*Plan, error) {
	// Index files stored after this listing are left out of the plan,
	// so every pack they list is either stored before the pack listing
	// below or not seen at all.
	indexStamps, err := stamps(ctx, r.Store(), store.Index)
	if err != nil {
		return nil, err
	}
	if err := r.LoadIndex(ctx); err != nil {
		return nil, fmt.Errorf("%w (run 'kalaja check')", err)
	}
	recentAt := func(t time.Time) bool { return o.Now.Sub(t) < o.Grace }
	p := newPlan(r.Index(), snaps)
	if err := p.listPacks(ctx, r.Store(), recentAt); err != nil {
		return nil, err
	}
	unindexed, err := p.markUsed(ctx, r, snaps)
	if err != nil {
		return nil, err
	}
	dup, err := p.readIndex(ctx, r, indexStamps, recentAt)
	if err != nil {
		return nil, err
	}
	if unindexed != nil {
		return nil, fmt.Errorf("blob %v is used by a snapshot but no index lists it (run 'kalaja check')", *unindexed)
	}
	order := p.candidates()
	var holders []holder
	if dup != nil {
		if holders, err = p.dupHolders(ctx, r, dup, order); err != nil {
			return nil, err
		}
	}
	p.decide(o, order, holders)
	return p, nil
}

func newPlan(x *index.Index, snaps []*snapshot.Snapshot) *Plan {
	p := &Plan{idx: x, moreFiles: map[int][]uint32{}, claim: map[uint64]uint32{},
		seed: maphash.MakeSeed(), snapshots: map[string]bool{}}
	for _, sn := range snaps {
		p.snapshots[sn.ID.String()] = true
	}
	return p
}

// stamps lists the stamps of the objects of kind t by name.
func stamps(ctx context.Context, st store.Lister, t store.FileType) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	err := st.List(ctx, t, func(fi store.FileInfo) error {
		out[fi.Name] = fi.Stamp
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", t, err)
	}
	return out, nil
}

// listPacks fills p.packs with every stored pack.
func (p *Plan) listPacks(ctx context.Context, st store.Lister, recentAt func(time.Time) bool) error {
	err := st.List(ctx, store.Packs, func(fi store.FileInfo) error {
		if id, err := blob.ParseID(fi.Name); err == nil {
			p.packs = append(p.packs, packInfo{id: id, size: fi.Size, young: recentAt(fi.Stamp)})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list %s: %w", store.Packs, err)
	}
	slices.SortFunc(p.packs, func(a, b packInfo) int { return bytes.Compare(a.id[:], b.id[:]) })
	p.packs = slices.CompactFunc(p.packs, func(a, b packInfo) bool { return a.id == b.id })
	return nil
}

// markUsed sets p.used to every tree and data blob the snapshots
// reference, and returns one that is not indexed, if any. The index.Bitmap is
// also the set of trees already walked.
func (p *Plan) markUsed(ctx context.Context, r *repo.Repository, snaps []*snapshot.Snapshot) (*blob.Handle, error) {
	p.used = index.NewBitmap(p.idx.Len())
	var unindexed *blob.Handle
	var walk func(id blob.ID, path string) error
	walk = func(id blob.ID, path string) error {
		n, indexed := p.idx.Ordinal(blob.Handle{Type: blob.Tree, ID: id})
		if indexed && p.used.Has(n) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		tree, err := r.LoadTree(ctx, id)
		if err != nil {
			return fmt.Errorf("tree %s of %s: %w (run 'kalaja check')", id.Short(), path, err)
		}
		if indexed {
			p.used.Set(n)
		}
		for _, nd := range tree.Nodes {
			for _, c := range nd.Content {
				h := blob.Handle{Type: blob.Data, ID: c}
				if n, ok := p.idx.Ordinal(h); ok {
					p.used.Set(n)
				} else if unindexed == nil {
					unindexed = &h
				}
			}
			if nd.Subtree != nil {
				if err := walk(*nd.Subtree, path+"/"+string(nd.Name)); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, sn := range snaps {
		if err := walk(sn.Tree, "snapshot "+sn.ID.Short()); err != nil {
			return nil, err
		}
	}
	return unindexed, nil
}

// readIndex reads the index files listed in indexStamps one at a time and
// sums, for each pack they list, the bytes of its blobs and of its used
// blobs. It returns the set of used blobs stored in more than one pack, or
// nil if there are none.
func (p *Plan) readIndex(ctx context.Context, r *repo.Repository, indexStamps map[string]time.Time, recentAt func(time.Time) bool) (index.Bitmap, error) {
	t := newTally(p.idx.Len())
	err := r.EachIndexFile(ctx, func(name string, packs []index.Pack) error {
		if stamp, ok := indexStamps[name]; ok {
			p.tallyFile(t, name, recentAt(stamp), packs)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w (run 'kalaja check')", err)
	}
	return p.tallied(t, r.Store().Location())
}

// tally is what readIndex gathers beyond the packs' sums.
type tally struct {
	seen, dup index.Bitmap // blobs in a pack read, in more than one
	missing   *blob.ID     // the least indexed pack that is not stored
}

func newTally(blobs int) *tally {
	return &tally{seen: index.NewBitmap(blobs), dup: index.NewBitmap(blobs)}
}

// tallyFile adds the index file name, stored within Options.Grace if
// young, that lists packs.
func (p *Plan) tallyFile(t *tally, name string, young bool, packs []index.Pack) {
	f := uint32(len(p.files))
	p.files = append(p.files, name)
	if !young {
		p.Indexes = append(p.Indexes, name)
	}
	for _, pk := range packs {
		i, ok := p.packs.find(pk.ID)
		if !ok {
			if id := pk.ID; t.missing == nil || bytes.Compare(id[:], t.missing[:]) < 0 {
				t.missing = &id
			}
			continue
		}
		pi := &p.packs[i]
		pi.protected = pi.protected || young
		if pi.listed {
			p.moreFiles[i] = append(p.moreFiles[i], f)
			continue
		}
		pi.listed, pi.file, pi.digest = true, f, entryDigest(p.seed, pk)
		for _, e := range pk.Entries {
			pi.total += int64(e.Length)
			n, ok := p.idx.Ordinal(e.Handle())
			if !ok {
				continue
			}
			if t.seen.Has(n) {
				t.dup.Set(n)
			}
			t.seen.Set(n)
			if p.used.Has(n) {
				pi.used += int64(e.Length)
			}
		}
	}
}

// tallied checks what the index files read say against the store at
// location and the snapshots, and returns the used blobs stored in more
// than one pack, or nil.
func (p *Plan) tallied(t *tally, location string) (index.Bitmap, error) {
	slices.Sort(p.Indexes)
	p.Stats.IndexFiles = len(p.Indexes)
	if t.missing != nil {
		return nil, fmt.Errorf("pack %s is indexed but missing from %s (run 'kalaja check')", t.missing.Short(), location)
	}
	if !p.used.Within(t.seen) {
		return nil, fmt.Errorf("a blob a snapshot uses is indexed, but no index file read lists it in a stored pack (run 'kalaja check')")
	}
	for i := range t.dup {
		t.dup[i] &= p.used[i]
	}
	if t.dup.Count() == 0 {
		return nil, nil
	}
	return t.dup, nil
}

// candidates returns the places of the listed packs that are not recent,
// most used first, the order in which they claim blobs (decide), and marks
// the others recent. Packs that are most used claim their blobs first, so
// that the copy a previous prune made (whose source the store retained) is
// kept and the source deleted, rather than copied again.
func (p *Plan) candidates() []uint32 {
	var order []uint32
	for i := range p.packs {
		pi := &p.packs[i]
		if !pi.listed {
			continue
		}
		p.Stats.Packs++
		if pi.young || pi.protected {
			pi.state = recent
			continue
		}
		order = append(order, uint32(i))
	}
	unused := func(i uint32) float64 {
		pi := &p.packs[i]
		return float64(pi.total-pi.used) / float64(max(pi.total, 1))
	}
	// Ties in pack ID order (packs is sorted by ID).
	slices.SortFunc(order, func(a, b uint32) int { return cmp.Or(cmp.Compare(unused(a), unused(b)), cmp.Compare(a, b)) })
	return order
}

// holder is a place of a used blob stored in more than one pack.
type holder struct {
	ord    uint64
	rank   uint32 // 0 for a recent pack, else 1 + its place in the candidates' order
	pack   uint32 // its place in Plan.packs
	length uint32
}

// dupHolders reads the index files again and returns every place of the
// used blobs in dup, sorted by blob and then by the order in which packs
// claim blobs.
func (p *Plan) dupHolders(ctx context.Context, r *repo.Repository, dup index.Bitmap, order []uint32) ([]holder, error) {
	fileNo := make(map[string]uint32, len(p.files))
	for f, name := range p.files {
		fileNo[name] = uint32(f)
	}
	c := p.newCollector(dup, order)
	read := 0
	err := r.EachIndexFile(ctx, func(name string, packs []index.Pack) error {
		if f, ok := fileNo[name]; ok {
			read++
			p.collect(c, f, packs)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w (run 'kalaja check')", err)
	}
	if read != len(p.files) {
		return nil, fmt.Errorf("index files were deleted while prune read them: is another prune running?")
	}
	return c.sorted(), nil
}

// collector gathers the places of used blobs stored more than once.
type collector struct {
	dup  index.Bitmap
	rank []uint32     // by place in Plan.packs (holder.rank)
	done index.Bitmap // packs whose first listing was read
	out  []holder
}

func (p *Plan) newCollector(dup index.Bitmap, order []uint32) *collector {
	c := &collector{dup: dup, rank: make([]uint32, len(p.packs)), done: index.NewBitmap(len(p.packs))}
	for k, i := range order {
		c.rank[i] = uint32(k) + 1
	}
	return c
}

// collect adds the places in the packs index file f lists, reading each
// pack from the listing tallyFile read.
func (p *Plan) collect(c *collector, f uint32, packs []index.Pack) {
	for _, pk := range packs {
		i, ok := p.packs.find(pk.ID)
		if !ok || p.packs[i].file != f || c.done.Has(uint64(i)) {
			continue
		}
		c.done.Set(uint64(i))
		for _, e := range pk.Entries {
			if n, ok := p.idx.Ordinal(e.Handle()); ok && c.dup.Has(n) {
				c.out = append(c.out, holder{n, c.rank[i], uint32(i), e.Length})
			}
		}
	}
}

func (c *collector) sorted() []holder {
	slices.SortFunc(c.out, func(a, b holder) int {
		return cmp.Or(cmp.Compare(a.ord, b.ord), cmp.Compare(a.rank, b.rank), cmp.Compare(a.pack, b.pack))
	})
	return c.out
}

// decide classifies the candidates in order. A used blob counts in the
// first pack that holds it, recent ones first: that pack keeps it or
// copies it, so later ones find it claimed, as if each pack claimed its
// used blobs in turn.
func (p *Plan) decide(o Options, order []uint32, holders []holder) {
	lost := map[uint32]int64{} // bytes of used blobs another pack claims
	for _, g := range groups(holders) {
		for _, h := range g[1:] {
			if h.pack != g[0].pack {
				lost[h.pack] += int64(h.length)
			}
		}
	}
	for _, i := range order {
		pi := &p.packs[i]
		usedN, total := pi.used-lost[i], pi.total
		switch {
		case usedN == 0:
			pi.state = drop
			p.Delete = append(p.Delete, pi.id)
			p.Stats.FreedBytes += total
		case float64(total-usedN) > o.MaxUnused*float64(total):
			pi.state = repack
			p.Repack = append(p.Repack, pi.id)
			p.Stats.CopyBytes += usedN
			p.Stats.FreedBytes += total
		default:
			pi.state = keep
		}
		p.Stats.UsedBytes += usedN
		p.Stats.UnusedBytes += total - usedN
	}
	p.Stats.RecentPacks = p.Stats.Packs - len(order)
	p.Stats.RepackPacks, p.Stats.DeletePacks = len(p.Repack), len(p.Delete)
	p.Stats.KeptPacks = p.Stats.Packs - p.Stats.RepackPacks - p.Stats.DeletePacks
	p.Stats.UsedBlobs = p.used.Count()
	// A blob stored twice is copied from the pack that claims it, unless
	// a pack that stays holds it too.
	for _, g := range groups(holders) {
		c := g[0].pack
		if p.packs[c].state != repack || slices.ContainsFunc(g, func(h holder) bool { s := p.packs[h.pack].state; return s == keep || s == recent }) {
			c = noPack
		}
		p.claim[g[0].ord] = c
	}
}

// groups splits holders, sorted by blob, into the places of each blob.
func groups(holders []holder) [][]holder {
	var out [][]holder
	for len(holders) > 0 {
		n := 1
		for n < len(holders) && holders[n].ord == holders[0].ord {
			n++
		}
		out = append(out, holders[:n])
		holders = holders[n:]
	}
	return out
}

// copies reports whether Execute copies blob h out of the pack at place i:
// h is used, and i is where it is claimed.
func (p *Plan) copies(i int, h blob.Handle) bool {
	n, ok := p.idx.Ordinal(h)
	if !ok || !p.used.Has(n) {
		return false
	}
	c, dup := p.claim[n]
	return !dup || c == uint32(i)
}

// listedBy returns the index files read that list the pack at place i.
func (p *Plan) listedBy(i int) []string {
	out := []string{p.files[p.packs[i].file]}
	for _, f := range p.moreFiles[i] {
		out = append(out, p.files[f])
	}
	return out
}

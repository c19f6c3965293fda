// Package prune reclaims the space of forgotten snapshots without
// rewriting anything in place: the used blobs of mostly-unused packs are
// copied into new packs, a new index lists every pack that stays, and only
// then are old index files and packs deleted, as far as retention and the
// administrator allow (docs/design.md, "Forget and prune").
package prune

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/index"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store"
)

// Options configure a plan.
type Options struct {
	// MaxUnused is the fraction of a pack's bytes that may be unused
	// before prune copies its used blobs to a new pack and deletes it.
	MaxUnused float64
	// Grace protects recent work: packs and index files the store stamped
	// less than Grace before Now are neither deleted nor copied, as a
	// backup running now may be about to reference them.
	Grace time.Duration
	// Now is the time Grace counts back from.
	Now time.Time
}

// Stats say what a plan does, in packs and bytes of pack content.
type Stats struct {
	Packs       int   `json:"packs"`
	KeptPacks   int   `json:"kept_packs"`
	RepackPacks int   `json:"repack_packs"`
	DeletePacks int   `json:"delete_packs"`
	RecentPacks int   `json:"recent_packs"` // kept because of Options.Grace
	IndexFiles  int   `json:"index_files"`  // index files to replace
	UsedBlobs   int   `json:"used_blobs"`
	UsedBytes   int64 `json:"used_bytes"`
	UnusedBytes int64 `json:"unused_bytes"`
	CopyBytes   int64 `json:"copy_bytes"`  // used bytes copied out of packs to delete
	FreedBytes  int64 `json:"freed_bytes"` // bytes of the packs to delete
}

// Plan is what Execute will do: which packs stay as they are, which are
// copied, which deleted, and which index files are replaced.
type Plan struct {
	Keep, Repack, Delete []index.Pack
	// Indexes are the index files to replace; their packs that stay are
	// listed again in the new index.
	Indexes []string
	// listedBy maps each pack to the index files that list it.
	listedBy map[blob.ID][]string
	// used are the blobs Repack packs hold that must be copied.
	used map[blob.Handle]bool
	// snapshots are those the plan was made for, by ID.
	snapshots map[string]bool
	Stats     Stats
}

// NewPlan reads the index and the trees of snaps, the snapshots that stay,
// and plans what to copy and delete. It refuses a repository with damage
// it would make worse: an unreadable index file, a missing tree or blob,
// or an indexed pack that is missing.
func NewPlan(ctx context.Context, r *repo.Repository, snaps []*snapshot.Snapshot, o Options) (*Plan, error) {
	files, err := r.IndexFiles(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w (run 'kalaja check')", err)
	}
	packStamps, err := stamps(ctx, r.Store(), store.Packs)
	if err != nil {
		return nil, err
	}
	indexStamps, err := stamps(ctx, r.Store(), store.Index)
	if err != nil {
		return nil, err
	}
	used, err := usedBlobs(ctx, r, snaps)
	if err != nil {
		return nil, err
	}
	recent := func(fi store.FileInfo) bool { return o.Now.Sub(fi.Stamp) < o.Grace }

	p := &Plan{listedBy: map[blob.ID][]string{}, used: map[blob.Handle]bool{}, snapshots: map[string]bool{}}
	for _, sn := range snaps {
		p.snapshots[sn.ID.String()] = true
	}
	protected := map[blob.ID]bool{} // listed by an index file that stays
	for name, packs := range files {
		for _, id := range packs {
			p.listedBy[id] = append(p.listedBy[id], name)
		}
		if recent(indexStamps[name]) {
			for _, id := range packs {
				protected[id] = true
			}
			continue
		}
		p.Indexes = append(p.Indexes, name)
	}
	slices.Sort(p.Indexes)
	p.Stats.IndexFiles = len(p.Indexes)

	packs := r.Index().ByPack()
	ids := make([]blob.ID, 0, len(packs))
	for id := range packs {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b blob.ID) int { return cmp.Compare(a.String(), b.String()) })
	claimed := map[blob.Handle]bool{} // used blobs a pack that stays already holds
	var candidates []index.Pack
	for _, id := range ids {
		pk := packs[id]
		fi, ok := packStamps[id.String()]
		if !ok {
			return nil, fmt.Errorf("pack %s is indexed but missing from %s (run 'kalaja check')", id.Short(), r.Store().Location())
		}
		p.Stats.Packs++
		if recent(fi) || protected[id] {
			p.Stats.RecentPacks++
			p.Keep = append(p.Keep, pk)
			for _, e := range pk.Entries {
				claimed[e.Handle()] = true
			}
			continue
		}
		candidates = append(candidates, pk)
	}
	// Packs that are most used claim their blobs first, so that the copy a
	// previous prune made (whose source the store retained) is kept and the
	// source deleted, rather than copied again.
	unused := func(pk index.Pack) float64 {
		var usedN, total int64
		for _, e := range pk.Entries {
			total += int64(e.Length)
			if used[e.Handle()] {
				usedN += int64(e.Length)
			}
		}
		return float64(total-usedN) / float64(max(total, 1))
	}
	slices.SortStableFunc(candidates, func(a, b index.Pack) int { return cmp.Compare(unused(a), unused(b)) })
	for _, pk := range candidates {
		var usedN, total int64
		for _, e := range pk.Entries {
			total += int64(e.Length)
			if used[e.Handle()] && !claimed[e.Handle()] {
				usedN += int64(e.Length)
			}
		}
		switch {
		case usedN == 0:
			p.Delete = append(p.Delete, pk)
			p.Stats.FreedBytes += total
		case float64(total-usedN) > o.MaxUnused*float64(total):
			p.Repack = append(p.Repack, pk)
			for _, e := range pk.Entries {
				if h := e.Handle(); used[h] && !claimed[h] {
					p.used[h], claimed[h] = true, true
				}
			}
			p.Stats.CopyBytes += usedN
			p.Stats.FreedBytes += total
		default:
			p.Keep = append(p.Keep, pk)
			for _, e := range pk.Entries {
				claimed[e.Handle()] = true
			}
		}
		p.Stats.UsedBytes += usedN
		p.Stats.UnusedBytes += total - usedN
	}
	p.Stats.KeptPacks, p.Stats.RepackPacks, p.Stats.DeletePacks = len(p.Keep), len(p.Repack), len(p.Delete)
	p.Stats.UsedBlobs = len(used)
	for h := range used {
		if !claimed[h] {
			return nil, fmt.Errorf("blob %v is used by a snapshot but no index lists it (run 'kalaja check')", h)
		}
	}
	return p, nil
}

// stamps lists the objects of kind t by name.
func stamps(ctx context.Context, st store.Lister, t store.FileType) (map[string]store.FileInfo, error) {
	out := map[string]store.FileInfo{}
	err := st.List(ctx, t, func(fi store.FileInfo) error {
		out[fi.Name] = fi
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", t, err)
	}
	return out, nil
}

// usedBlobs returns every tree and data blob the snapshots reference.
func usedBlobs(ctx context.Context, r *repo.Repository, snaps []*snapshot.Snapshot) (map[blob.Handle]bool, error) {
	used := map[blob.Handle]bool{}
	var walk func(id blob.ID, path string) error
	walk = func(id blob.ID, path string) error {
		h := blob.Handle{Type: blob.Tree, ID: id}
		if used[h] {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		tree, err := r.LoadTree(ctx, id)
		if err != nil {
			return fmt.Errorf("tree %s of %s: %w (run 'kalaja check')", id.Short(), path, err)
		}
		used[h] = true
		for _, n := range tree.Nodes {
			for _, c := range n.Content {
				used[blob.Handle{Type: blob.Data, ID: c}] = true
			}
			if n.Subtree != nil {
				if err := walk(*n.Subtree, path+"/"+string(n.Name)); err != nil {
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
	return used, nil
}

// Kept is an object a Remover could not delete, and why.
type Kept struct {
	Object store.Handle
	Reason string
}

// Request is an administrator's signed request (internal/admin) and the
// objects it deletes. It is stored in the repository's ledger
// (ledger/removals) and every removal record of its objects carries its
// hash, so that verify counts an object as removed only under the
// administrator's signature; then it is carried out.
type Request struct {
	Signed []byte
	Delete []store.Handle
}

// Remover deletes objects for forget and prune, as far as retention and
// the store allow, under the administrator's signed requests: a server
// carries the requests out itself; a local directory or S3 with an
// administrator's credential deletes directly what they name.
type Remover interface {
	// Authorise returns requests signed with the administrator's key that
	// delete hs, in order, each within admin's bounds.
	Authorise(ctx context.Context, hs []store.Handle) ([]Request, error)
	// Remove deletes each object req names, and returns those it had to
	// keep. An error means it could not go on; the objects may or may
	// not have been deleted.
	Remove(ctx context.Context, req Request) ([]Kept, error)
}

// Direct is a Remover over a store's own Remove: what it refuses (an
// object under S3 Object Lock retention) is kept, with the store's error
// as the reason. Its requests name as server the first 32 hex digits of
// the repository id and seq 1: no server checks them, they only bind the
// ledger's removal records to the administrator's key.
func Direct(rm store.Remover, signer note.Signer, id blob.ID) Remover {
	return direct{rm, signer, id.String()[:32]}
}

type direct struct {
	rm     store.Remover
	signer note.Signer
	server string
}

func (d direct) Authorise(_ context.Context, hs []store.Handle) ([]Request, error) {
	return authorise(d.signer, d.server, 1, hs)
}

func (d direct) Remove(ctx context.Context, req Request) ([]Kept, error) {
	var kept []Kept
	for _, h := range req.Delete {
		if err := d.rm.Remove(ctx, h); err != nil {
			if ctx.Err() != nil {
				return kept, ctx.Err()
			}
			if errors.Is(err, blob.ErrNotFound) {
				continue
			}
			kept = append(kept, Kept{h, err.Error()})
		}
	}
	return kept, nil
}

// packsPerIndex bounds the packs one new index file lists.
const packsPerIndex = 512

// Result is what Execute did.
type Result struct {
	// Removed are the objects deleted; Kept those the Remover had to keep.
	Removed []store.Handle
	Kept    []Kept
	// Renewed counts the objects that stay whose retention was extended
	// (store.RenewAll).
	Renewed int
}

// Execute carries out p: it copies the used blobs of Repack packs into new
// packs, writes index files listing every pack that stays, and then
// deletes in two rounds, the old index files and then the packs that no
// remaining index file lists. Each round has rm sign the administrator's
// requests, stores them and appends to lg (as host) a removal record of
// each object bound to its request, the first round also a record of
// every object Execute stored, before it deletes anything (an error stops
// it there). Finally it extends the retention of what stays (store.RenewAll). A
// crash at any point leaves a repository that passes check: at worst with
// packs no index lists, which the next backup re-indexes and the next
// prune deletes again.
func (p *Plan) Execute(ctx context.Context, r *repo.Repository, rm Remover, lg Ledger, host string) (*Result, error) {
	if err := p.copyUsed(ctx, r); err != nil {
		return nil, err
	}
	for start := 0; start < len(p.Keep); start += packsPerIndex {
		if _, err := r.SaveIndex(ctx, p.Keep[start:min(start+packsPerIndex, len(p.Keep))]); err != nil {
			return nil, err
		}
	}
	var doomed []store.Handle
	for _, name := range p.Indexes {
		doomed = append(doomed, store.Handle{Type: store.Index, Name: name})
	}
	for _, pk := range slices.Concat(p.Repack, p.Delete) {
		doomed = append(doomed, store.Handle{Type: store.Packs, Name: pk.ID.String()})
	}
	now := time.Now()
	res := &Result{}
	gated := false // a backup stored a snapshot meanwhile
	gate := func(ctx context.Context) (string, error) {
		reason, err := p.noNewSnapshot(ctx, r.Store())
		gated = gated || reason != ""
		return reason, err
	}
	idxHandles := doomed[:len(p.Indexes)]
	kept, err := removeLogged(ctx, r.Store(), lg, rm, idxHandles, ledger.Records(r.Written(), host, now), host, now, gate)
	if err != nil {
		return nil, fmt.Errorf("delete index files: %w", err)
	}
	res.Kept = append(res.Kept, kept...)
	stays := map[string]bool{}
	for _, k := range kept {
		stays[k.Object.Name] = true
	}
	for _, h := range idxHandles {
		if !stays[h.Name] {
			res.Removed = append(res.Removed, h)
		}
	}
	// A pack an index file that stays still lists must stay too, or a
	// reader could look a copied blob up there and find nothing.
	var packs []store.Handle
	for _, h := range doomed[len(p.Indexes):] {
		id, _ := blob.ParseID(h.Name)
		listed := false
		for _, name := range p.listedBy[id] {
			listed = listed || stays[name]
		}
		if listed {
			res.Kept = append(res.Kept, Kept{h, "an index file that was kept lists it"})
			continue
		}
		packs = append(packs, h)
	}
	kept, err = removeLogged(ctx, r.Store(), lg, rm, packs, nil, host, time.Now(), gate)
	res.Kept = append(res.Kept, kept...)
	if err != nil {
		return res, fmt.Errorf("delete packs: %w", err)
	}
	if gated && len(packs) > 0 {
		// The old index files are gone but the packs stay: list them
		// again, or the new snapshot's blobs in them are in no index.
		if err := p.reindex(ctx, r, packs); err != nil {
			return res, err
		}
	}
	stays = map[string]bool{}
	for _, k := range kept {
		stays[k.Object.Name] = true
	}
	for _, h := range packs {
		if !stays[h.Name] {
			res.Removed = append(res.Removed, h)
		}
	}
	if res.Renewed, err = store.RenewAll(ctx, r.Store(), nil); err != nil {
		return res, err
	}
	return res, nil
}

// noNewSnapshot is the gate before each round of deletions: a snapshot
// stored since the plan was made (by a backup that ran meanwhile, which
// may use blobs of the packs to delete) keeps every object of the round,
// and it returns the reason. A backup that stores its snapshot after the
// gate sees prune's stored request instead (repo.CheckPruned).
func (p *Plan) noNewSnapshot(ctx context.Context, st store.Lister) (string, error) {
	var fresh string
	err := st.List(ctx, store.Snapshots, func(fi store.FileInfo) error {
		if !p.snapshots[fi.Name] && fresh == "" {
			fresh = fi.Name
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("list snapshots: %w", err)
	}
	if fresh != "" {
		return fmt.Sprintf("snapshot %s was stored while prune ran and may use it: run prune again", fresh[:8]), nil
	}
	return "", nil
}

// reindex writes index files listing the planned packs of hs again.
func (p *Plan) reindex(ctx context.Context, r *repo.Repository, hs []store.Handle) error {
	keep := map[string]bool{}
	for _, h := range hs {
		keep[h.Name] = true
	}
	var packs []index.Pack
	for _, pk := range slices.Concat(p.Repack, p.Delete) {
		if keep[pk.ID.String()] {
			packs = append(packs, pk)
		}
	}
	for start := 0; start < len(packs); start += packsPerIndex {
		if _, err := r.SaveIndex(ctx, packs[start:min(start+packsPerIndex, len(packs))]); err != nil {
			return fmt.Errorf("index the packs kept for a new snapshot: %w", err)
		}
	}
	return nil
}

// copyUsed saves the used blobs of the Repack packs again, into new packs,
// with an index that holds only the packs that stay, so that the blobs are
// not found already stored. The new packs' index files are written at the
// end of the session.
func (p *Plan) copyUsed(ctx context.Context, r *repo.Repository) error {
	if len(p.Repack) == 0 {
		return nil
	}
	x := index.New()
	for _, pk := range p.Keep {
		x.Add(pk)
	}
	r.SetIndex(x)
	r.StartWrites(ctx)
	packer := r.NewPacker()
	err := p.copyPacks(ctx, r, packer)
	if cerr := packer.Close(ctx); err == nil {
		err = cerr
	}
	if ferr := r.FinishWrites(); err == nil {
		err = ferr
	}
	if err != nil {
		return fmt.Errorf("copy used blobs: %w", err)
	}
	return nil
}

func (p *Plan) copyPacks(ctx context.Context, r *repo.Repository, packer *repo.Packer) error {
	var buf []byte
	for _, pk := range p.Repack {
		data, err := r.Store().Load(ctx, store.Handle{Type: store.Packs, Name: pk.ID.String()})
		if err != nil {
			return err
		}
		for _, e := range pk.Entries {
			if !p.used[e.Handle()] {
				continue
			}
			end := int64(e.Offset) + int64(e.Length)
			if end > int64(len(data)) {
				return fmt.Errorf("blob %v lies past the end of pack %s: %w", e.Handle(), pk.ID.Short(), blob.ErrCorrupt)
			}
			loc := index.Location{Pack: pk.ID, Ephemeral: pk.Ephemeral, Entry: e}
			buf, err = r.OpenBlob(loc, data[e.Offset:end], buf)
			if err != nil {
				return err
			}
			if _, _, err := packer.Save(ctx, e.Type, buf); err != nil {
				return err
			}
		}
	}
	return nil
}

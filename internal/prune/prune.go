// Package prune reclaims the space of forgotten snapshots without
// rewriting anything in place: the used blobs of mostly-unused packs are
// copied into new packs, a new index lists every pack that stays, and only
// then are old index files and packs deleted, as far as retention and the
// administrator allow (docs/design.md, "Forget and prune").
package prune

import (
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

// packsPerIndex and entriesPerIndex bound what one new index file lists:
// the packs, and their blobs (so that a file of packs of many small trees
// stays small).
const (
	packsPerIndex   = 512
	entriesPerIndex = 1 << 17
)

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
// packs, writes index files listing every pack that stays of those the
// replaced index files (Indexes) list, reading them again one at a time
// (an error if one is gone), and then
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
	if err := p.writeIndex(ctx, r); err != nil {
		return nil, err
	}
	var doomed []store.Handle
	for _, name := range p.Indexes {
		doomed = append(doomed, store.Handle{Type: store.Index, Name: name})
	}
	for _, id := range slices.Concat(p.Repack, p.Delete) {
		doomed = append(doomed, store.Handle{Type: store.Packs, Name: id.String()})
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
		i, _ := p.packs.find(id)
		listed := false
		for _, name := range p.listedBy(i) {
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

// writeIndex writes new index files listing every pack that stays of
// those the replaced index files list, reading those files again one at a
// time.
func (p *Plan) writeIndex(ctx context.Context, r *repo.Repository) error {
	if len(p.Indexes) == 0 {
		return nil
	}
	replaced := make(map[string]bool, len(p.Indexes))
	for _, name := range p.Indexes {
		replaced[name] = true
	}
	written := index.NewBitmap(len(p.packs))
	var w indexWriter
	read := 0
	err := r.EachIndexFile(ctx, func(name string, packs []index.Pack) error {
		if !replaced[name] {
			return nil
		}
		read++
		for _, pk := range packs {
			i, ok := p.packs.find(pk.ID)
			if !ok || written.Has(uint64(i)) || (p.packs[i].state != keep && p.packs[i].state != recent) {
				continue
			}
			written.Set(uint64(i))
			if err := w.add(ctx, r, pk); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && read != len(p.Indexes) {
		err = fmt.Errorf("%d of the %d index files to replace are gone: is another prune running?", len(p.Indexes)-read, len(p.Indexes))
	}
	if err == nil {
		err = w.flush(ctx, r)
	}
	if err != nil {
		return fmt.Errorf("write the new index: %w", err)
	}
	return nil
}

// indexWriter writes packs into index files of at most packsPerIndex packs
// and about entriesPerIndex blobs.
type indexWriter struct {
	packs   []index.Pack
	entries int
}

func (w *indexWriter) add(ctx context.Context, r *repo.Repository, pk index.Pack) error {
	if len(w.packs) > 0 && (len(w.packs) == packsPerIndex || w.entries+len(pk.Entries) > entriesPerIndex) {
		if err := w.flush(ctx, r); err != nil {
			return err
		}
	}
	w.packs = append(w.packs, pk)
	w.entries += len(pk.Entries)
	return nil
}

func (w *indexWriter) flush(ctx context.Context, r *repo.Repository) error {
	if len(w.packs) == 0 {
		return nil
	}
	_, err := r.SaveIndex(ctx, w.packs)
	w.packs, w.entries = w.packs[:0], 0
	return err
}

// reindex writes index files listing the planned packs of hs again, from
// their headers.
func (p *Plan) reindex(ctx context.Context, r *repo.Repository, hs []store.Handle) error {
	var w indexWriter
	for _, h := range hs {
		id, _ := blob.ParseID(h.Name)
		i, _ := p.packs.find(id)
		pk, err := r.ReadPackHeader(ctx, id, p.packs[i].size)
		if err == nil {
			err = w.add(ctx, r, pk)
		}
		if err != nil {
			return fmt.Errorf("index the packs kept for a new snapshot: %w", err)
		}
	}
	if err := w.flush(ctx, r); err != nil {
		return fmt.Errorf("index the packs kept for a new snapshot: %w", err)
	}
	return nil
}

// copyUsed saves the used blobs of the Repack packs again, into new packs,
// with an empty index, so that the blobs are not found already stored
// (Plan.copies copies each blob once, and none a pack that stays holds).
// The new packs' index files are written at the end of the session.
func (p *Plan) copyUsed(ctx context.Context, r *repo.Repository) error {
	if len(p.Repack) == 0 {
		return nil
	}
	r.SetIndex(index.New())
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

// copyPacks copies the used blobs each Repack pack claims, reading which
// blobs it holds from its header, which must be the one indexed.
func (p *Plan) copyPacks(ctx context.Context, r *repo.Repository, packer *repo.Packer) error {
	var buf []byte
	for _, id := range p.Repack {
		i, _ := p.packs.find(id)
		pk, err := r.ReadPackHeader(ctx, id, p.packs[i].size)
		if err != nil {
			return err
		}
		if entryDigest(p.seed, pk) != p.packs[i].digest {
			return fmt.Errorf("pack %s: header does not match the index (run 'kalaja check'): %w", id.Short(), blob.ErrCorrupt)
		}
		data, err := r.Store().Load(ctx, store.Handle{Type: store.Packs, Name: id.String()})
		if err != nil {
			return err
		}
		for _, e := range pk.Entries {
			if !p.copies(i, e.Handle()) {
				continue
			}
			end := int64(e.Offset) + int64(e.Length)
			if end > int64(len(data)) {
				return fmt.Errorf("blob %v lies past the end of pack %s: %w", e.Handle(), id.Short(), blob.ErrCorrupt)
			}
			loc := index.Location{Pack: id, Ephemeral: pk.Ephemeral, Entry: e}
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

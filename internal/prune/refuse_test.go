package prune

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store"
)

// TestPruneRefuses: damage the plan could make worse stops it, with an
// error that names what is wrong and says to run check.
func TestPruneRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, f *fixture) []*snapshot.Snapshot
		want   string
	}{
		{"indexed pack missing", func(t *testing.T, f *fixture) []*snapshot.Snapshot {
			// Every pack is indexed: remove one of data (one of trees
			// stops the walk of the snapshots first, with its own error).
			r := f.open(t)
			if err := r.LoadIndex(t.Context()); err != nil {
				t.Fatal(err)
			}
			var name string
			for _, n := range f.names(t, store.Packs) {
				if id, err := blob.ParseID(n); err == nil && !r.Index().TreesOnly(id) {
					name = n
					break
				}
			}
			if name == "" {
				t.Fatal("no pack of data")
			}
			if err := f.st.Remove(t.Context(), store.Handle{Type: store.Packs, Name: name}); err != nil {
				t.Fatal(err)
			}
			return []*snapshot.Snapshot{f.new}
		}, "is indexed but missing"},
		{"index file unreadable", func(t *testing.T, f *fixture) []*snapshot.Snapshot {
			bad := blob.Hash([]byte("not an index file")).String()
			if err := f.st.Save(t.Context(), store.Handle{Type: store.Index, Name: bad}, []byte("garbage")); err != nil {
				t.Fatal(err)
			}
			return []*snapshot.Snapshot{f.new}
		}, "index " + blob.Hash([]byte("not an index file")).String()[:8]},
		{"used blob not indexed", func(t *testing.T, f *fixture) []*snapshot.Snapshot {
			lost := blob.Hash([]byte("a chunk never stored"))
			tree := snapshot.Tree{Nodes: []snapshot.Node{{Name: "f", Kind: snapshot.File, Mode: 0o644, Content: []blob.ID{lost}}}}
			b, err := tree.Encode()
			if err != nil {
				t.Fatal(err)
			}
			r := f.open(t)
			r.StartWrites(t.Context())
			p := r.NewPacker()
			id, _, err := p.Save(t.Context(), blob.Tree, b)
			if err == nil {
				err = p.Close(t.Context())
			}
			if ferr := r.FinishWrites(); err == nil {
				err = ferr
			}
			if err != nil {
				t.Fatal(err)
			}
			return []*snapshot.Snapshot{f.new, {ID: blob.Hash([]byte("snapshot")), Tree: id}}
		}, "is used by a snapshot but no index lists it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			snaps := tc.damage(t, f)
			_, err := NewPlan(t.Context(), f.open(t), snaps, Options{MaxUnused: 0.2, Now: time.Now()})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "kalaja check") {
				t.Errorf("plan: %v; want an error with %q that says to run check", err, tc.want)
			}
		})
	}
}

// TestPruneHeaderNotIndexed: a pack to copy whose header is not the one
// its index file lists stops prune before it deletes anything, rather
// than copy the blobs the header names and lose those it does not.
func TestPruneHeaderNotIndexed(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	r := f.open(t)
	p, err := NewPlan(ctx, r, []*snapshot.Snapshot{f.new}, Options{MaxUnused: 0.2, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Repack) != 1 {
		t.Fatalf("plan %+v: want one pack to copy", p.Stats)
	}
	// As if the index file listed another set of blobs than the header.
	i, _ := p.packs.find(p.Repack[0])
	p.packs[i].digest++
	packs, indexes := f.names(t, store.Packs), f.names(t, store.Index)
	var log removed
	_, err = p.Execute(ctx, r, f.direct(t), &log, "test")
	if !errors.Is(err, blob.ErrCorrupt) || !strings.Contains(err.Error(), "header does not match the index") {
		t.Fatalf("Execute: %v; want the header mismatch", err)
	}
	if len(log.hs) != 0 || len(f.names(t, store.Packs)) < len(packs) || len(f.names(t, store.Index)) < len(indexes) {
		t.Errorf("removal records %v written, or objects deleted, after the header mismatch", log.hs)
	}
	f.checkRepository(t)
}

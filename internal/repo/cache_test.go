package repo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/index"
	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/local"
)

// loadCounter counts the index files a store loads.
type loadCounter struct {
	*local.Local
	mu    sync.Mutex
	loads []string
}

func (s *loadCounter) Load(ctx context.Context, h store.Handle) ([]byte, error) {
	if h.Type == store.Index {
		s.mu.Lock()
		s.loads = append(s.loads, h.Name)
		s.mu.Unlock()
	}
	return s.Local.Load(ctx, h)
}

func (s *loadCounter) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.loads
	s.loads = nil
	return l
}

// saveSession stores n blobs in one write session (one index file) and
// returns their handles.
func saveSession(t *testing.T, r *Repository, tag string, n int) []blob.Handle {
	t.Helper()
	ctx := context.Background()
	r.StartWrites(ctx)
	p := r.NewPacker()
	var hs []blob.Handle
	for i := range n {
		typ := blob.Data
		if i%4 == 0 {
			typ = blob.Tree
		}
		id, _, err := p.Save(ctx, typ, fmt.Appendf(nil, "%s blob %d", tag, i))
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, blob.Handle{Type: typ, ID: id})
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.FinishWrites(); err != nil {
		t.Fatal(err)
	}
	return hs
}

// openCached opens the repository in st with the cache under root ("" for
// none) and loads the index.
func openCached(t *testing.T, st store.Store, root string) *Repository {
	t.Helper()
	r, err := Open(context.Background(), st, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	r.SetCacheDir(root)
	if err := r.LoadIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	if root != "" {
		t.Cleanup(func() { r.Index().Close() })
	}
	return r
}

// sameIndex checks that cached answers as the index read without a cache,
// and that every blob loads through it.
func sameIndex(t *testing.T, cached, mem *Repository, hs []blob.Handle) {
	t.Helper()
	if cached.Index().Len() != mem.Index().Len() {
		t.Fatalf("Len %d, want %d", cached.Index().Len(), mem.Index().Len())
	}
	for _, h := range hs {
		a, okA := cached.Lookup(h)
		b, okB := mem.Lookup(h)
		if okA != okB || a != b {
			t.Fatalf("Lookup(%v) = %v %v, want %v %v", h, a, okA, b, okB)
		}
		if okA {
			if _, err := cached.LoadBlob(context.Background(), h, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestIndexCache(t *testing.T) {
	ctx := context.Background()
	r, st := newRepo(t)
	cs := &loadCounter{Local: st}
	root := t.TempDir()
	var hs []blob.Handle
	for i := range 3 {
		hs = append(hs, saveSession(t, r, fmt.Sprint("first", i), 20)...)
	}
	files := func() []string {
		var names []string
		if err := st.List(ctx, store.Index, func(fi store.FileInfo) error { names = append(names, fi.Name); return nil }); err != nil {
			t.Fatal(err)
		}
		return names
	}

	// Cold: every index file is read once.
	c := openCached(t, cs, root)
	if got := cs.take(); len(got) != 3 {
		t.Fatalf("cold open read %d index files, want 3", len(got))
	}
	sameIndex(t, c, openCached(t, st, ""), hs)

	// Warm: none is read.
	cs.take()
	c = openCached(t, cs, root)
	if got := cs.take(); len(got) != 0 {
		t.Fatalf("warm open read %v", got)
	}
	sameIndex(t, c, openCached(t, st, ""), hs)

	// Incremental: a backup through the cached index finds what is stored
	// and adds only what is new; the next open reads only its index file.
	before := files()
	hs = append(hs, saveSession(t, c, "first0", 20)...)
	if after := files(); len(after) != len(before) {
		t.Fatalf("a session of stored blobs wrote an index file: %d -> %d", len(before), len(after))
	}
	more := saveSession(t, c, "second", 30)
	hs = append(hs, more...)
	for _, h := range more {
		if _, ok := c.Lookup(h); !ok {
			t.Fatalf("blob %v saved in this process not found", h)
		}
	}
	c = openCached(t, cs, root)
	if got := cs.take(); len(got) != 1 || slices.Contains(before, got[0]) {
		t.Fatalf("incremental open read %v, want the new file only", got)
	}
	sameIndex(t, c, openCached(t, st, ""), hs)

	// Removed index file (as prune does): its blobs are gone from the cache,
	// the others stay.
	if err := st.Remove(ctx, store.Handle{Type: store.Index, Name: before[0]}); err != nil {
		t.Fatal(err)
	}
	c = openCached(t, cs, root)
	cs.take()
	mem := openCached(t, st, "")
	sameIndex(t, c, mem, hs)
	if mem.Index().Len() >= len(hs) {
		t.Fatal("removing an index file removed no blob")
	}

	// A damaged cache is rebuilt.
	dir := c.IndexCacheDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "lock" {
			if err := os.WriteFile(filepath.Join(dir, e.Name()), []byte("garbage"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	c = openCached(t, cs, root)
	if got := cs.take(); len(got) != len(files()) {
		t.Fatalf("open of a damaged cache read %d files, want %d", len(got), len(files()))
	}
	sameIndex(t, c, mem, hs)
}

// TestIndexCacheUnusable: a cache directory that cannot be made leaves the
// index in memory, with an error saying so.
func TestIndexCacheUnusable(t *testing.T) {
	r, st := newRepo(t)
	hs := saveSession(t, r, "x", 5)
	root := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(root, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Open(context.Background(), st, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	c.SetCacheDir(root)
	if err := c.LoadIndex(context.Background()); err == nil {
		t.Fatal("no error for an unusable cache")
	}
	sameIndex(t, c, openCached(t, st, ""), hs)
}

// TestIndexSpill: with spilling on, what write sessions add leaves memory
// for the cache once its index files are stored; lookups and loads go on
// finding it, a session of the same blobs stores nothing, and the next
// open reads none of those index files.
func TestIndexSpill(t *testing.T) {
	old := index.SpillRecords
	index.SpillRecords = 30
	t.Cleanup(func() { index.SpillRecords = old })
	ctx := context.Background()
	r, st := newRepo(t)
	saveSession(t, r, "before", 10)
	cs := &loadCounter{Local: st}
	root := t.TempDir()
	c := openCached(t, cs, root)
	c.Index().SetSpill(true)
	var hs []blob.Handle
	for i := range 4 {
		hs = append(hs, saveSession(t, c, fmt.Sprint("spilled", i), 20)...)
	}
	if err := c.Index().SpillErr(); err != nil {
		t.Fatal(err)
	}
	sameIndex(t, c, openCached(t, st, ""), hs)
	if n := len(c.Index().ByPack()); n != 5 {
		t.Fatalf("%d packs indexed, want 5", n)
	}
	var names []string
	if err := st.List(ctx, store.Index, func(fi store.FileInfo) error { names = append(names, fi.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	saveSession(t, c, "spilled2", 20)
	var after []string
	if err := st.List(ctx, store.Index, func(fi store.FileInfo) error { after = append(after, fi.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(after) != len(names) {
		t.Fatalf("a session of spilled blobs wrote an index file: %d -> %d", len(names), len(after))
	}
	cs.take()
	c2 := openCached(t, cs, root)
	if got := cs.take(); len(got) != 0 {
		t.Fatalf("the open after the spills read %v", got)
	}
	sameIndex(t, c2, openCached(t, st, ""), hs)
}

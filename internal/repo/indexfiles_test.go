package repo

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/index"
	"github.com/kalaja/kalaja/internal/pack"
	"github.com/kalaja/kalaja/internal/store"
)

// savedIndexFiles stores n index files of one pack each in r and returns
// the packs by file name.
func savedIndexFiles(t *testing.T, r *Repository, n int) map[string]blob.ID {
	t.Helper()
	files := map[string]blob.ID{}
	for i := range n {
		p := index.Pack{ID: blob.Hash([]byte{byte(i)}), Entries: []pack.Entry{{Type: blob.Data, ID: blob.Hash([]byte{0, byte(i)}), Length: 100}}}
		id, err := r.SaveIndex(t.Context(), []index.Pack{p})
		if err != nil {
			t.Fatal(err)
		}
		files[id.String()] = p.ID
	}
	return files
}

// TestEachIndexFile: every readable file is given once with its packs; a
// corrupt one is skipped and named in the error, as an *IndexError.
func TestEachIndexFile(t *testing.T) {
	ctx := t.Context()
	r, st := newRepo(t)
	files := savedIndexFiles(t, r, 9)
	bad := blob.Hash([]byte("not an index file")).String()
	if err := st.Save(ctx, store.Handle{Type: store.Index, Name: bad}, []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	got := map[string]blob.ID{}
	err := r.EachIndexFile(ctx, func(name string, packs []index.Pack) error {
		if _, ok := got[name]; ok || len(packs) != 1 {
			t.Errorf("file %s given again or with %d packs", name, len(packs))
		}
		got[name] = packs[0].ID
		return nil
	})
	var ie *IndexError
	if !errors.As(err, &ie) || ie.Name != bad || !strings.Contains(err.Error(), bad[:8]) {
		t.Fatalf("error %v does not name the corrupt file %s", err, bad[:8])
	}
	if len(got) != len(files) {
		t.Fatalf("got %d files, want %d", len(got), len(files))
	}
	for name, id := range files {
		if got[name] != id {
			t.Errorf("file %s: got pack %s, want %s", name[:8], got[name].Short(), id.Short())
		}
	}
	if r.Index().Len() != 0 {
		t.Errorf("EachIndexFile filled the index with %d blobs", r.Index().Len())
	}
}

// TestEachIndexFileStops: fn's error ends the reading and is returned as
// it is, and a cancelled context returns its error.
func TestEachIndexFileStops(t *testing.T) {
	r, _ := newRepo(t)
	savedIndexFiles(t, r, 20)
	stop := errors.New("stop")
	calls := 0
	err := r.EachIndexFile(t.Context(), func(string, []index.Pack) error {
		calls++
		return stop
	})
	if err != stop || calls != 1 {
		t.Errorf("EachIndexFile returned %v after %d calls; want fn's error after one", err, calls)
	}

	ctx, cancel := context.WithCancel(t.Context())
	var once sync.Once
	err = r.EachIndexFile(ctx, func(string, []index.Pack) error {
		once.Do(cancel)
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("EachIndexFile after cancel returned %v", err)
	}
}

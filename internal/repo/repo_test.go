package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/local"
)

func cheapKDF(t testing.TB) crypto.KDFParams {
	p, err := crypto.DefaultKDF()
	if err != nil {
		t.Fatal(err)
	}
	p.Time, p.MemoryKiB, p.Threads = 1, 8<<10, 1
	return p
}

func newRepo(t *testing.T) (*Repository, *local.Local) {
	t.Helper()
	st, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Init(context.Background(), st, []byte("pw"), cheapKDF(t))
	if err != nil {
		t.Fatal(err)
	}
	return r, st
}

func randomBlobs(n, size int) [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	var out [][]byte
	for i := range n {
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(rng.UintN(256))
		}
		if i%2 == 0 {
			b = bytes.Repeat([]byte(fmt.Sprintf("compressible %d ", i)), size/16)
		}
		out = append(out, b)
	}
	return out
}

func TestSaveLoad(t *testing.T) {
	ctx := context.Background()
	r, st := newRepo(t)
	blobs := randomBlobs(40, 1<<20)
	r.StartWrites(ctx)
	var ids []blob.ID
	p1, p2 := r.NewPacker(), r.NewPacker()
	for i, b := range blobs {
		p := p1
		if i%2 == 1 {
			p = p2
		}
		id, n, err := p.Save(ctx, blob.Data, b)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatalf("blob %d not added", i)
		}
		ids = append(ids, id)
	}
	if _, n, _ := p1.Save(ctx, blob.Data, blobs[3]); n != 0 {
		t.Fatal("duplicate stored twice")
	}
	for _, p := range []*Packer{p1, p2} {
		if err := p.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.FinishWrites(); err != nil {
		t.Fatal(err)
	}

	r2, err := Open(ctx, st, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if r2.Index().Len() != len(blobs) {
		t.Fatalf("index has %d blobs, want %d", r2.Index().Len(), len(blobs))
	}
	for i, id := range ids {
		got, err := r2.LoadBlob(ctx, blob.Handle{Type: blob.Data, ID: id}, nil)
		if err != nil || !bytes.Equal(got, blobs[i]) {
			t.Fatalf("blob %d: %v", i, err)
		}
	}
	if _, err := Open(ctx, st, []byte("wrong")); !errors.Is(err, blob.ErrWrongPassword) {
		t.Fatalf("wrong password: %v", err)
	}
}

// TestIDFuncByVersion reads and writes a repository of each format
// version: version 1 names blobs by HMAC-SHA256, version 2 by BLAKE3.
func TestIDFuncByVersion(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		version int
		f       crypto.IDFunc
	}{{1, crypto.HMACSHA256}, {2, crypto.BLAKE3}} {
		t.Run(fmt.Sprint("version ", tt.version), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "repo")
			st, err := local.Create(dir)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Init(ctx, st, []byte("pw"), cheapKDF(t)); err != nil {
				t.Fatal(err)
			}
			if tt.version == 1 { // as a version 1 kalaja wrote it
				cfg, err := LoadConfig(ctx, st)
				if err != nil {
					t.Fatal(err)
				}
				cfg.Version, cfg.BlobID = 1, ""
				b, _ := json.Marshal(cfg)
				if err := os.WriteFile(filepath.Join(dir, "config"), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			r, err := Open(ctx, st, []byte("pw"))
			if err != nil {
				t.Fatal(err)
			}
			data := []byte("chunk named by the repository's ID function")
			r.StartWrites(ctx)
			p := r.NewPacker()
			id, _, err := p.Save(ctx, blob.Data, data)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if err := r.FinishWrites(); err != nil {
				t.Fatal(err)
			}
			if want := r.Keys().NewIDHasher(tt.f).Sum(data); id != want {
				t.Fatalf("blob ID %s, want %s by %s", id, want, tt.f)
			}
			got, err := r.LoadBlob(ctx, blob.Handle{Type: blob.Data, ID: id}, nil)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("load: %q, %v", got, err)
			}
		})
	}
}

func TestSnapshotsAndSwap(t *testing.T) {
	ctx := context.Background()
	r, st := newRepo(t)
	var ids []blob.ID
	for i := range 2 {
		id, err := r.SaveSnapshot(ctx, &snapshot.Snapshot{Time: time.Unix(int64(i), 0), Tree: blob.Hash([]byte{byte(i)}), Paths: []string{"/p"}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	list, err := r.Snapshots(ctx)
	if err != nil || len(list) != 2 || list[0].ID != ids[0] {
		t.Fatalf("snapshots: %v %v", list, err)
	}
	// Swap the two snapshot files: both must be reported, neither trusted.
	dir := filepath.Join(st.Location(), "snapshots")
	a, b := filepath.Join(dir, ids[0].String()), filepath.Join(dir, ids[1].String())
	os.Rename(a, a+".x")
	os.Rename(b, a)
	os.Rename(a+".x", b)
	list, err = r.Snapshots(ctx)
	if len(list) != 0 || !errors.Is(err, blob.ErrCorrupt) {
		t.Fatalf("swapped snapshots accepted: %v %v", list, err)
	}
}

func TestIndexOrphans(t *testing.T) {
	ctx := context.Background()
	r, st := newRepo(t)
	r.StartWrites(ctx)
	p := r.NewPacker()
	id, _, err := p.Save(ctx, blob.Data, []byte("orphan data, its index is lost"))
	if err != nil {
		t.Fatal(err)
	}
	p.Close(ctx)
	if err := r.FinishWrites(); err != nil {
		t.Fatal(err)
	}
	var idx []string
	st.List(ctx, store.Index, func(fi store.FileInfo) error { idx = append(idx, fi.Name); return nil })
	for _, n := range idx {
		os.Remove(filepath.Join(st.Location(), "index", n))
	}
	r2, _ := Open(ctx, st, []byte("pw"))
	r2.LoadIndex(ctx)
	if r2.Index().Len() != 0 {
		t.Fatal("index not lost")
	}
	n, err := r2.IndexOrphans(ctx)
	if err != nil || n != 1 {
		t.Fatalf("IndexOrphans = %d, %v", n, err)
	}
	if _, err := r2.LoadBlob(ctx, blob.Handle{Type: blob.Data, ID: id}, nil); err != nil {
		t.Fatal(err)
	}
	r3, _ := Open(ctx, st, []byte("pw"))
	if err := r3.LoadIndex(ctx); err != nil || r3.Index().Len() != 1 {
		t.Fatalf("re-index not persisted: %v", err)
	}
}

func TestCompressionDecision(t *testing.T) {
	ctx := context.Background()
	r, _ := newRepo(t)
	rng := rand.New(rand.NewPCG(3, 4))
	random := make([]byte, 1<<20)
	for i := range random {
		random[i] = byte(rng.UintN(256))
	}
	text := bytes.Repeat([]byte("func main() { fmt.Println(\"kalaja\") }\n"), 1<<15)
	small := []byte("short but repetitive repetitive repetitive repetitive repetitive text")
	tests := []struct {
		name       string
		data       []byte
		compressed bool
	}{
		{"random", random, false},
		{"text", text, true},
		{"small text", small, true},
		{"tiny", []byte("x"), false},
	}
	r.StartWrites(ctx)
	p := r.NewPacker()
	ids := make([]blob.ID, len(tests))
	for i, tt := range tests {
		id, _, err := p.Save(ctx, blob.Data, tt.data)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	p.Close(ctx)
	if err := r.FinishWrites(); err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc, ok := r.Index().Lookup(blob.Handle{Type: blob.Data, ID: ids[i]})
			if !ok {
				t.Fatal("not indexed")
			}
			if got := loc.RawLength != 0; got != tt.compressed {
				t.Fatalf("compressed = %v, want %v (stored %d of %d bytes)", got, tt.compressed, loc.Length, len(tt.data))
			}
			back, err := r.LoadBlob(ctx, loc.Handle(), nil)
			if err != nil || !bytes.Equal(back, tt.data) {
				t.Fatalf("load: %v", err)
			}
		})
	}
}

// countingStore counts the store's Prefetch hints.
type countingStore struct {
	*local.Local
	mu         sync.Mutex
	prefetched map[string]int
}

func (s *countingStore) Prefetch(h store.Handle) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prefetched[h.Name]++
}

// TestPrefetchTreePacks loads trees and content: a pack of trees only is
// prefetched once, however many of its trees load, and a pack holding
// content never.
func TestPrefetchTreePacks(t *testing.T) {
	ctx := context.Background()
	r, st := newRepo(t)
	r.StartWrites(ctx)
	trees, data := r.NewPacker(), r.NewPacker()
	var treeIDs []blob.ID
	for i := range 3 {
		id, _, err := trees.Save(ctx, blob.Tree, []byte(fmt.Sprintf(`{"v":1,"nodes":[{"name":"f%d","type":"fifo","mode":420,"uid":0,"gid":0,"mtime":[0,0]}]}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		treeIDs = append(treeIDs, id)
	}
	dataID, _, err := data.Save(ctx, blob.Data, []byte("content"))
	if err != nil {
		t.Fatal(err)
	}
	mixedTree, _, err := data.Save(ctx, blob.Tree, []byte(`{"v":1,"nodes":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*Packer{trees, data} {
		if err := p.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.FinishWrites(); err != nil {
		t.Fatal(err)
	}

	cs := &countingStore{Local: st, prefetched: map[string]int{}}
	r2, err := Open(ctx, cs, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range append(treeIDs, mixedTree) {
		if _, err := r2.LoadTree(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r2.LoadBlob(ctx, blob.Handle{Type: blob.Data, ID: dataID}, nil); err != nil {
		t.Fatal(err)
	}
	treeLoc, _ := r2.Index().Lookup(blob.Handle{Type: blob.Tree, ID: treeIDs[0]})
	want := map[string]int{treeLoc.Pack.String(): 1}
	if !maps.Equal(cs.prefetched, want) {
		t.Fatalf("prefetched %v, want %v", cs.prefetched, want)
	}
}

// TestWriteOnlyKey: a write-only key opens as such, is listed as such,
// refuses reads with crypto.ErrWriteOnly, and OpenHint tries the hinted
// key file first (any hint still opens with the right password).
func TestWriteOnlyKey(t *testing.T) {
	ctx := context.Background()
	r, st := newRepo(t)
	if _, err := r.AddKeyWith(ctx, []byte("host"), cheapKDF(t), KeyOptions{WriteOnly: true}); err == nil {
		t.Fatal("a write-only key without the log's signer was made")
	}
	name, err := r.AddKeyWith(ctx, []byte("host"), cheapKDF(t), KeyOptions{WriteOnly: true, LogSigner: []byte("s\nv\n"), Host: "fs-01"})
	if err != nil {
		t.Fatal(err)
	}
	for _, hint := range []string{"", name, r.KeyName(), "nonexistent"} {
		w, err := OpenHint(ctx, st, []byte("host"), hint)
		if err != nil {
			t.Fatal(err)
		}
		if w.KeyName() != name || w.Keys().CanRead() {
			t.Fatalf("hint %q: opened %s, reads %v", hint, w.KeyName(), w.Keys().CanRead())
		}
		if err := w.RequireRead(); !errors.Is(err, crypto.ErrWriteOnly) {
			t.Fatalf("RequireRead: %v", err)
		}
		if _, err := w.Snapshots(ctx); !errors.Is(err, crypto.ErrWriteOnly) {
			t.Fatalf("Snapshots: %v", err)
		}
	}
	keys, err := r.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wo := 0
	for _, k := range keys {
		if k.WriteOnly {
			wo++
			if k.Name != name || k.Host != "fs-01" {
				t.Fatalf("write-only key listed as %+v", k)
			}
		}
	}
	if len(keys) != 2 || wo != 1 {
		t.Fatalf("%d keys, %d write-only", len(keys), wo)
	}
	if err := r.RequireRead(); err != nil {
		t.Fatalf("full key: %v", err)
	}
}

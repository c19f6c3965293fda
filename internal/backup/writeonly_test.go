package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/parentcache"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store/local"
)

var cheapKDF = crypto.KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1, Salt: make([]byte, 16)}

// writeOnlyRepo makes a repository and returns it opened with its full key
// and with a write-only key added to it.
func writeOnlyRepo(t *testing.T) (full, wo *repo.Repository) {
	t.Helper()
	ctx := t.Context()
	st, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	full, err = repo.Init(ctx, st, []byte("full"), cheapKDF)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ledger.SignerKey(ctx, st, full.Config().ID, full.Keys())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := full.AddKeyWith(ctx, []byte("host"), cheapKDF, repo.KeyOptions{WriteOnly: true, LogSigner: signer, Host: "fs-01"}); err != nil {
		t.Fatal(err)
	}
	if wo, err = repo.Open(ctx, st, []byte("host")); err != nil {
		t.Fatal(err)
	}
	if wo.Keys().CanRead() {
		t.Fatal("the write-only key reads")
	}
	return full, wo
}

// TestWriteOnlyBackup: a write-only host's backups are incremental from
// its parent cache; a corrupt or lost cache costs a full read and still
// makes a right snapshot, which the full key reads back; the cache holds
// no file name or content in the clear; the write-only key reads nothing.
func TestWriteOnlyBackup(t *testing.T) {
	ctx := context.Background()
	full, wo := writeOnlyRepo(t)
	src := t.TempDir()
	files := map[string]string{"MARKERNAME-a.txt": "MARKERCONTENT alpha", "sub/MARKERNAME-b.txt": "MARKERCONTENT beta"}
	write := func() {
		for name, data := range files {
			p := filepath.Join(src, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	write()
	cacheDir := t.TempDir()
	cache := parentcache.New(cacheDir, wo.Keys())
	run := func() *snapshot.Snapshot {
		t.Helper()
		if err := wo.LoadIndex(ctx); err != nil {
			t.Fatal(err)
		}
		res, err := Run(ctx, wo, nil, []string{src}, Options{Host: "fs-01", Cache: cache})
		if err != nil {
			t.Fatal(err)
		}
		return res.Snapshot
	}
	damage := func(edit func(p string)) {
		ents, _ := os.ReadDir(cacheDir)
		if len(ents) != 1 {
			t.Fatalf("%d cache files, want 1", len(ents))
		}
		edit(filepath.Join(cacheDir, ents[0].Name()))
	}
	first := run()
	steps := []struct {
		name                    string
		before                  func()
		new, changed, unchanged int
		parent                  bool
	}{
		{"incremental", func() {}, 0, 0, 2, true},
		{"one file changed", func() {
			files["sub/MARKERNAME-b.txt"] = "MARKERCONTENT gamma"
			os.WriteFile(filepath.Join(src, "sub/MARKERNAME-b.txt"), []byte(files["sub/MARKERNAME-b.txt"]), 0o644)
		}, 0, 1, 1, true},
		{"corrupt cache", func() {
			damage(func(p string) {
				b, _ := os.ReadFile(p)
				b[len(b)/2] ^= 1
				os.WriteFile(p, b, 0o600)
			})
		}, 2, 0, 0, false},
		{"incremental again", func() {}, 0, 0, 2, true},
		{"lost cache", func() { damage(func(p string) { os.Remove(p) }) }, 2, 0, 0, false},
	}
	last := first
	for _, s := range steps {
		s.before()
		sn := run()
		sum := sn.Summary
		if sum.FilesNew != s.new || sum.FilesChanged != s.changed || sum.FilesUnchanged != s.unchanged {
			t.Fatalf("%s: %d new, %d changed, %d unchanged; want %d, %d, %d", s.name,
				sum.FilesNew, sum.FilesChanged, sum.FilesUnchanged, s.new, s.changed, s.unchanged)
		}
		if (sn.Parent != nil) != s.parent || s.parent && *sn.Parent != last.ID {
			t.Fatalf("%s: parent %v, want %v of %s", s.name, sn.Parent, s.parent, last.ID.Short())
		}
		if sn.Health == nil {
			t.Fatalf("%s: no health", s.name)
		}
		last = sn
	}

	// The full key reads every snapshot back as the files were.
	if err := full.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	sn, err := full.LoadSnapshot(ctx, last.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	var walk func(id blob.ID, dir string)
	walk = func(id blob.ID, dir string) {
		tree, err := full.LoadTree(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range tree.Nodes {
			p := filepath.Join(dir, string(n.Name))
			switch n.Kind {
			case snapshot.Dir:
				walk(*n.Subtree, p)
			case snapshot.File:
				var b []byte
				for _, c := range n.Content {
					d, err := full.LoadBlob(ctx, blob.Handle{Type: blob.Data, ID: c}, nil)
					if err != nil {
						t.Fatal(err)
					}
					b = append(b, d...)
				}
				if rel, err := filepath.Rel(src, p); err == nil {
					got[rel] = string(b)
				}
			}
		}
	}
	walk(sn.Tree, "/")
	for name, data := range files {
		if got[name] != data {
			t.Errorf("%s: full key reads %q, want %q", name, got[name], data)
		}
	}

	// The write-only key reads nothing back.
	if _, err := wo.Snapshots(ctx); !errors.Is(err, crypto.ErrWriteOnly) {
		t.Errorf("Snapshots: %v, want ErrWriteOnly", err)
	}
	if _, err := wo.LoadTree(ctx, sn.Tree); !errors.Is(err, crypto.ErrWriteOnly) {
		t.Errorf("LoadTree: %v, want ErrWriteOnly", err)
	}
	if _, err := wo.LoadSnapshot(ctx, sn.ID); !errors.Is(err, crypto.ErrWriteOnly) {
		t.Errorf("LoadSnapshot: %v, want ErrWriteOnly", err)
	}
	// The cache at rest holds no name or content in the clear.
	ents, _ := os.ReadDir(cacheDir)
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(cacheDir, e.Name()))
		if bytes.Contains(b, []byte("MARKER")) {
			t.Errorf("cache file %s holds plaintext", e.Name())
		}
	}
}

// TestWriteOnlyHealth: a write-only host's snapshot is judged against its
// cached parent as against a stored one: a mass deletion since the parent
// makes it suspect.
func TestWriteOnlyHealth(t *testing.T) {
	ctx := context.Background()
	_, wo := writeOnlyRepo(t)
	src := t.TempDir()
	for i := range 40 {
		p := filepath.Join(src, "docs", fmt.Sprintf("report-%02d.txt", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.Repeat([]byte(fmt.Sprintf("minutes of meeting %d\n", i)), 200), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cache := parentcache.New(t.TempDir(), wo.Keys())
	run := func() *snapshot.Snapshot {
		t.Helper()
		if err := wo.LoadIndex(ctx); err != nil {
			t.Fatal(err)
		}
		res, err := Run(ctx, wo, nil, []string{src}, Options{Host: "fs-01", Cache: cache})
		if err != nil {
			t.Fatal(err)
		}
		return res.Snapshot
	}
	run()
	if h := run().Health; h == nil || h.Status != snapshot.Clean {
		t.Fatalf("unchanged: health %+v", h)
	}
	for i := range 36 {
		if err := os.Remove(filepath.Join(src, "docs", fmt.Sprintf("report-%02d.txt", i))); err != nil {
			t.Fatal(err)
		}
	}
	h := run().Health
	if h == nil || h.Status != snapshot.Suspect || !slices.ContainsFunc(h.Verdict().Reasons, func(r snapshot.Reason) bool { return r.Signal == snapshot.DeletedFiles }) {
		t.Fatalf("after deleting 36 of 40 files: health %+v", h)
	}
}

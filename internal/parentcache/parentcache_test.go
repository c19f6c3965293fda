package parentcache

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/snapshot"
)

func testKeys(t *testing.T, repo string) *crypto.Keys {
	t.Helper()
	k, err := crypto.NewKeys(blob.Hash([]byte(repo)))
	if err != nil {
		t.Fatal(err)
	}
	return k.WriteOnly([]byte("s\nv\n"))
}

func testEntry(t *testing.T) *Entry {
	t.Helper()
	tree := &snapshot.Tree{Nodes: []snapshot.Node{{Name: "a.txt", Kind: snapshot.File, Size: 3}}}
	data, err := tree.Encode()
	if err != nil {
		t.Fatal(err)
	}
	id := blob.Hash(data)
	return &Entry{
		Snapshot: &snapshot.Snapshot{ID: blob.Hash([]byte("sn")), Time: time.Unix(1, 0).UTC(), Tree: id, Hostname: "fs-01", Paths: []string{"/srv"}},
		Baseline: []*snapshot.Health{{Status: snapshot.Clean}},
		Trees:    map[blob.ID][]byte{id: data},
	}
}

// TestCache: an entry round-trips; a damaged file, one copied under
// another host's or paths' name, one sealed for another repository, and a
// missing one are refused with the errors a backup turns into a full read.
func TestCache(t *testing.T) {
	dir := t.TempDir()
	keys := testKeys(t, "repo")
	c := New(dir, keys)
	e := testEntry(t)
	if _, err := c.Load("fs-01", []string{"/srv"}); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("empty cache: %v", err)
	}
	if err := c.Save(e); err != nil {
		t.Fatal(err)
	}
	got, err := c.Load("fs-01", []string{"/srv"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Snapshot.ID != e.Snapshot.ID || len(got.Baseline) != 1 || len(got.Trees) != 1 {
		t.Fatalf("round trip: %+v", got)
	}
	tree, err := got.LoadTree(context.Background(), e.Snapshot.Tree)
	if err != nil || len(tree.Nodes) != 1 || tree.Nodes[0].Name != "a.txt" {
		t.Fatalf("tree: %v %v", tree, err)
	}
	if _, err := got.LoadTree(context.Background(), blob.Hash([]byte("x"))); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("absent tree: %v", err)
	}

	file := filepath.Join(dir, name("fs-01", []string{"/srv"}))
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		setup func(t *testing.T) (*Cache, string, []string)
	}{
		{"flipped byte", func(t *testing.T) (*Cache, string, []string) {
			b := append([]byte(nil), good...)
			b[len(b)/2] ^= 1
			os.WriteFile(file, b, 0o600)
			return c, "fs-01", []string{"/srv"}
		}},
		{"truncated", func(t *testing.T) (*Cache, string, []string) {
			os.WriteFile(file, good[:10], 0o600)
			return c, "fs-01", []string{"/srv"}
		}},
		{"another host's name", func(t *testing.T) (*Cache, string, []string) {
			os.WriteFile(file, good, 0o600)
			os.WriteFile(filepath.Join(dir, name("fs-02", []string{"/srv"})), good, 0o600)
			return c, "fs-02", []string{"/srv"}
		}},
		{"another repository's keys", func(t *testing.T) (*Cache, string, []string) {
			os.WriteFile(file, good, 0o600)
			return New(dir, testKeys(t, "other")), "fs-01", []string{"/srv"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, host, paths := tt.setup(t)
			if _, err := c.Load(host, paths); !errors.Is(err, blob.ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
		})
	}
}

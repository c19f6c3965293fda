package archiver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store/local"
)

// newRepo makes a repository in a temporary directory, with a cheap key.
func newRepo(t testing.TB) *repo.Repository {
	t.Helper()
	return newRepoIn(t, t.TempDir())
}

// newRepoIn makes a repository in dir, with a cheap key.
func newRepoIn(t testing.TB, dir string) *repo.Repository {
	t.Helper()
	st, err := local.Create(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(t.Context(), st, []byte("pw"), crypto.KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1, Salt: make([]byte, 16)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestExclude: paths Exclude reports are left out of the snapshot; the
// rest is saved.
func TestExclude(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	dir := t.TempDir()
	// A quarantine folder is always left out, at any level.
	for _, f := range []string{"keep.txt", "damaged.txt", "sub/keep.txt", "gone/a.txt",
		snapshot.QuarantineName + "/t/x.locked", "sub/" + snapshot.QuarantineName + "/y"} {
		p := filepath.Join(dir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	skip := []string{filepath.Join(dir, "damaged.txt"), filepath.Join(dir, "gone")}
	sn, err := Backup(ctx, r, []string{dir}, Options{Hostname: "h", Exclude: func(p string) bool { return slices.Contains(skip, p) }})
	if err != nil {
		t.Fatal(err)
	}
	// Walk the snapshot down to dir and list what it holds.
	tree, err := r.LoadTree(ctx, sn.Tree)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range splitPath(dir) {
		n := tree.Find(part)
		if n == nil || n.Subtree == nil {
			t.Fatalf("snapshot lacks %s", part)
		}
		if tree, err = r.LoadTree(ctx, *n.Subtree); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	for _, n := range tree.Nodes {
		names = append(names, string(n.Name))
		if n.Name == "sub" {
			sub, err := r.LoadTree(ctx, *n.Subtree)
			if err != nil || len(sub.Nodes) != 1 || sub.Nodes[0].Name != "keep.txt" {
				t.Errorf("sub holds %+v (%v), want keep.txt only", sub, err)
			}
		}
	}
	if want := []string{"keep.txt", "sub"}; !slices.Equal(names, want) {
		t.Errorf("snapshot of %s holds %v, want %v", dir, names, want)
	}
}

func splitPath(p string) []string {
	var parts []string
	for p != "/" && p != "." {
		parts = append([]string{filepath.Base(p)}, parts...)
		p = filepath.Dir(p)
	}
	return parts
}

// TestWarmReturns runs warm over a tree wider and deeper than its worker
// limit, with a symlink loop and a missing root, and once cancelled: it
// must return every time.
func TestWarmReturns(t *testing.T) {
	root := t.TempDir()
	for i := range 3 * warmWorkers {
		d := filepath.Join(root, fmt.Sprint("d", i), "a", "b", "c")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "f"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(root, filepath.Join(root, "loop")); err != nil {
		t.Fatal(err)
	}
	warm(context.Background(), []string{root, filepath.Join(root, "missing")})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	warm(ctx, []string{root})
}

// TestTreesPackedApart backs up a tree of many folders and files and
// requires that no pack holds both trees and file content.
func TestTreesPackedApart(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	dir := t.TempDir()
	for i := range 50 {
		p := filepath.Join(dir, fmt.Sprint("d", i%7), fmt.Sprint("f", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Backup(ctx, r, []string{dir}, Options{Hostname: "h"}); err != nil {
		t.Fatal(err)
	}
	var treePacks, dataPacks int
	for id, p := range r.Index().ByPack() {
		types := map[blob.Type]bool{}
		for _, e := range p.Entries {
			types[e.Type] = true
		}
		if len(types) != 1 {
			t.Errorf("pack %s holds trees and content", id.Short())
		}
		if types[blob.Tree] {
			treePacks++
			if !r.Index().TreesOnly(id) {
				t.Errorf("pack %s of trees: TreesOnly is false", id.Short())
			}
		} else {
			dataPacks++
			if r.Index().TreesOnly(id) {
				t.Errorf("pack %s of content: TreesOnly is true", id.Short())
			}
		}
	}
	if treePacks == 0 || dataPacks == 0 {
		t.Fatalf("%d packs of trees, %d of content", treePacks, dataPacks)
	}
}

// TestPendingDirsBound: with room for one walked directory at a time, the
// walker waits for each tree to be saved, and the tree of the folder backed
// up, first and incremental, is the one an unbounded walk makes.
func TestPendingDirsBound(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for i := range 40 {
		p := filepath.Join(dir, fmt.Sprintf("a%d/b%d/f%d", i%4, i%7, i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := newRepo(t)
	// subtree is the ID of dir's tree in sn (its ancestors' times change
	// as other tests write next to it).
	subtree := func(sn *snapshot.Snapshot) blob.ID {
		t.Helper()
		id := sn.Tree
		for _, part := range splitPath(dir) {
			tree, err := r.LoadTree(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			n := tree.Find(part)
			if n == nil || n.Subtree == nil {
				t.Fatalf("snapshot lacks %s", part)
			}
			id = *n.Subtree
		}
		return id
	}
	first, err := Backup(ctx, r, []string{dir}, Options{Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	want := subtree(first)
	for _, parent := range []*snapshot.Snapshot{nil, first} {
		got, err := Backup(ctx, r, []string{dir}, Options{Hostname: "h", Parent: parent, pendingDirs: 1})
		if err != nil {
			t.Fatal(err)
		}
		if id := subtree(got); id != want {
			t.Errorf("parent %v: tree %s, want %s", parent != nil, id.Short(), want.Short())
		}
		if parent != nil && got.Summary.FilesUnchanged != 40 {
			t.Errorf("incremental: %d files unchanged, want 40", got.Summary.FilesUnchanged)
		}
	}
}

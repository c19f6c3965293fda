package restorer

import (
	"errors"
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

var _ Source = (*repo.Repository)(nil)

// realRepo is a repository in a temporary directory, with a cheap key.
type realRepo struct {
	*repo.Repository
	dir string
}

func newRealRepo(t *testing.T) *realRepo {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	st, err := local.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(t.Context(), st, []byte("pw"), crypto.KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1, Salt: make([]byte, 16)})
	if err != nil {
		t.Fatal(err)
	}
	return &realRepo{r, dir}
}

// save stores blobs of type typ in one pack and returns their IDs.
func (r *realRepo) save(t *testing.T, typ blob.Type, data ...[]byte) []blob.ID {
	t.Helper()
	ctx := t.Context()
	r.StartWrites(ctx)
	p := r.NewPacker()
	var ids []blob.ID
	for _, d := range data {
		id, _, err := p.Save(ctx, typ, d)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.FinishWrites(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// tree encodes nodes as they are, without the checks of a reader, and
// stores them as a tree blob.
func (r *realRepo) tree(t *testing.T, nodes ...snapshot.Node) blob.ID {
	t.Helper()
	b, err := (&snapshot.Tree{Nodes: nodes}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	return r.save(t, blob.Tree, b)[0]
}

// packFile returns the path in the local store of the pack holding data
// blob id.
func (r *realRepo) packFile(t *testing.T, id blob.ID) string {
	t.Helper()
	loc, ok := r.Lookup(blob.Handle{Type: blob.Data, ID: id})
	if !ok {
		t.Fatalf("blob %s not indexed", id.Short())
	}
	name := loc.Pack.String()
	return filepath.Join(r.dir, "data", name[:2], name)
}

// TestRepository restores through a real repository: intact, and with its
// store damaged under one file or one tree. Authentication, ID checks and
// the tree decoder's refusal of hostile names are the repository's part of
// the contract.
func TestRepository(t *testing.T) {
	good := randomBytes(1, 300<<10)
	bad := randomBytes(2, 40<<10)
	inDir := randomBytes(3, 1000)
	for _, tc := range []struct {
		name    string
		damage  func(t *testing.T, r *realRepo, badID blob.ID)
		hostile bool   // /dir's tree holds a file named ".."
		path    string // reported, if anything is
		wantErr error
	}{
		{name: "intact"},
		{name: "flipped bit in a pack", damage: func(t *testing.T, r *realRepo, id blob.ID) {
			p := r.packFile(t, id)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[100] ^= 1
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, path: "/bad", wantErr: blob.ErrCorrupt},
		{name: "pack deleted", damage: func(t *testing.T, r *realRepo, id blob.ID) {
			if err := os.Remove(r.packFile(t, id)); err != nil {
				t.Fatal(err)
			}
		}, path: "/bad", wantErr: blob.ErrNotFound},
		{name: "pack truncated", damage: func(t *testing.T, r *realRepo, id blob.ID) {
			if err := os.Truncate(r.packFile(t, id), 1000); err != nil {
				t.Fatal(err)
			}
		}, path: "/bad", wantErr: nil},
		{name: "hostile tree", hostile: true, path: "/dir", wantErr: blob.ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRealRepo(t)
			goodIDs := r.save(t, blob.Data, good[:100<<10], good[100<<10:])
			badIDs := r.save(t, blob.Data, bad)
			inIDs := r.save(t, blob.Data, inDir)
			inner := []snapshot.Node{fileNode("f", 0o600, inIDs, inDir)}
			if tc.hostile {
				inner = append([]snapshot.Node{fileNode("..", 0o644, inIDs, inDir)}, inner...)
			}
			root := r.tree(t,
				fileNode("bad", 0o644, badIDs, bad),
				dirNode("dir", 0o700, r.tree(t, inner...)),
				fileNode("good", 0o640, goodIDs, good),
			)
			if tc.damage != nil {
				tc.damage(t, r, badIDs[0])
			}
			base := t.TempDir()
			target := filepath.Join(base, "target")
			o := run(t.Context(), t, r, root, target, nil)
			if o.err != nil {
				t.Fatalf("Restore: %v", o.err)
			}
			switch {
			case tc.path == "" && len(o.reports) > 0:
				t.Fatalf("reports %v", o.reports)
			case tc.path != "" && (len(o.reports) != 1 || o.reports[0].path != tc.path):
				t.Fatalf("reports %v, want one for %s", o.reports, tc.path)
			case tc.wantErr != nil && !errors.Is(o.reports[0].err, tc.wantErr):
				t.Errorf("report %v, want it to wrap %v", o.reports[0].err, tc.wantErr)
			}
			wantContent(t, filepath.Join(target, "good"), good)
			wantMeta(t, filepath.Join(target, "good"), 0o640, mtime)
			if tc.path != "/bad" {
				wantContent(t, filepath.Join(target, "bad"), bad)
			} else if b, err := os.ReadFile(filepath.Join(target, "bad")); err != nil || !isZero(b) {
				t.Errorf("bad: %v; want it all holes: no byte of a damaged pack is written", err)
			}
			want := []string{"/target", "/target/bad", "/target/dir", "/target/dir/f", "/target/good"}
			if tc.hostile {
				want = slices.DeleteFunc(want, func(p string) bool { return p == "/target/dir/f" })
			} else {
				wantContent(t, filepath.Join(target, "dir", "f"), inDir)
			}
			if got := listTree(t, base); !slices.Equal(got, want) {
				t.Errorf("restore left %q, want %q", got, want)
			}
		})
	}
}

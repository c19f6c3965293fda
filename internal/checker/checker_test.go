package checker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/faulty"
	"github.com/kalaja/kalaja/internal/store/local"
)

// fixture is a small repository in a local store. Each file's content is in
// a pack of its own, listed by an index file of its own, and the trees are in
// a fourth pack and index file, so damage can be aimed at one of them:
//
//	/a      two chunks, pack "a"
//	/c      one chunk, pack "c", as long as /dir/b's so the packs are too
//	/dir/b  one chunk, pack "b"
type fixture struct {
	t     *testing.T
	r     *repo.Repository // the writer, whose index is loaded
	dir   string           // the local store's directory
	snaps []blob.ID        // snapshots, oldest first
	packs map[string]blob.ID
	index map[string]blob.ID // index file of each pack
	blobs map[string][]blob.ID
}

func random(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 3))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	return b
}

func newFixture(t *testing.T) *fixture {
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
	fx := &fixture{t: t, r: r, dir: dir, packs: map[string]blob.ID{}, index: map[string]blob.ID{}, blobs: map[string][]blob.ID{}}
	fx.save("a", blob.Data, random(1, 30<<10), random(2, 20<<10))
	fx.save("b", blob.Data, random(3, 10<<10))
	fx.save("c", blob.Data, random(4, 10<<10))
	sub := fx.tree(file("b", fx.blobs["b"]))
	fx.snapshot(fx.tree(file("a", fx.blobs["a"]), file("c", fx.blobs["c"]), dirNode("dir", sub)))
	return fx
}

// save stores blobs in one pack listed by one index file, both called name.
func (fx *fixture) save(name string, typ blob.Type, data ...[]byte) []blob.ID {
	t, r, ctx := fx.t, fx.r, fx.t.Context()
	t.Helper()
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
	for _, o := range r.Written() {
		switch o.Type {
		case store.Packs:
			fx.packs[name] = o.ID
		case store.Index:
			fx.index[name] = o.ID
		}
	}
	fx.blobs[name] = append(fx.blobs[name], ids...)
	return ids
}

// tree stores a tree of nodes, in the pack and index file called "trees"
// (the latest of them, if there are several).
func (fx *fixture) tree(nodes ...snapshot.Node) blob.ID {
	fx.t.Helper()
	t := snapshot.Tree{Nodes: nodes}
	t.Sort()
	b, err := t.Encode()
	if err != nil {
		fx.t.Fatal(err)
	}
	return fx.save("trees", blob.Tree, b)[0]
}

func (fx *fixture) snapshot(tree blob.ID) blob.ID {
	fx.t.Helper()
	id, err := fx.r.SaveSnapshot(fx.t.Context(), &snapshot.Snapshot{Time: time.Unix(1_700_000_000+int64(len(fx.snaps)), 0), Tree: tree, Paths: []string{"/"}, Hostname: "h"})
	if err != nil {
		fx.t.Fatal(err)
	}
	fx.snaps = append(fx.snaps, id)
	return id
}

func file(name string, content []blob.ID) snapshot.Node {
	return snapshot.Node{Name: snapshot.Name(name), Kind: snapshot.File, Mode: 0o644, Content: content}
}

func dirNode(name string, tree blob.ID) snapshot.Node {
	return snapshot.Node{Name: snapshot.Name(name), Kind: snapshot.Dir, Mode: 0o755, Subtree: &tree}
}

func (fx *fixture) path(t store.FileType, id blob.ID) string {
	name := id.String()
	if t == store.Packs {
		return filepath.Join(fx.dir, string(t), name[:2], name)
	}
	return filepath.Join(fx.dir, string(t), name)
}

// edit replaces the bytes of a stored object with what change returns.
func (fx *fixture) edit(t store.FileType, id blob.ID, change func([]byte) []byte) {
	fx.t.Helper()
	p := fx.path(t, id)
	b, err := os.ReadFile(p)
	if err != nil {
		fx.t.Fatal(err)
	}
	if err := os.WriteFile(p, change(b), 0o600); err != nil {
		fx.t.Fatal(err)
	}
}

func (fx *fixture) remove(t store.FileType, id blob.ID) {
	fx.t.Helper()
	if err := os.Remove(fx.path(t, id)); err != nil {
		fx.t.Fatal(err)
	}
}

// check opens the repository afresh, as kalaja check does, and checks it.
func (fx *fixture) check(readData bool) *Report {
	fx.t.Helper()
	ctx := fx.t.Context()
	st, err := local.Open(fx.dir)
	if err != nil {
		fx.t.Fatal(err)
	}
	r, err := repo.Open(ctx, st, []byte("pw"))
	if err != nil {
		fx.t.Fatal(err)
	}
	rep, err := Check(ctx, r, Options{ReadData: readData})
	if err != nil {
		fx.t.Fatalf("Check: %v", err)
	}
	return rep
}

// want is the exact content of a report: every error and note matches one
// pattern (anchored), every damaged path is listed.
type want struct {
	errors, notes []string
	damaged       []damage
	lost          int // snapshots of fixture.snaps that cannot be read
}

// tampering are the cases of TestDamage whose report must say Tampered:
// objects changed, missing or planted after they were written.
var tampering = map[string]bool{
	"missing pack": true, "missing pack, read data": true, "pack of wrong size": true,
	"pack cut into its blobs, read data": true, "pack header not matching the index": true,
	"corrupt blob, read data": true, "tree pack missing": true, "snapshot that does not decode": true,
	"snapshot altered": true, "orphan pack under another pack's name, read data": true,
	"unreadable index file": true, "index file that does not decrypt": true,
}

// damage is a Damage with its reason as a pattern.
type damage struct {
	snap         blob.ID
	path         string
	blob         blob.ID
	reasonRegexp string
}

// q quotes the short form of id for a pattern.
func q(id blob.ID) string { return regexp.QuoteMeta(id.Short()) }

func matchAll(t *testing.T, what string, got, patterns []string) {
	t.Helper()
	used := make([]bool, len(got))
	for _, p := range patterns {
		re := regexp.MustCompile("^(?:" + p + ")$")
		i := slices.IndexFunc(got, func(s string) bool { return re.MatchString(s) })
		for i >= 0 && used[i] {
			j := slices.IndexFunc(got[i+1:], func(s string) bool { return re.MatchString(s) })
			if j < 0 {
				i = -1
				break
			}
			i += 1 + j
		}
		if i < 0 {
			t.Errorf("no %s matches %q; got:\n\t%s", what, p, strings.Join(got, "\n\t"))
			continue
		}
		used[i] = true
	}
	for i, u := range used {
		if !u {
			t.Errorf("unexpected %s %q", what, got[i])
		}
	}
}

func (w want) assert(t *testing.T, fx *fixture, rep *Report) {
	t.Helper()
	matchAll(t, "error", rep.Errors, w.errors)
	matchAll(t, "note", rep.Notes, w.notes)
	if n := len(fx.snaps) - w.lost; rep.Snapshots != n {
		t.Errorf("%d snapshots checked, want %d", rep.Snapshots, n)
	}
	var got []string
	for _, d := range rep.Damaged {
		got = append(got, fmt.Sprintf("%s %s %s: %s", d.Snapshot, d.Path, d.Blob, d.Reason))
	}
	var patterns []string
	for _, d := range w.damaged {
		patterns = append(patterns, fmt.Sprintf("%s %s %s: %s", d.snap, regexp.QuoteMeta(d.path), d.blob, d.reasonRegexp))
	}
	matchAll(t, "damaged path", got, patterns)
	if ok := len(w.errors) == 0 && len(w.damaged) == 0; rep.OK() != ok {
		t.Errorf("OK() = %v, want %v", rep.OK(), ok)
	}
}

const (
	notIndexed   = `not in any index`
	orphanNote   = `pack %s is not in any index \(left by an interrupted backup, or its index file is lost\); the next backup indexes it again`
	wrongSize    = `pack %s has \d+ bytes, the index says \d+ \(truncated or altered\)`
	headerDiffer = `pack %s: header does not match the index`
)

// TestDamage checks repositories damaged in one way each, with and without
// ReadData, and requires the exact report: which errors, which notes, and
// which snapshot paths are lost for which blob and why.
func TestDamage(t *testing.T) {
	for _, tc := range []struct {
		name     string
		readData bool
		damage   func(fx *fixture) want
	}{
		{"intact", false, func(*fixture) want { return want{} }},
		{"intact, read data", true, func(*fixture) want { return want{} }},
		{"missing pack", false, func(fx *fixture) want {
			fx.remove(store.Packs, fx.packs["b"])
			why := fmt.Sprintf(`pack %s is missing`, q(fx.packs["b"]))
			return want{errors: []string{why}, damaged: []damage{{fx.snaps[0], "/dir/b", fx.blobs["b"][0], why}}}
		}},
		{"missing pack, read data", true, func(fx *fixture) want {
			fx.remove(store.Packs, fx.packs["b"])
			why := fmt.Sprintf(`pack %s is missing`, q(fx.packs["b"]))
			return want{errors: []string{why}, damaged: []damage{{fx.snaps[0], "/dir/b", fx.blobs["b"][0], why}}}
		}},
		{"pack of wrong size", false, func(fx *fixture) want {
			fx.edit(store.Packs, fx.packs["a"], func(b []byte) []byte { return b[:len(b)-1] })
			why := fmt.Sprintf(wrongSize, q(fx.packs["a"]))
			return want{errors: []string{why}, damaged: []damage{{fx.snaps[0], "/a", fx.blobs["a"][0], why}}}
		}},
		{"pack cut into its blobs, read data", true, func(fx *fixture) want {
			// The second blob of /a is cut: only it is lost.
			fx.edit(store.Packs, fx.packs["a"], func(b []byte) []byte { return b[:40<<10] })
			p := q(fx.packs["a"])
			return want{
				errors: []string{fmt.Sprintf(wrongSize, p), fmt.Sprintf(`pack %s: content does not match its name`, p),
					fmt.Sprintf(`pack %s: header: .*`, p), fmt.Sprintf(`pack %s: 1 of 2 blobs are damaged`, p)},
				damaged: []damage{{fx.snaps[0], "/a", fx.blobs["a"][1], `beyond the end of its pack`}},
			}
		}},
		{"pack header not matching the index", false, func(fx *fixture) want {
			// Pack c, of the same size, stored under pack b's name.
			fx.edit(store.Packs, fx.packs["b"], func([]byte) []byte {
				b, err := os.ReadFile(fx.path(store.Packs, fx.packs["c"]))
				if err != nil {
					fx.t.Fatal(err)
				}
				return b
			})
			why := fmt.Sprintf(headerDiffer, q(fx.packs["b"]))
			return want{errors: []string{why}, damaged: []damage{{fx.snaps[0], "/dir/b", fx.blobs["b"][0], why}}}
		}},
		{"corrupt blob, read data", true, func(fx *fixture) want {
			fx.edit(store.Packs, fx.packs["a"], func(b []byte) []byte { b[100] ^= 1; return b })
			p := q(fx.packs["a"])
			return want{
				errors:  []string{fmt.Sprintf(`pack %s: content does not match its name`, p), fmt.Sprintf(`pack %s: 1 of 2 blobs are damaged`, p)},
				damaged: []damage{{fx.snaps[0], "/a", fx.blobs["a"][0], `pack ` + p + `: blob .*authentication failed.*`}},
			}
		}},
		{"corrupt blob, found only by reading data", false, func(fx *fixture) want {
			fx.edit(store.Packs, fx.packs["a"], func(b []byte) []byte { b[100] ^= 1; return b })
			return want{}
		}},
		{"missing tree blob", false, func(fx *fixture) want {
			lost := blob.Hash([]byte("a tree never stored"))
			s := fx.snapshot(fx.tree(file("a", fx.blobs["a"]), dirNode("lost", lost)))
			why := fmt.Sprintf(`tree %s: %s`, q(lost), notIndexed)
			return want{errors: []string{why}, damaged: []damage{{s, "/lost", lost, why}}}
		}},
		{"tree pack missing", false, func(fx *fixture) want {
			fx.remove(store.Packs, fx.packs["trees"])
			why := fmt.Sprintf(`pack %s is missing`, q(fx.packs["trees"]))
			// The root tree is in the last tree pack; the other tree packs
			// are intact but unreachable.
			return want{errors: []string{why, `tree ` + q(fx.blobs["trees"][1]) + `: ` + why},
				damaged: []damage{{fx.snaps[0], "/", fx.blobs["trees"][1], `tree ` + q(fx.blobs["trees"][1]) + `: ` + why}}}
		}},
		{"missing data blob", false, func(fx *fixture) want {
			lost := blob.Hash([]byte("a chunk never stored"))
			s := fx.snapshot(fx.tree(file("a", fx.blobs["a"]), dirNode("d", fx.tree(file("f", []blob.ID{fx.blobs["c"][0], lost})))))
			return want{damaged: []damage{{s, "/d/f", lost, notIndexed}}}
		}},
		{"snapshot that does not decode", false, func(fx *fixture) want {
			sealed, err := fx.r.Keys().SealObject("snapshot", []byte(`{"version": 1, "tree": "not an ID"}`))
			if err != nil {
				fx.t.Fatal(err)
			}
			id := blob.Hash(sealed)
			if err := os.WriteFile(fx.path(store.Snapshots, id), sealed, 0o600); err != nil {
				fx.t.Fatal(err)
			}
			return want{errors: []string{fmt.Sprintf(`snapshot %s: snapshot %s: decode snapshot: .*: corrupt.*`, q(id), q(id))}}
		}},
		{"snapshot altered", false, func(fx *fixture) want {
			fx.edit(store.Snapshots, fx.snaps[0], func(b []byte) []byte { b[len(b)-1] ^= 1; return b })
			return want{lost: 1, errors: []string{fmt.Sprintf(`snapshot %s: snapshots/%s: content does not match its name: .*`, q(fx.snaps[0]), fx.snaps[0])}}
		}},
		{"orphan pack", false, func(fx *fixture) want {
			fx.save("orphan", blob.Data, random(5, 1000))
			fx.remove(store.Index, fx.index["orphan"])
			return want{notes: []string{fmt.Sprintf(orphanNote, q(fx.packs["orphan"]))}}
		}},
		{"orphan pack, read data", true, func(fx *fixture) want {
			fx.save("orphan", blob.Data, random(5, 1000))
			fx.remove(store.Index, fx.index["orphan"])
			return want{notes: []string{fmt.Sprintf(orphanNote, q(fx.packs["orphan"]))}}
		}},
		{"orphan pack under another pack's name, read data", true, func(fx *fixture) want {
			b, err := os.ReadFile(fx.path(store.Packs, fx.packs["c"]))
			if err != nil {
				fx.t.Fatal(err)
			}
			planted := blob.Hash([]byte("planted"))
			p := fx.path(store.Packs, planted)
			if err := os.WriteFile(p, b, 0o600); err != nil {
				fx.t.Fatal(err)
			}
			return want{errors: []string{fmt.Sprintf(`pack %s, which no index lists, does not hash to its name: .*`, q(planted))}}
		}},
		// A file whose name no object can have is not an object: the
		// store's listing leaves it out (docs/design.md, section 2,
		// "Names"), so it can neither damage nor hide anything.
		{"stray file in the packs folder", false, func(fx *fixture) want {
			if err := os.WriteFile(filepath.Join(fx.dir, "data", "00", "not-an-id"), []byte("x"), 0o600); err != nil {
				fx.t.Fatal(err)
			}
			return want{}
		}},
		{"unreadable index file", false, func(fx *fixture) want {
			fx.edit(store.Index, fx.index["b"], func(b []byte) []byte { b[len(b)/2] ^= 1; return b })
			return want{
				errors:  []string{fmt.Sprintf(`index %s: index/%s: content does not match its name: corrupt`, q(fx.index["b"]), fx.index["b"])},
				notes:   []string{fmt.Sprintf(orphanNote, q(fx.packs["b"]))},
				damaged: []damage{{fx.snaps[0], "/dir/b", fx.blobs["b"][0], notIndexed}},
			}
		}},
		{"index file that does not decrypt", false, func(fx *fixture) want {
			// Renamed to its new hash, so that only decryption fails.
			p := fx.path(store.Index, fx.index["b"])
			b, err := os.ReadFile(p)
			if err != nil {
				fx.t.Fatal(err)
			}
			b[len(b)/2] ^= 1
			renamed := blob.Hash(b)
			if err := os.WriteFile(fx.path(store.Index, renamed), b, 0o600); err != nil {
				fx.t.Fatal(err)
			}
			fx.remove(store.Index, fx.index["b"])
			return want{
				errors:  []string{fmt.Sprintf(`index %s: .*`, q(renamed))},
				notes:   []string{fmt.Sprintf(orphanNote, q(fx.packs["b"]))},
				damaged: []damage{{fx.snaps[0], "/dir/b", fx.blobs["b"][0], notIndexed}},
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t)
			w := tc.damage(fx)
			rep := fx.check(tc.readData)
			w.assert(t, fx, rep)
			if rep.Tampered != tampering[tc.name] {
				t.Errorf("Tampered = %v, want %v", rep.Tampered, tampering[tc.name])
			}
			if t.Failed() {
				t.Logf("report: %+v", rep)
			}
		})
	}
}

// TestCheckFails: a store that cannot be listed, or a context that ends,
// fails the check itself; nothing is reported about the repository.
func TestCheckFails(t *testing.T) {
	fx := newFixture(t)
	for _, tc := range []struct {
		name   string
		fault  *faulty.Fault
		cancel bool
		want   error
	}{
		{name: "packs cannot be listed", fault: &faulty.Fault{Op: faulty.OpList, Type: store.Packs}, want: faulty.ErrInjected},
		{name: "snapshots cannot be listed", fault: &faulty.Fault{Op: faulty.OpList, Type: store.Snapshots}, want: faulty.ErrInjected},
		{name: "index cannot be listed", fault: &faulty.Fault{Op: faulty.OpList, Type: store.Index}, want: faulty.ErrInjected},
		{name: "cancelled", cancel: true, want: context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inner, err := local.Open(fx.dir)
			if err != nil {
				t.Fatal(err)
			}
			var st store.Store = inner
			if tc.fault != nil {
				st = faulty.New(inner, *tc.fault)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			r, err := repo.Open(ctx, st, []byte("pw"))
			if err != nil {
				t.Fatal(err)
			}
			if tc.cancel {
				cancel()
			}
			rep, err := Check(ctx, r, Options{ReadData: true})
			if !errors.Is(err, tc.want) || rep != nil {
				t.Errorf("Check: %+v, %v; want no report and %v", rep, err, tc.want)
			}
		})
	}
}

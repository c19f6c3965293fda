package prune

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/kalaja/kalaja/internal/archiver"
	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/checker"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/local"
)

var kdf = crypto.KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1, Salt: make([]byte, 16)}

// fixture is a repository with two snapshots: old holds a big file of its
// own and a small one it shares with new, so that once old is forgotten its
// pack is mostly unused.
type fixture struct {
	st       *local.Local
	old, new *snapshot.Snapshot
	shared   string
	big      string // old's own file
	oldDir   string
	newDir   string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := t.Context()
	st, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(ctx, st, []byte("pw"), kdf)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, shared: randomBytes(200 << 10), big: randomBytes(3 << 20)}
	oldDir, newDir := t.TempDir(), t.TempDir()
	write(t, oldDir, "big", f.big)
	write(t, oldDir, "shared", f.shared)
	write(t, newDir, "shared", f.shared)
	write(t, newDir, "own", randomBytes(1<<20))
	f.oldDir, f.newDir = oldDir, newDir
	// One blob worker, so that each backup stores exactly one pack of
	// content and one of trees.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	if f.old, err = archiver.Backup(ctx, r, []string{oldDir}, archiver.Options{Hostname: "h"}); err != nil {
		t.Fatal(err)
	}
	if f.new, err = archiver.Backup(ctx, r, []string{newDir}, archiver.Options{Hostname: "h"}); err != nil {
		t.Fatal(err)
	}
	if err := st.Remove(ctx, store.Handle{Type: store.Snapshots, Name: f.old.ID.String()}); err != nil {
		t.Fatal(err)
	}
	return f
}

func randomBytes(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return string(b)
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// open opens the fixture's repository afresh, as a new process would.
func (f *fixture) open(t *testing.T) *repo.Repository {
	t.Helper()
	r, err := repo.Open(t.Context(), f.st, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *fixture) names(t *testing.T, typ store.FileType) []string {
	t.Helper()
	var out []string
	if err := f.st.List(t.Context(), typ, func(fi store.FileInfo) error {
		out = append(out, fi.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// checkRepository runs a full check and loads every file of new.
func (f *fixture) checkRepository(t *testing.T) {
	t.Helper()
	rep, err := checker.Check(t.Context(), f.open(t), checker.Options{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Snapshots != 1 {
		t.Fatalf("check after prune: %d snapshots, errors %q, damage %+v", rep.Snapshots, rep.Errors, rep.Damaged)
	}
	for _, n := range rep.Notes {
		t.Logf("check: %s", n)
	}
}

// removed is a Ledger that keeps the removal records Execute appends, and
// stores the administrator's requests in st if set.
type removed struct {
	hs []store.Handle
	st store.Saver
	// before, if set, runs before the nth request (from 0) is saved.
	before func(n int)
	n      int
}

func (l *removed) Append(_ context.Context, recs []ledger.Record) error {
	for _, rec := range recs {
		if t, removal, ok := ledger.TypeOf(rec.Kind); ok && removal {
			if rec.Auth.IsZero() {
				return fmt.Errorf("removal record of %s bound to no request", rec.ID.Short())
			}
			l.hs = append(l.hs, store.Handle{Type: t, Name: rec.ID.String()})
		}
	}
	return nil
}

func (l *removed) SaveRequest(ctx context.Context, signed []byte) (blob.ID, error) {
	if l.before != nil {
		l.before(l.n)
	}
	l.n++
	id := blob.Hash(signed)
	if l.st != nil {
		return id, l.st.Save(ctx, store.Handle{Type: store.LedgerRemovals, Name: id.String()}, signed)
	}
	return id, nil
}

// direct is the Remover of f's store, signing with a new administrator's
// key.
func (f *fixture) direct(t *testing.T) Remover {
	t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, "kalaja-admin-test")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return Direct(f.st, s, blob.Hash([]byte("repository")))
}

func TestPrune(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	packsBefore, indexBefore := f.names(t, store.Packs), f.names(t, store.Index)
	r := f.open(t)
	p, err := NewPlan(ctx, r, []*snapshot.Snapshot{f.new}, Options{MaxUnused: 0.2, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	// Each backup stored a data pack and a tree pack.
	if p.Stats.Packs != 4 || p.Stats.RepackPacks != 1 || p.Stats.KeptPacks != 2 || p.Stats.DeletePacks != 1 {
		t.Fatalf("plan %+v: want the old snapshot's data pack copied, its tree pack deleted, the new one's kept", p.Stats)
	}
	if p.Stats.CopyBytes < 200<<10 || p.Stats.CopyBytes > 300<<10 || p.Stats.UnusedBytes < 3<<20 {
		t.Errorf("plan %+v: want about 200 KiB copied, over 3 MiB unused", p.Stats)
	}
	var log removed
	res, err := p.Execute(ctx, r, f.direct(t), &log, "test")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Kept) != 0 || len(res.Removed) != len(log.hs) || len(log.hs) != len(indexBefore)+2 {
		t.Fatalf("removed %v, kept %v, logged %v; want every index file and two packs removed, and logged first", res.Removed, res.Kept, log.hs)
	}
	packsAfter := f.names(t, store.Packs)
	var fresh int
	for _, name := range packsAfter {
		if !slices.Contains(packsBefore, name) {
			fresh++
		}
	}
	if len(packsAfter) != 3 || fresh != 1 {
		t.Errorf("packs %v after prune, before %v: want two kept and one new", packsAfter, packsBefore)
	}
	for _, name := range f.names(t, store.Index) {
		if slices.Contains(indexBefore, name) {
			t.Errorf("old index file %s was not removed", name)
		}
	}
	f.checkRepository(t)

	// Nothing more to do: a second plan keeps everything.
	p, err = NewPlan(ctx, f.open(t), []*snapshot.Snapshot{f.new}, Options{MaxUnused: 0.2, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if p.Stats.RepackPacks+p.Stats.DeletePacks != 0 {
		t.Errorf("second plan %+v: want nothing to copy or delete", p.Stats)
	}
}

// keepIndexes is a Remover under which index files are still retained.
type keepIndexes struct{ Remover }

func (k keepIndexes) Remove(ctx context.Context, req Request) ([]Kept, error) {
	var kept []Kept
	var rest []store.Handle
	for _, h := range req.Delete {
		if h.Type == store.Index {
			kept = append(kept, Kept{h, "retention"})
		} else {
			rest = append(rest, h)
		}
	}
	more, err := k.Remover.Remove(ctx, Request{Signed: req.Signed, Delete: rest})
	return append(kept, more...), err
}

// TestPruneRetained: a pack an index file that could not be deleted still
// lists is not deleted either, and the repository stays whole.
func TestPruneRetained(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	packsBefore := f.names(t, store.Packs)
	r := f.open(t)
	p, err := NewPlan(ctx, r, []*snapshot.Snapshot{f.new}, Options{MaxUnused: 0.2, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	var log removed
	res, err := p.Execute(ctx, r, keepIndexes{f.direct(t)}, &log, "test")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 0 {
		t.Errorf("removed %v while every old index file was retained", res.Removed)
	}
	for _, name := range packsBefore {
		if !slices.Contains(f.names(t, store.Packs), name) {
			t.Errorf("pack %s was deleted though a retained index file lists it", name)
		}
	}
	f.checkRepository(t)

	// The next prune finds the copy and the retained source: it deletes
	// the source, and does not copy again.
	p, err = NewPlan(ctx, f.open(t), []*snapshot.Snapshot{f.new}, Options{MaxUnused: 0.2, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if p.Stats.RepackPacks != 0 || p.Stats.DeletePacks != 2 {
		t.Errorf("plan after a retained prune %+v: want the two old packs deleted, nothing copied", p.Stats)
	}
}

// TestPruneGrace: recent packs and index files are left alone.
func TestPruneGrace(t *testing.T) {
	f := newFixture(t)
	p, err := NewPlan(t.Context(), f.open(t), []*snapshot.Snapshot{f.new}, Options{MaxUnused: 0.2, Grace: time.Hour, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if p.Stats.RecentPacks != 4 || len(p.Repack)+len(p.Delete)+len(p.Indexes) != 0 {
		t.Errorf("plan %+v: want everything recent and kept", p.Stats)
	}
}

// TestPruneRefusesDamage: a snapshot whose tree is gone stops the plan
// before anything is written.
func TestPruneRefusesDamage(t *testing.T) {
	f := newFixture(t)
	broken := *f.new
	broken.Tree = blob.Hash([]byte("no such tree"))
	_, err := NewPlan(t.Context(), f.open(t), []*snapshot.Snapshot{&broken}, Options{Now: time.Now()})
	if !errors.Is(err, blob.ErrNotFound) || !bytes.Contains([]byte(err.Error()), []byte("kalaja check")) {
		t.Errorf("plan over a missing tree: %v", err)
	}
}

// hooked is a store that runs hook once, just before the first object of
// type at is saved.
type hooked struct {
	*local.Local
	at   store.FileType
	hook func()
}

func (h *hooked) Save(ctx context.Context, hd store.Handle, data []byte) error {
	if hd.Type == h.at && h.hook != nil {
		hook := h.hook
		h.hook = nil
		hook()
	}
	return h.Local.Save(ctx, hd, data)
}

// TestPruneDuringBackup is the fault of a backup that runs longer than
// prune's grace period: it deduplicates the big file against the pack of
// a forgotten snapshot, and prune, run meanwhile with a grace period the
// backup has outlasted (0 here: no sleeping), deletes that pack before the
// backup stores its snapshot. The backup must not acknowledge a snapshot
// that lacks data: it either fails, or its snapshot checks whole. Prune
// runs at two points: when the backup writes its index (before its last
// look at prune's requests), and as it stores its snapshot.
func TestPruneDuringBackup(t *testing.T) {
	for _, at := range []store.FileType{store.Index, store.Snapshots} {
		t.Run(string(at), func(t *testing.T) {
			f := newFixture(t)
			ctx := t.Context()
			dir := t.TempDir()
			write(t, dir, "big", f.big)
			pruned := false
			st := &hooked{Local: f.st, at: at, hook: func() {
				log := removed{st: f.st}
				_, res, err := Run(ctx, f.open(t), &log, RunOptions{Options: Options{MaxUnused: 0.2, Now: time.Now()}, Remover: f.direct(t), Host: "admin"})
				if err != nil {
					t.Errorf("prune during the backup: %v", err)
					return
				}
				pruned = len(res.Removed) > 0
				t.Logf("prune removed %v", res.Removed)
			}}
			r, err := repo.Open(ctx, st, []byte("pw"))
			if err != nil {
				t.Fatal(err)
			}
			if err := r.LoadIndex(ctx); err != nil {
				t.Fatal(err)
			}
			sn, err := archiver.Backup(ctx, r, []string{dir}, archiver.Options{Hostname: "h"})
			if !pruned {
				t.Fatal("prune deleted nothing during the backup: the test does not test")
			}
			if err != nil {
				t.Logf("the backup failed: %v", err)
				if !errors.Is(err, repo.ErrPruned) {
					t.Errorf("backup error %v does not wrap repo.ErrPruned", err)
				}
				return
			}
			t.Logf("backup added %d blobs", sn.Summary.BlobsAdded)
			rep, err := checker.Check(ctx, f.open(t), checker.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() {
				t.Fatalf("the backup acknowledged snapshot %s, but check finds: errors %q, damage %+v", sn.ID.Short(), rep.Errors, rep.Damaged)
			}
		})
	}
}

// TestPruneDuringTrustedBackup is the same fault for a backup that takes
// unchanged files from its parent without looking their blobs up
// (archiver.Options.TrustParent): the parent is old, forgotten since
// the backup chose it, and prune deletes old's pack, which holds the
// unchanged big file, while the backup runs. Not having looked the big
// file up, the backup does not know it uses that pack: it must fail on
// the request prune stored, or store a snapshot that checks whole.
func TestPruneDuringTrustedBackup(t *testing.T) {
	for _, at := range []store.FileType{store.Index, store.Snapshots} {
		t.Run(string(at), func(t *testing.T) {
			f := newFixture(t)
			ctx := t.Context()
			// A new file, so that the backup's tree is its own, not old's.
			write(t, f.oldDir, "extra", randomBytes(4<<10))
			pruned := false
			st := &hooked{Local: f.st, at: at, hook: func() {
				_, res, err := Run(ctx, f.open(t), &removed{st: f.st}, RunOptions{Options: Options{MaxUnused: 0.2, Now: time.Now()}, Remover: f.direct(t), Host: "admin"})
				if err != nil {
					t.Errorf("prune during the backup: %v", err)
					return
				}
				pruned = slices.ContainsFunc(res.Removed, func(h store.Handle) bool { return h.Type == store.Packs })
			}}
			r, err := repo.Open(ctx, st, []byte("pw"))
			if err != nil {
				t.Fatal(err)
			}
			if err := r.LoadIndex(ctx); err != nil {
				t.Fatal(err)
			}
			sn, err := archiver.Backup(ctx, r, []string{f.oldDir}, archiver.Options{Hostname: "h", Parent: f.old, TrustParent: true})
			if !pruned {
				t.Fatal("prune deleted no pack during the backup: the test does not test")
			}
			if err != nil {
				if !errors.Is(err, repo.ErrPruned) {
					t.Errorf("backup error %v does not wrap repo.ErrPruned", err)
				}
				return
			}
			if sn.Summary.FilesUnchanged == 0 {
				t.Fatal("the backup took no file from its parent: the test does not test")
			}
			rep, err := checker.Check(ctx, f.open(t), checker.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() {
				t.Fatalf("the backup acknowledged snapshot %s, but check finds: errors %q, damage %+v", sn.ID.Short(), rep.Errors, rep.Damaged)
			}
		})
	}
}

// TestPruneAfterBackupStored is the other order of the same fault: prune
// plans, and a backup that deduplicates against a pack the plan deletes
// stores its snapshot (and, seeing no request naming that pack yet,
// succeeds) before prune deletes the index files, or between that and
// storing its request to delete packs. Prune must see the new snapshot
// before deleting, keep the packs, and keep them indexed.
func TestPruneAfterBackupStored(t *testing.T) {
	for _, at := range []int{0, 1} {
		t.Run(fmt.Sprintf("before request %d", at), func(t *testing.T) {
			f := newFixture(t)
			ctx := t.Context()
			pr := f.open(t)
			plan, err := NewPlan(ctx, pr, []*snapshot.Snapshot{f.new}, Options{MaxUnused: 0.2, Now: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			if len(plan.Repack)+len(plan.Delete) == 0 {
				t.Fatal("the plan deletes no pack: the test does not test")
			}
			dir := t.TempDir()
			write(t, dir, "big", f.big)
			backedUp := false
			// The backup reads the index before prune deletes anything.
			r := f.open(t)
			if err := r.LoadIndex(ctx); err != nil {
				t.Fatal(err)
			}
			log := removed{st: f.st, before: func(n int) {
				if n != at {
					return
				}
				if _, err := archiver.Backup(ctx, r, []string{dir}, archiver.Options{Hostname: "h"}); err != nil {
					t.Errorf("backup before prune stored its request: %v", err)
				}
				backedUp = true
			}}
			res, err := plan.Execute(ctx, pr, f.direct(t), &log, "admin")
			if err != nil {
				t.Fatal(err)
			}
			if !backedUp {
				t.Fatal("the backup did not run: the test does not test")
			}
			for _, h := range res.Removed {
				if h.Type == store.Packs {
					t.Errorf("prune deleted pack %s after a backup stored a snapshot it did not plan for", h.Name[:8])
				}
			}
			var reasons []string
			for _, k := range res.Kept {
				reasons = append(reasons, k.Reason)
			}
			t.Logf("kept: %q", reasons)
			rep, err := checker.Check(ctx, f.open(t), checker.Options{ReadData: true})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() {
				t.Fatalf("check after prune: errors %q, damage %+v", rep.Errors, rep.Damaged)
			}
		})
	}
}

package prune

import (
	"runtime"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/archiver"
	"github.com/kalaja/kalaja/internal/checker"
	"github.com/kalaja/kalaja/internal/snapshot"
)

// TestPruneDuplicates: a backup that did not read the index (as one
// running beside another) stores every blob of new again. Prune counts
// each used blob once, keeps or copies one place of it, and leaves a
// repository where both snapshots restore and no blob is stored twice.
func TestPruneDuplicates(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	again := func() *snapshot.Snapshot {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
		sn, err := archiver.Backup(ctx, f.open(t), []string{f.newDir}, archiver.Options{Hostname: "h"})
		if err != nil {
			t.Fatal(err)
		}
		return sn
	}()
	if again.Summary.BlobsAdded == 0 {
		t.Fatal("the second backup stored nothing again: the test does not test")
	}
	snaps := []*snapshot.Snapshot{f.new, again}
	r := f.open(t)
	p, err := NewPlan(ctx, r, snaps, Options{MaxUnused: 0.2, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if p.Stats.Packs != 6 || p.Stats.CopyBytes > 300<<10 || len(p.claim) == 0 {
		t.Fatalf("plan %+v, %d blobs stored twice: want six packs, at most the shared file copied", p.Stats, len(p.claim))
	}
	if _, err := p.Execute(ctx, r, f.direct(t), &removed{}, "test"); err != nil {
		t.Fatal(err)
	}
	rep, err := checker.Check(ctx, f.open(t), checker.Options{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Snapshots != 2 {
		t.Fatalf("check after prune: %d snapshots, errors %q, damage %+v", rep.Snapshots, rep.Errors, rep.Damaged)
	}
	p, err = NewPlan(ctx, f.open(t), snaps, Options{MaxUnused: 0.2, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if p.Stats.RepackPacks+p.Stats.DeletePacks != 0 || p.Stats.UnusedBytes != 0 || len(p.claim) != 0 {
		t.Errorf("second plan %+v, %d blobs stored twice: want every blob once and nothing to do", p.Stats, len(p.claim))
	}
}

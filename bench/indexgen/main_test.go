package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/kalaja/kalaja/internal/checker"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/store/local"
)

// TestGenerateChecks: a generated repository, with bait added, passes
// check without --read-data and indexes every synthetic blob, the bait's
// and the trees.
func TestGenerateChecks(t *testing.T) {
	ctx := context.Background()
	pw := []byte("indexgen test")
	o := options{dir: filepath.Join(t.TempDir(), "repo"), millions: 0.003, avg: 200 << 10, packsPerIndex: 4,
		perFile: 100, filesPerDir: 3, baitPacks: 2, workers: 2, ledgerBatch: 10}
	if err := generate(ctx, o, pw); err != nil {
		t.Fatal(err)
	}
	if err := bait(ctx, o, pw); err != nil {
		t.Fatal(err)
	}
	st, err := local.Open(o.dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, st, pw)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := checker.Check(ctx, r, checker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || len(rep.Notes) > 0 {
		t.Fatalf("check: errors %q, damaged %v, notes %q", rep.Errors, rep.Damaged, rep.Notes)
	}
	if rep.Snapshots != 2 {
		t.Errorf("%d snapshots, want 2", rep.Snapshots)
	}
	// 3,000 synthetic blobs, 2 bait packs of 64 blobs of 256 KiB, the
	// trees (30 files in 10 directories, the synthetic directory above
	// them, and the two snapshots' roots) and 2 unused hole packs of
	// random blobs, each 16 MiB of blobs of at most 375 KiB.
	want := 3000 + 2*64 + 10 + 1 + 2
	if holes := rep.Blobs - want; holes < 2*(16<<10)/375 || holes > 2*(16<<10)/25+2 {
		t.Errorf("%d blobs indexed, want %d and those of 2 hole packs", rep.Blobs, want)
	}
}

package main

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/kalaja/kalaja/internal/archiver"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store/local"
)

// TestDay2Healthy backs up a corpus, applies the day-2 mutation the peer
// benchmark uses (seed 2, and other seeds unless -short), backs up again
// and requires the second snapshot to be judged clean: a day of ordinary
// edits, additions, deletions and VM image writes is not an attack.
func TestDay2Healthy(t *testing.T) {
	seeds := []uint64{2, 3, 4, 5}
	if testing.Short() {
		seeds = seeds[:1]
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			ctx := t.Context()
			dir := filepath.Join(t.TempDir(), "src")
			if _, err := generate(dir, 48<<20, 1); err != nil {
				t.Fatal(err)
			}
			st, err := local.Create(filepath.Join(t.TempDir(), "repo"))
			if err != nil {
				t.Fatal(err)
			}
			r, err := repo.Init(ctx, st, []byte("pw"), crypto.KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1, Salt: make([]byte, 16)})
			if err != nil {
				t.Fatal(err)
			}
			first, err := archiver.Backup(ctx, r, []string{dir}, archiver.Options{Hostname: "h"})
			if err != nil {
				t.Fatal(err)
			}
			m, err := mutateTree(dir, seed)
			if err != nil {
				t.Fatal(err)
			}
			sn, err := archiver.Backup(ctx, r, []string{dir}, archiver.Options{Hostname: "h", Parent: first, Baseline: []*snapshot.Health{first.Health}})
			if err != nil {
				t.Fatal(err)
			}
			h := sn.Health
			t.Logf("day 2 (%s): %s; files %+v, damaged %d, deleted %d of %d", m, h.Verdict(), h.Stats.Files, h.Stats.Damaged, h.Stats.Files.Deleted, h.Stats.ParentFiles)
			if h.Status != snapshot.Clean || h.Stats.Files.Changed == 0 || h.Stats.Files.Added == 0 || h.Stats.Files.Deleted == 0 {
				t.Errorf("day 2 judged %s with %+v", h.Verdict(), h.Stats.Files)
			}
		})
	}
}

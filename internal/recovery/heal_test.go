package recovery

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/archiver"
	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/detect"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/repo"
)

// proves is a Prover that proves the snapshots of a repository it is
// given, all of them.
type proves struct{ r *repo.Repository }

func (p proves) ProvenSnapshots(ctx context.Context) (map[blob.ID]ledger.Proven, ledger.Checkpoint, error) {
	list, err := p.r.Snapshots(ctx)
	out := map[blob.ID]ledger.Proven{}
	for _, sn := range list {
		out[sn.ID] = ledger.Proven{}
	}
	return out, ledger.Checkpoint{}, err
}

// TestHeal: the files an alert names (written, renamed, and a canary) are
// brought back from the snapshot; what replaced them is quarantined; the
// canary and paths outside the protected folder are left alone; the rest
// of the tree is not touched.
func TestHeal(t *testing.T) {
	f := newFixture(t, generated(6, 200))
	vs := victims(t, f, 3)
	enc, renamed, untouched := filepath.Join(f.live, vs[0]), filepath.Join(f.live, vs[1]), filepath.Join(f.live, vs[2])
	orig := map[string][]byte{enc: read(t, enc), renamed: read(t, renamed)}
	writeFile(t, enc, "encrypted")
	writeFile(t, renamed+".locked", "encrypted")
	must(t, os.Remove(renamed))
	writeFile(t, untouched, "damaged, but the alert does not name it")
	canary := filepath.Join(f.live, "!kalaja-canary.docx")
	writeFile(t, canary, "canary")
	outside := filepath.Join(f.outside, "a.txt")
	a := detect.Alert{Time: time.Now(), PID: 99, Stopped: true, Files: []string{enc, canary, outside},
		Signals: []detect.Hit{{Signal: "rename_ext", Renames: []detect.Move{{From: renamed, To: renamed + ".locked"}}}}}
	h, err := Heal(t.Context(), f.r, proves{f.r}, a, HealOptions{Host: "h", Roots: []string{f.live}, Skip: []string{canary}, Quarantine: f.q})
	if err != nil {
		t.Fatalf("Heal: %v (%+v)", err, h)
	}
	if h.Healed.Snapshot != f.sn.ID.String() || h.Healed.Paths != 3 || h.Healed.Restored != 2 || h.Healed.Quarantined != 2 || h.Healed.Errors != 0 {
		t.Fatalf("healed %+v; want 3 paths, 2 restored, 2 quarantined", h.Healed)
	}
	for p, b := range orig {
		wantFile(t, p, b)
	}
	wantFile(t, filepath.Join(f.q, renamed+".locked"), []byte("encrypted"))
	wantFile(t, untouched, []byte("damaged, but the alert does not name it"))
	wantFile(t, canary, []byte("canary"))
	f.wantOutsideIntact(t)
	// An alert that names nothing under the folder heals nothing.
	if h, err := Heal(t.Context(), f.r, proves{f.r}, detect.Alert{Time: time.Now(), Files: []string{outside, canary}},
		HealOptions{Host: "h", Roots: []string{f.live}, Skip: []string{canary}, Quarantine: f.q}); err != nil || h.Healed.Paths != 0 {
		t.Errorf("Heal of an alert outside the folder = %+v, %v; want nothing healed, no error", h, err)
	}
}

// TestHealFromLaterSnapshot: a watcher opens the repository when it
// starts; backups that run later (other processes) add snapshots whose
// trees its index does not hold. Healing must use them: the newest clean
// snapshot is the one that holds a file written after the watcher
// started.
func TestHealFromLaterSnapshot(t *testing.T) {
	f := newFixture(t, generated(7, 50))
	w, err := repo.Open(t.Context(), f.r.Store(), []byte("pw"))
	must(t, err)
	must(t, w.LoadIndex(t.Context()))
	late := filepath.Join(f.live, "written-after-the-watcher-started.txt")
	writeFile(t, late, "a report written today")
	sn, err := archiver.Backup(t.Context(), f.r, []string{f.live}, archiver.Options{Hostname: "h", Parent: f.sn})
	must(t, err)
	writeFile(t, late, "encrypted")
	a := detect.Alert{Time: time.Now(), PID: 99, Stopped: true, Files: []string{late}}
	h, err := Heal(t.Context(), w, proves{w}, a, HealOptions{Host: "h", Roots: []string{f.live}, Quarantine: f.q})
	if err != nil {
		t.Fatalf("Heal with the watcher's repository: %v (%+v)", err, h)
	}
	if h.Healed.Snapshot != sn.ID.String() || h.Healed.Restored != 1 {
		t.Fatalf("healed %+v; want 1 file restored from the later snapshot %s", h.Healed, sn.ID)
	}
	wantFile(t, late, []byte("a report written today"))
}

package main

import (
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/store/local"
)

// vaultLog opens e's ledger as the vault does: the public key, no
// password-protected signing key.
func vaultLog(t *testing.T, e *testEnv) *ledger.Log {
	t.Helper()
	st, err := local.Open(e.repo)
	must(t, err)
	r, err := repo.Open(t.Context(), st, []byte("test password")) // only for the repository ID
	must(t, err)
	vkey, err := ledger.PublishedKey(t.Context(), st)
	must(t, err)
	lg, err := ledger.OpenReadOnly(st, r.Config().ID, vkey)
	must(t, err)
	return lg
}

// TestLedgerVaultEvents: an alert the vault records in the ledger
// unsigned is listed by ledger show and export, covered by verify once the
// next backup signs it, marks the snapshots after it suspect on this host
// (whose alert log knows nothing of it), and recover resolves it in the
// ledger too.
func TestLedgerVaultEvents(t *testing.T) {
	e := newEnv(t)
	alerts := filepath.Join(t.TempDir(), "alerts.jsonl")
	e.vars = append(e.vars, "KALAJA_ALERT_LOG="+alerts)
	e.must("init")
	src := filepath.Join(t.TempDir(), "src")
	must(t, os.Mkdir(src, 0o755))
	must(t, os.WriteFile(filepath.Join(src, "minutes.txt"), []byte("the council met\n"), 0o644))
	before := e.backup(src)

	self, _ := os.Hostname()
	v := vaultLog(t, e)
	kept := []byte(`{"time":"2026-12-06T22:00:00Z","pid":4242,"process":"locker"}`)
	vaultAlert := ledger.Record{Kind: ledger.KindAlert, ID: sha256.Sum256(kept), Size: int64(len(kept)), Time: time.Now(), Host: self}
	other := ledger.Record{Kind: ledger.KindSilent, ID: blob.Hash([]byte("silent")), Size: 40, Time: time.Now(), Host: "web-02"}
	if _, err := v.AppendUnsigned(t.Context(), []ledger.Record{vaultAlert, other}); err != nil {
		t.Fatal(err)
	}

	show := e.must("ledger", "show").stdout
	for _, want := range []string{"alert", "silent", "web-02", vaultAlert.ID.Short(), self} {
		if !strings.Contains(show, want) {
			t.Errorf("ledger show lacks %q:\n%s", want, show)
		}
	}
	if strings.Contains(show, " pack ") {
		t.Errorf("ledger show lists packs without --all:\n%s", show)
	}
	rep, code := verifyJSON(t, e)
	if code != 0 || rep.SignedN != rep.Records-2 {
		t.Fatalf("verify before the next backup: exit %d, %+v; want the 2 vault records unsigned", code, rep)
	}

	must(t, os.WriteFile(filepath.Join(src, "agenda.txt"), []byte("next meeting\n"), 0o644))
	after := e.backup(src)
	rep, code = verifyJSON(t, e)
	if code != 0 || rep.SignedN != rep.Records || len(rep.Notes) != 0 {
		t.Fatalf("verify after the backup: exit %d, %+v; want every record signed", code, rep)
	}
	var ex ledger.Export
	must(t, json.Unmarshal([]byte(e.must("ledger", "export").stdout), &ex))
	kinds := map[string]int{}
	for _, er := range ex.Records {
		r, err := ledger.ParseRecord([]byte(er.Record))
		must(t, err)
		kinds[r.Kind]++
	}
	if kinds[ledger.KindAlert] != 1 || kinds[ledger.KindSilent] != 1 || kinds[ledger.KindSnapshot] != 2 || kinds[ledger.KindPack] != 0 {
		t.Errorf("ledger export holds %v; want 2 snapshots, the alert and the silence", kinds)
	}

	health := func() map[string]string {
		var snaps []struct {
			ID     string `json:"id"`
			Health struct {
				Status string `json:"status"`
			} `json:"health"`
		}
		must(t, json.Unmarshal([]byte(e.must("snapshots", "--json").stdout), &snaps))
		out := map[string]string{}
		for _, s := range snaps {
			out[s.ID] = s.Health.Status
		}
		return out
	}
	if h := health(); h[before] != "clean" || h[after] != "suspect" {
		t.Fatalf("snapshots after the vault's alert: %v; want %s clean, %s suspect", h, before[:8], after[:8])
	}

	var res recoverResult
	r := e.must("recover", "--json", "--in-place", "--quarantine", filepath.Join(t.TempDir(), "q"), src)
	must(t, json.Unmarshal([]byte(r.stdout), &res))
	if res.Choice.Snapshot != before || !strings.Contains(res.Choice.IncidentWhy, "the vault received") {
		t.Fatalf("recover chose %+v; want %s, the incident at the vault's alert", res.Choice, before)
	}
	line, err := os.ReadFile(alerts)
	must(t, err)
	line = []byte(strings.TrimSpace(string(line)))
	var resolved []ledger.Record
	must(t, json.Unmarshal([]byte(e.must("ledger", "show", "--json").stdout), &resolved))
	n := 0
	for _, rec := range resolved {
		if rec.Kind == ledger.KindResolved {
			n++
			if rec.Host != self || rec.ID != sha256.Sum256(line) || rec.Size != int64(len(line)) {
				t.Errorf("resolved record %+v does not name the alert log's line %s", rec, line)
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d resolved records in the ledger, want 1", n)
	}
	// The ledger's resolution alone ends the incident: without the alert
	// log, a backup now is clean.
	must(t, os.Remove(alerts))
	next := e.backup(src)
	if h := health(); h[next] != "clean" || h[after] != "suspect" {
		t.Fatalf("snapshots after recover: %v; want %s clean, %s suspect", h, next[:8], after[:8])
	}
}

package backup

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestMarkRun checks when a backup lists the store's packs for orphans:
// without a cache always; with one, on first use, after an interrupted
// backup (a mark nobody holds), while another backup runs (a held mark:
// its packs may be reused before it lists them), and a day after the last
// listing; not right after a listing.
func TestMarkRun(t *testing.T) {
	now := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) // dir: the repository's cache
		scan  bool
	}{
		{"first use", func(*testing.T, string) {}, true},
		{"just listed", func(t *testing.T, dir string) { listed(t, dir, now.Add(-time.Hour)) }, false},
		{"listed a day ago", func(t *testing.T, dir string) { listed(t, dir, now.Add(-orphanScanEvery)) }, true},
		{"listed in the future", func(t *testing.T, dir string) { listed(t, dir, now.Add(time.Hour)) }, true},
		{"interrupted backup", func(t *testing.T, dir string) {
			listed(t, dir, now.Add(-time.Hour))
			m, _, err := markRun(dir, now)
			if err != nil {
				t.Fatal(err)
			}
			m.end(false) // killed: the mark stays, unheld
		}, true},
		{"finished backup", func(t *testing.T, dir string) {
			listed(t, dir, now.Add(-time.Hour))
			m, _, err := markRun(dir, now)
			if err != nil {
				t.Fatal(err)
			}
			m.end(true)
		}, false},
		{"backup running", func(t *testing.T, dir string) {
			listed(t, dir, now.Add(-time.Hour))
			m, _, err := markRun(dir, now)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m.end(true) })
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			m, scan, err := markRun(dir, now)
			if err != nil {
				t.Fatal(err)
			}
			if scan != tt.scan {
				t.Fatalf("scan = %v, want %v", scan, tt.scan)
			}
			if err := m.scanned(now); err != nil {
				t.Fatal(err)
			}
			m.end(true)
			// After a listing, only the marks of running backups remain,
			// and a listing is due again only because of them.
			marks, _ := filepath.Glob(filepath.Join(dir, "backups", "run-*"))
			for _, p := range marks {
				if held, err := isHeld(p); err != nil || !held {
					t.Errorf("mark %s left after the listing (held %v, %v)", filepath.Base(p), held, err)
				}
			}
			again, due, err := markRun(dir, now)
			if err != nil {
				t.Fatal(err)
			}
			again.end(true)
			if due != (len(marks) > 0) {
				t.Errorf("right after a listing, with %d backups running: due %v", len(marks), due)
			}
		})
	}
	t.Run("no cache", func(t *testing.T) {
		m, scan, err := markRun("", now)
		if err != nil || !scan {
			t.Fatalf("scan = %v, %v; want true", scan, err)
		}
		m.end(true)
	})
	t.Run("unusable cache", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(dir, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, scan, err := markRun(dir, now); err == nil || !scan {
			t.Fatalf("scan = %v, err %v; want true and an error", scan, err)
		}
	})
}

// listed records a listing of the packs at when, as markRun and scanned do.
func listed(t *testing.T, dir string, when time.Time) {
	t.Helper()
	m, _, err := markRun(dir, when)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.scanned(when); err != nil {
		t.Fatal(err)
	}
	m.end(true)
}

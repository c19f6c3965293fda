package dashboard

import (
	"time"

	"github.com/kalaja/kalaja/internal/fleet"
)

// now is the clock of the tests' fleets.
var now = time.Date(2026, 12, 6, 22, 0, 0, 0, time.UTC)

// fakeFleet is a Fleet of fixed values.
type fakeFleet struct {
	hosts   []fleet.Host
	alerts  []fleet.Alert // newest first
	storage fleet.Storage
	ledger  fleet.LedgerStatus
}

func (f *fakeFleet) Hosts() []fleet.Host { return f.hosts }

func (f *fakeFleet) Alerts(since time.Time, n int) []fleet.Alert {
	var out []fleet.Alert
	for _, a := range f.alerts {
		if !a.Received.Before(since) && len(out) < n {
			out = append(out, a)
		}
	}
	return out
}

func (f *fakeFleet) Storage() fleet.Storage     { return f.storage }
func (f *fakeFleet) Ledger() fleet.LedgerStatus { return f.ledger }

func snap(id string, age time.Duration, size int64, health string, reasons ...string) fleet.SnapshotInfo {
	return fleet.SnapshotInfo{ID: id, Time: now.Add(-age), Size: size, Health: health, Reasons: reasons}
}

// attackedFleet holds the three hosts the acceptance names, an
// attacked host (alerts, a suspect snapshot), a silent host and an
// overdue host, and a healthy one; process and file names are hostile.
func attackedFleet() *fakeFleet {
	clean := []fleet.SnapshotInfo{snap("a1b2c3d4e5f6a7b8c9d0", 2*time.Hour, 8<<30, "clean"),
		snap("0f9e8d7c6b5a49382716", 26*time.Hour, 8<<30, "clean")}
	attacked := []fleet.SnapshotInfo{snap("5ee5ee5ee5ee5ee5ee5e", 40*time.Minute, 3<<30, "suspect", "entropy", "rename-burst"),
		snap("c1ea4c1ea4c1ea4c1ea4", 5*time.Hour, 3<<30, "clean")}
	silentSnaps := []fleet.SnapshotInfo{snap("51e47051e47051e47051", 3*time.Hour, 12<<30, "clean")}
	overdue := []fleet.SnapshotInfo{snap("01d01d01d01d01d01d01", 75*time.Hour, 1<<30, "")}
	paths := []string{"/srv/share/finance/<img src=x onerror=alert(1)>.xlsx", "/srv/share/finance/q3.xlsx",
		"/srv/share/hr/contracts.pdf", "/srv/share/hr/salaries.ods", "/srv/share/projects/plan.docx"}
	return &fakeFleet{
		hosts: []fleet.Host{
			{Name: "db-01", Watcher: fleet.Watching, LastHeartbeat: now.Add(-20 * time.Second), Interval: 30 * time.Second,
				Watching: []string{"/var/lib/postgresql"}, LastSnapshot: &clean[0], Snapshots: clean},
			{Name: "fs-01", Watcher: fleet.Watching, LastHeartbeat: now.Add(-12 * time.Second), Interval: 30 * time.Second,
				Watching: []string{"/srv/share"}, Version: "kalaja 0.19.0", Alerts24h: 2, LastSnapshot: &attacked[0], Snapshots: attacked},
			{Name: "web-02", Watcher: fleet.Silent, LastHeartbeat: now.Add(-47 * time.Minute), SilentSince: now.Add(-45 * time.Minute),
				Interval: 30 * time.Second, Watching: []string{"/var/www"}, LastSnapshot: &silentSnaps[0], Snapshots: silentSnaps},
			{Name: "lab-07", Watcher: fleet.Never, Overdue: true, LastSnapshot: &overdue[0], Snapshots: overdue},
		},
		alerts: []fleet.Alert{
			{Host: "fs-01", Received: now.Add(-42 * time.Minute), Claimed: now.Add(-42 * time.Minute), PID: 4242,
				Process: "<script>alert('pwned')</script>", Signals: []string{"entropy", "rename-burst"}, Paths: paths,
				ID: "aa11"},
			{Host: "fs-01", Received: now.Add(-50 * time.Minute), Claimed: now.Add(-3 * time.Hour), PID: 4100,
				Process: "encryptor", Signals: []string{"entropy"}, Paths: paths[:2], ID: "bb22"},
		},
		storage: fleet.Storage{Bytes: 1_900 << 30, Objects: 412_345, GrowthPerDay: 21 << 30, Free: 600 << 30,
			FullBy: now.Add(29 * 24 * time.Hour)},
		ledger: fleet.LedgerStatus{Size: 1834, Checkpoint: 1834, CheckpointTime: now.Add(-40 * time.Minute),
			Witnesses:  []fleet.Witness{{Name: "witness.example.org", Size: 1830, Age: 3 * time.Hour}},
			LastVerify: fleet.Verify{Time: now.Add(-10 * time.Minute), OK: true}},
	}
}

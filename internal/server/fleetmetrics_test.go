package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kalaja/kalaja/internal/fleet"
)

// fakeFleet is a fleet state fixed by the test.
type fakeFleet struct {
	hosts   []fleet.Host
	storage fleet.Storage
}

func (f *fakeFleet) Hosts() []fleet.Host    { return f.hosts }
func (f *fakeFleet) Storage() fleet.Storage { return f.storage }

var _ Fleet = (*fakeFleet)(nil)

// fleetFixture has one host of each watcher state: web watching with a
// clean and a suspect snapshot, db silent with two alerts and no snapshot,
// and new that never sent a heartbeat.
func fleetFixture() *fakeFleet {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	snap := fleet.SnapshotInfo{ID: "a1", Time: t0.Add(-time.Hour), Size: 100, Health: "clean"}
	return &fakeFleet{
		hosts: []fleet.Host{
			{Name: "db", Watcher: "silent", LastHeartbeat: t0.Add(-2 * time.Minute), SilentSince: t0.Add(-time.Minute / 2),
				Interval: 30 * time.Second, Alerts24h: 2, AlertsTotal: 2, Overdue: true},
			{Name: "new", Watcher: "never", Overdue: true},
			{Name: "web", Watcher: "watching", LastHeartbeat: t0, Interval: 10 * time.Second, AlertsTotal: 5,
				LastSnapshot: &snap, Snapshots: []fleet.SnapshotInfo{snap,
					{ID: "a0", Time: t0.Add(-25 * time.Hour), Health: "suspect", Reasons: []string{"entropy"}}}},
		},
		storage: fleet.Storage{Bytes: 1 << 30, Objects: 10, GrowthPerDay: 1 << 20, Free: 1 << 40,
			FullBy: time.Date(2029, 9, 1, 0, 0, 0, 0, time.UTC)},
	}
}

func TestFleetCollector(t *testing.T) {
	tests := []struct {
		name    string
		fleet   *fakeFleet
		metrics []string
		want    string
	}{
		{
			name:  "hosts",
			fleet: fleetFixture(),
			want: `
# HELP kalaja_fleet_alerts_total Alerts received from each host's watcher.
# TYPE kalaja_fleet_alerts_total counter
kalaja_fleet_alerts_total{host="db"} 2
kalaja_fleet_alerts_total{host="new"} 0
kalaja_fleet_alerts_total{host="web"} 5
# HELP kalaja_fleet_host_backup_overdue 1 if the host's newest snapshot is older than the server's --overdue, or it has none, else 0.
# TYPE kalaja_fleet_host_backup_overdue gauge
kalaja_fleet_host_backup_overdue{host="db"} 1
kalaja_fleet_host_backup_overdue{host="new"} 1
kalaja_fleet_host_backup_overdue{host="web"} 0
# HELP kalaja_fleet_host_heartbeat_interval_seconds The heartbeat interval the host's watcher announced, in seconds; absent if it never sent one.
# TYPE kalaja_fleet_host_heartbeat_interval_seconds gauge
kalaja_fleet_host_heartbeat_interval_seconds{host="db"} 30
kalaja_fleet_host_heartbeat_interval_seconds{host="web"} 10
# HELP kalaja_fleet_host_last_heartbeat_timestamp_seconds Server time of the host's last heartbeat, in Unix seconds; absent if it never sent one.
# TYPE kalaja_fleet_host_last_heartbeat_timestamp_seconds gauge
kalaja_fleet_host_last_heartbeat_timestamp_seconds{host="db"} 1.79655108e+09
kalaja_fleet_host_last_heartbeat_timestamp_seconds{host="web"} 1.7965512e+09
# HELP kalaja_fleet_host_last_snapshot_timestamp_seconds Time of the host's newest snapshot as its ledger record states it (the host's claim), in Unix seconds; absent if it has none.
# TYPE kalaja_fleet_host_last_snapshot_timestamp_seconds gauge
kalaja_fleet_host_last_snapshot_timestamp_seconds{host="web"} 1.7965476e+09
# HELP kalaja_fleet_host_silent 1 if the host's watcher is silent (no heartbeat for three of its intervals), else 0.
# TYPE kalaja_fleet_host_silent gauge
kalaja_fleet_host_silent{host="db"} 1
kalaja_fleet_host_silent{host="new"} 0
kalaja_fleet_host_silent{host="web"} 0
# HELP kalaja_fleet_host_suspect_snapshots The host's snapshots whose health is suspect.
# TYPE kalaja_fleet_host_suspect_snapshots gauge
kalaja_fleet_host_suspect_snapshots{host="db"} 0
kalaja_fleet_host_suspect_snapshots{host="new"} 0
kalaja_fleet_host_suspect_snapshots{host="web"} 1
# HELP kalaja_fleet_hosts Hosts known to the vault, by watcher state: watching, silent (no heartbeat for three intervals) or never (no heartbeat ever).
# TYPE kalaja_fleet_hosts gauge
kalaja_fleet_hosts{watcher="never"} 1
kalaja_fleet_hosts{watcher="silent"} 1
kalaja_fleet_hosts{watcher="watching"} 1
# HELP kalaja_fleet_storage_free_bytes Free space of the repository's storage; absent if unknown.
# TYPE kalaja_fleet_storage_free_bytes gauge
kalaja_fleet_storage_free_bytes 1.099511627776e+12
# HELP kalaja_fleet_storage_full_timestamp_seconds When the storage runs out at the current growth, in Unix seconds; absent if unknown.
# TYPE kalaja_fleet_storage_full_timestamp_seconds gauge
kalaja_fleet_storage_full_timestamp_seconds 1.8829152e+09
# HELP kalaja_fleet_storage_growth_bytes_per_day Growth of the repository, bytes per day.
# TYPE kalaja_fleet_storage_growth_bytes_per_day gauge
kalaja_fleet_storage_growth_bytes_per_day 1.048576e+06
`,
		},
		{
			name:    "empty fleet, storage unknown",
			fleet:   &fakeFleet{storage: fleet.Storage{Free: -1}},
			metrics: []string{"kalaja_fleet_hosts", "kalaja_fleet_storage_free_bytes", "kalaja_fleet_storage_full_timestamp_seconds", "kalaja_fleet_alerts_total"},
			want: `
# HELP kalaja_fleet_hosts Hosts known to the vault, by watcher state: watching, silent (no heartbeat for three intervals) or never (no heartbeat ever).
# TYPE kalaja_fleet_hosts gauge
kalaja_fleet_hosts{watcher="never"} 0
kalaja_fleet_hosts{watcher="silent"} 0
kalaja_fleet_hosts{watcher="watching"} 0
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := testutil.CollectAndCompare(newFleetCollector(tt.fleet), strings.NewReader(tt.want), tt.metrics...); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestFleetCollectorReadsNow checks that the metrics follow the state
// between scrapes: nothing is copied when the collector is made.
func TestFleetCollectorReadsNow(t *testing.T) {
	f := fleetFixture()
	c := newFleetCollector(f)
	f.hosts[2].AlertsTotal = 6
	f.hosts[2].Watcher = "silent"
	want := `
# HELP kalaja_fleet_alerts_total Alerts received from each host's watcher.
# TYPE kalaja_fleet_alerts_total counter
kalaja_fleet_alerts_total{host="db"} 2
kalaja_fleet_alerts_total{host="new"} 0
kalaja_fleet_alerts_total{host="web"} 6
# HELP kalaja_fleet_hosts Hosts known to the vault, by watcher state: watching, silent (no heartbeat for three intervals) or never (no heartbeat ever).
# TYPE kalaja_fleet_hosts gauge
kalaja_fleet_hosts{watcher="never"} 1
kalaja_fleet_hosts{watcher="silent"} 2
kalaja_fleet_hosts{watcher="watching"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "kalaja_fleet_alerts_total", "kalaja_fleet_hosts"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// TestServerFleetMetrics checks that the fleet metrics are served on
// /metrics next to the server's own, in the registry New registers them in.
func TestServerFleetMetrics(t *testing.T) {
	m := newMetrics()
	m.reg.MustRegister(newFleetCollector(fleetFixture()))
	w := httptest.NewRecorder()
	m.handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", w.Code, w.Body)
	}
	for _, want := range []string{`kalaja_fleet_host_silent{host="db"} 1`, `kalaja_server_refused_requests_total{reason="exists"} 0`} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

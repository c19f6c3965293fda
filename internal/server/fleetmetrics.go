package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kalaja/kalaja/internal/fleet"
)

// Fleet is what the fleet metrics read: the vault's view of its hosts
// (*fleet.State implements it). Both methods must be safe for concurrent
// use; they are called once per scrape.
type Fleet interface {
	// Hosts returns every known host, sorted by name.
	Hosts() []fleet.Host
	// Storage returns the repository's size and growth.
	Storage() fleet.Storage
}

// watcherStates are the values of a host's watcher state, in the order the
// kalaja_fleet_hosts series are written.
var watcherStates = []string{"watching", "silent", "never"}

// fleetCollector turns the fleet state into metrics at scrape time, so that
// they are never a second copy of it (docs/design.md, "Server API (version
// 1)", Metrics). Times are exported as Unix timestamps, not ages: an age
// computed at scrape time is stale by the scrape interval and by the time
// the rule runs, while time() - timestamp in a rule is exact, and a
// timestamp stays meaningful in a stored series.
type fleetCollector struct {
	f Fleet

	hosts, alerts, silent, heartbeat, interval, snapshot, overdue, suspect, free, fullBy, growth *prometheus.Desc
}

func newFleetCollector(f Fleet) *fleetCollector {
	host := []string{"host"}
	return &fleetCollector{
		f: f,
		hosts: prometheus.NewDesc("kalaja_fleet_hosts",
			"Hosts known to the vault, by watcher state: watching, silent (no heartbeat for three intervals) or never (no heartbeat ever).",
			[]string{"watcher"}, nil),
		alerts: prometheus.NewDesc("kalaja_fleet_alerts_total",
			"Alerts received from each host's watcher.", host, nil),
		silent: prometheus.NewDesc("kalaja_fleet_host_silent",
			"1 if the host's watcher is silent (no heartbeat for three of its intervals), else 0.", host, nil),
		heartbeat: prometheus.NewDesc("kalaja_fleet_host_last_heartbeat_timestamp_seconds",
			"Server time of the host's last heartbeat, in Unix seconds; absent if it never sent one.", host, nil),
		interval: prometheus.NewDesc("kalaja_fleet_host_heartbeat_interval_seconds",
			"The heartbeat interval the host's watcher announced, in seconds; absent if it never sent one.", host, nil),
		snapshot: prometheus.NewDesc("kalaja_fleet_host_last_snapshot_timestamp_seconds",
			"Time of the host's newest snapshot as its ledger record states it (the host's claim), in Unix seconds; absent if it has none.", host, nil),
		overdue: prometheus.NewDesc("kalaja_fleet_host_backup_overdue",
			"1 if the host's newest snapshot is older than the server's --overdue, or it has none, else 0.", host, nil),
		suspect: prometheus.NewDesc("kalaja_fleet_host_suspect_snapshots",
			"The host's snapshots whose health is suspect.", host, nil),
		free: prometheus.NewDesc("kalaja_fleet_storage_free_bytes",
			"Free space of the repository's storage; absent if unknown.", nil, nil),
		fullBy: prometheus.NewDesc("kalaja_fleet_storage_full_timestamp_seconds",
			"When the storage runs out at the current growth, in Unix seconds; absent if unknown.", nil, nil),
		growth: prometheus.NewDesc("kalaja_fleet_storage_growth_bytes_per_day",
			"Growth of the repository, bytes per day.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.hosts, c.alerts, c.silent, c.heartbeat, c.interval, c.snapshot, c.overdue,
		c.suspect, c.free, c.fullBy, c.growth} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one read of the hosts and one of
// the storage per scrape.
func (c *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	byState := map[string]int{}
	for _, h := range c.f.Hosts() {
		state := string(h.Watcher)
		byState[state]++
		silent := 0.0
		if state == "silent" {
			silent = 1
		}
		suspect := 0
		for _, s := range h.Snapshots {
			if s.Health == "suspect" {
				suspect++
			}
		}
		ch <- prometheus.MustNewConstMetric(c.alerts, prometheus.CounterValue, float64(h.AlertsTotal), h.Name)
		ch <- prometheus.MustNewConstMetric(c.silent, prometheus.GaugeValue, silent, h.Name)
		ch <- prometheus.MustNewConstMetric(c.overdue, prometheus.GaugeValue, flag(h.Overdue), h.Name)
		ch <- prometheus.MustNewConstMetric(c.suspect, prometheus.GaugeValue, float64(suspect), h.Name)
		if !h.LastHeartbeat.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.heartbeat, prometheus.GaugeValue, unixSeconds(h.LastHeartbeat), h.Name)
			ch <- prometheus.MustNewConstMetric(c.interval, prometheus.GaugeValue, h.Interval.Seconds(), h.Name)
		}
		if h.LastSnapshot != nil {
			ch <- prometheus.MustNewConstMetric(c.snapshot, prometheus.GaugeValue, unixSeconds(h.LastSnapshot.Time), h.Name)
		}
	}
	for _, s := range watcherStates {
		ch <- prometheus.MustNewConstMetric(c.hosts, prometheus.GaugeValue, float64(byState[s]), s)
	}
	st := c.f.Storage()
	ch <- prometheus.MustNewConstMetric(c.growth, prometheus.GaugeValue, float64(st.GrowthPerDay))
	if st.Free >= 0 {
		ch <- prometheus.MustNewConstMetric(c.free, prometheus.GaugeValue, float64(st.Free))
	}
	if !st.FullBy.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.fullBy, prometheus.GaugeValue, unixSeconds(st.FullBy))
	}
}

func flag(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

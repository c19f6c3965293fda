package dashboard

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/kalaja/kalaja/internal/fleet"
)

// page is what every page's layout shows.
type page struct {
	Title   string
	Root    string // relative path from the page to the dashboard's root, "" or "../"
	Nav     string // the active entry: "overview" or "alerts"
	Updated string
	Refresh int // seconds
}

type overviewPage struct {
	page
	Hosts     []hostRow
	Attention int
	Alerts24h int
	Recent    []alertRow
	Storage   storageView
	Ledger    ledgerView
}

type alertsPage struct {
	page
	Alerts []alertRow
	Window string
	Max    int
}

type hostPage struct {
	page
	Host      hostRow
	Heartbeat string
	Interval  string
	Watching  []string
	Version   string
	Snapshots []snapshotRow
	Alerts    []alertRow
	Window    string
}

// hostRow is a host on the overview: each cell's text, and whether it
// needs attention (shown red).
type hostRow struct {
	Name, Href string
	Watcher    string // watching, silent, never
	WatcherBad bool
	WatcherAt  string // "since 14:02 (2h 5m ago)" for silent, last heartbeat's age for watching
	LastSnap   string // time of the last snapshot, or "none"
	SnapAge    string
	Overdue    bool
	Health     string // clean, suspect, unknown
	HealthBad  bool
	Reasons    string
	Alerts24h  int
	Snapshots  int
	Bad        bool
}

type snapshotRow struct {
	ID, Short string
	Time, Age string
	Size      string
	Health    string
	HealthBad bool
	Reasons   string
}

type alertRow struct {
	Received, Age string
	Claimed       string // the host's own time, when it differs from the receipt
	Host, Href    string
	Process       string
	PID           int
	Signals       []string
	Paths         []string // the first shownPaths
	More          []string // the rest, up to maxPaths in all
	Hidden        int      // paths beyond maxPaths
	ID            string
}

type storageView struct {
	Size, Objects, Growth, Free, FullBy string
	FullSoon                            bool // within 30 days
}

type ledgerView struct {
	Size       int64
	Checkpoint int64  // size of the newest signed checkpoint
	CheckTime  string // its time and age, "" if unknown
	Witnesses  []witnessRow
	Verified   string // time and age of the last verify, or "never"
	VerifyOK   bool
	Problems   int
	Error      string // why the last verify could not run
}

type witnessRow struct {
	Name   string
	Size   int64
	Age    string
	Behind bool // co-signed an older checkpoint than the newest
}

const timeFormat = "2006-01-02 15:04 UTC"

func (d *Dashboard) page(title, root, nav string) page {
	return page{Title: title, Root: root, Nav: nav, Updated: d.now().UTC().Format("2006-01-02 15:04:05 UTC"),
		Refresh: int(refresh / time.Second)}
}

func (d *Dashboard) overview() overviewPage {
	now := d.now()
	p := overviewPage{page: d.page("Overview", "", "overview")}
	for _, h := range d.fleet.Hosts() {
		r := d.hostRow(h, "")
		p.Hosts = append(p.Hosts, r)
		p.Alerts24h += h.Alerts24h
		if r.Bad {
			p.Attention++
		}
	}
	// Hosts that need attention first, then by name: the page is for triage.
	slices.SortStableFunc(p.Hosts, func(a, b hostRow) int {
		if a.Bad != b.Bad {
			if a.Bad {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Name, b.Name)
	})
	for _, a := range d.fleet.Alerts(now.Add(-24*time.Hour), recentAlerts) {
		p.Recent = append(p.Recent, d.alertRow(a, ""))
	}
	p.Storage = d.storage(d.fleet.Storage())
	p.Ledger = d.ledger(d.fleet.Ledger())
	return p
}

func (d *Dashboard) alerts() alertsPage {
	p := alertsPage{page: d.page("Alerts", "", "alerts"), Window: "30 days", Max: maxAlerts}
	for _, a := range d.fleet.Alerts(d.now().Add(-alertWindow), maxAlerts) {
		p.Alerts = append(p.Alerts, d.alertRow(a, ""))
	}
	return p
}

// host returns the page of the host named name, false if there is none.
func (d *Dashboard) host(name string) (hostPage, bool) {
	hosts := d.fleet.Hosts()
	i := slices.IndexFunc(hosts, func(h fleet.Host) bool { return h.Name == name })
	if i < 0 {
		return hostPage{}, false
	}
	h := hosts[i]
	p := hostPage{page: d.page(h.Name, "../", ""), Host: d.hostRow(h, "../"), Watching: h.Watching, Version: h.Version,
		Heartbeat: "never", Interval: "—", Window: "30 days"}
	if !h.LastHeartbeat.IsZero() {
		p.Heartbeat = d.when(h.LastHeartbeat)
	}
	if h.Interval > 0 {
		p.Interval = h.Interval.String()
	}
	for _, s := range h.Snapshots {
		short := s.ID
		if len(short) > 12 {
			short = short[:12]
		}
		health, bad := healthOf(s.Health)
		p.Snapshots = append(p.Snapshots, snapshotRow{ID: s.ID, Short: short, Time: s.Time.UTC().Format(timeFormat),
			Age: d.age(s.Time), Size: humanize.IBytes(uint64(max(s.Size, 0))), Health: health, HealthBad: bad,
			Reasons: strings.Join(s.Reasons, ", ")})
	}
	for _, a := range d.fleet.Alerts(d.now().Add(-alertWindow), maxAlerts) {
		if a.Host == h.Name {
			p.Alerts = append(p.Alerts, d.alertRow(a, "../"))
		}
	}
	return p, true
}

func healthOf(h string) (string, bool) {
	switch h {
	case "":
		return "unknown", false
	case "clean":
		return h, false
	}
	return h, true
}

func hostHref(root, name string) string { return root + "host/" + url.PathEscape(name) }

func (d *Dashboard) hostRow(h fleet.Host, root string) hostRow {
	r := hostRow{Name: h.Name, Href: hostHref(root, h.Name), Watcher: string(h.Watcher), Overdue: h.Overdue,
		Alerts24h: h.Alerts24h, Snapshots: len(h.Snapshots), LastSnap: "none", Health: "—"}
	switch h.Watcher {
	case fleet.Silent:
		r.WatcherBad = true
		r.WatcherAt = "since " + d.when(h.SilentSince)
	case fleet.Watching:
		r.WatcherAt = "heartbeat " + d.age(h.LastHeartbeat) + " ago"
	case fleet.Never:
	default:
		r.Watcher, r.WatcherBad = "unknown", true
	}
	if s := h.LastSnapshot; s != nil {
		r.LastSnap = s.Time.UTC().Format(timeFormat)
		r.SnapAge = d.age(s.Time) + " ago"
		r.Health, r.HealthBad = healthOf(s.Health)
		r.Reasons = strings.Join(s.Reasons, ", ")
	}
	r.Bad = r.WatcherBad || r.Overdue || r.HealthBad || h.Alerts24h > 0
	return r
}

func (d *Dashboard) alertRow(a fleet.Alert, root string) alertRow {
	r := alertRow{Received: a.Received.UTC().Format("2006-01-02 15:04:05 UTC"), Age: d.age(a.Received),
		Host: a.Host, Href: hostHref(root, a.Host), Process: a.Process, PID: a.PID, Signals: a.Signals, ID: a.ID}
	if diff := a.Claimed.Sub(a.Received); !a.Claimed.IsZero() && (diff > time.Minute || diff < -time.Minute) {
		r.Claimed = a.Claimed.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	paths := a.Paths
	if len(paths) > maxPaths {
		r.Hidden = len(paths) - maxPaths
		paths = paths[:maxPaths]
	}
	r.Paths = paths[:min(len(paths), shownPaths)]
	r.More = paths[len(r.Paths):]
	return r
}

func (d *Dashboard) storage(s fleet.Storage) storageView {
	v := storageView{Size: humanize.IBytes(uint64(max(s.Bytes, 0))), Objects: humanize.Comma(s.Objects),
		Free: "unknown", FullBy: "not foreseen"}
	switch {
	case s.GrowthPerDay < 0:
		v.Growth = "−" + humanize.IBytes(uint64(-s.GrowthPerDay)) + "/day"
	default:
		v.Growth = "+" + humanize.IBytes(uint64(s.GrowthPerDay)) + "/day"
	}
	if s.Free >= 0 {
		v.Free = humanize.IBytes(uint64(s.Free))
	}
	if !s.FullBy.IsZero() {
		left := s.FullBy.Sub(d.now())
		v.FullBy = s.FullBy.UTC().Format("2006-01-02") + " (in " + days(left) + ")"
		if left <= 0 {
			v.FullBy = s.FullBy.UTC().Format("2006-01-02") + " (passed)"
		}
		v.FullSoon = left < 30*24*time.Hour
	}
	return v
}

func (d *Dashboard) ledger(l fleet.LedgerStatus) ledgerView {
	v := ledgerView{Size: l.Size, Checkpoint: l.Checkpoint, Verified: "never", VerifyOK: l.LastVerify.OK,
		Problems: l.LastVerify.Problems, Error: l.LastVerify.Error}
	if !l.CheckpointTime.IsZero() {
		v.CheckTime = d.when(l.CheckpointTime)
	}
	if !l.LastVerify.Time.IsZero() {
		v.Verified = d.when(l.LastVerify.Time)
	}
	for _, w := range l.Witnesses {
		v.Witnesses = append(v.Witnesses, witnessRow{Name: w.Name, Size: w.Size, Age: duration(w.Age) + " ago",
			Behind: w.Size < l.Checkpoint})
	}
	return v
}

// when formats t with its age: "2026-12-06 14:02 UTC (2h 5m ago)".
func (d *Dashboard) when(t time.Time) string {
	return t.UTC().Format(timeFormat) + " (" + d.age(t) + " ago)"
}

func (d *Dashboard) age(t time.Time) string { return duration(d.now().Sub(t)) }

// duration formats an age to two units: "45s", "12m", "3h 5m", "4d 2h".
func duration(a time.Duration) string {
	if a < 0 {
		return "in the future: " + duration(-a)
	}
	switch {
	case a < time.Minute:
		return fmt.Sprintf("%ds", int(a/time.Second))
	case a < time.Hour:
		return fmt.Sprintf("%dm", int(a/time.Minute))
	case a < 24*time.Hour:
		return fmt.Sprintf("%dh %dm", int(a/time.Hour), int(a%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%dd %dh", int(a/(24*time.Hour)), int(a%(24*time.Hour)/time.Hour))
}

func days(a time.Duration) string {
	n := int(a / (24 * time.Hour))
	if n == 1 {
		return "1 day"
	}
	return fmt.Sprintf("%d days", n)
}

package recovery

import (
	"strings"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/alert"
	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/detect"
	"github.com/kalaja/kalaja/internal/snapshot"
)

var t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// snap is a snapshot named name of host "h", backing up /srv, taken at
// hour h after t0 and lasting ten minutes, with health status (""
// for none).
func snap(name string, hour int, status snapshot.Status) *snapshot.Snapshot {
	start := t0.Add(time.Duration(hour) * time.Hour)
	sn := &snapshot.Snapshot{ID: blob.Hash([]byte(name)), Time: start, Hostname: "h", Paths: []string{"/srv"},
		Summary: &snapshot.Summary{Start: start, End: start.Add(10 * time.Minute)}}
	if status != "" {
		sn.Health = &snapshot.Health{Version: snapshot.HealthVersion, Status: status}
		if status == snapshot.Suspect {
			sn.Health.Reasons = []snapshot.Reason{{Signal: snapshot.DamagedFiles, Value: 40, Threshold: 3}}
		}
	}
	return sn
}

func alertAt(hour float64) detect.Alert {
	return detect.Alert{Time: t0.Add(time.Duration(hour * float64(time.Hour))), PID: 666, Command: "locker"}
}

func TestChoose(t *testing.T) {
	s1, s2, s3, s4 := snap("s1", 1, snapshot.Clean), snap("s2", 2, snapshot.Clean), snap("s3", 3, snapshot.Clean), snap("s4", 4, snapshot.Clean)
	old := snap("old", 0, "") // made before snapshots carried health
	other := snap("other", 5, snapshot.Clean)
	other.Hostname = "other-host"
	narrow := snap("narrow", 5, snapshot.Clean)
	narrow.Paths = []string{"/srv/www"}
	suspect3 := snap("s3", 3, snapshot.Suspect)
	all := func(blob.ID) bool { return true }
	tests := []struct {
		name   string
		list   []*snapshot.Snapshot
		opts   Options
		want   *snapshot.Snapshot // nil: an error
		passed []string           // substrings of the reasons of Passed, newest first
	}{
		{name: "newest clean", list: []*snapshot.Snapshot{old, s1, s2, s3, other, narrow}, want: s3},
		{name: "health unknown is not suspect", list: []*snapshot.Snapshot{old}, want: old},
		{name: "suspect passed over, and everything after it", list: []*snapshot.Snapshot{s1, s2, suspect3, s4}, want: s2,
			passed: []string{"after the incident began (snapshot", "after the incident began"}},
		{name: "not proven", list: []*snapshot.Snapshot{s1, s2, s3},
			opts: Options{Proven: func(id blob.ID) bool { return id != s3.ID }}, want: s2, passed: []string{"not proven"}},
		{name: "after an alert", list: []*snapshot.Snapshot{s1, s2, s3, s4},
			opts: Options{Alerts: &alert.Log{Alerts: []detect.Alert{alertAt(2.5)}}}, want: s2,
			passed: []string{"after the incident began (the watcher's alert", "after the incident began"}},
		{name: "alert during a backup", list: []*snapshot.Snapshot{s1, s2, s3},
			opts: Options{Alerts: &alert.Log{Alerts: []detect.Alert{alertAt(3.1)}}}, want: s2,
			passed: []string{"suspect: taken after 1 alert"}},
		{name: "alert resolved by a recovery", list: []*snapshot.Snapshot{s1, s2, s3, s4},
			opts: Options{Alerts: &alert.Log{Alerts: []detect.Alert{alertAt(2.5)},
				Resolutions: []alert.Resolution{{Time: t0.Add(3*time.Hour + 30*time.Minute), Resolved: alert.Resolved{By: "recover"}}}}},
			want: s4},
		{name: "before", list: []*snapshot.Snapshot{s1, s2, s3}, opts: Options{Before: t0.Add(2 * time.Hour)}, want: s1,
			passed: []string{"not before", "not before"}},
		{name: "named", list: []*snapshot.Snapshot{s1, s2, s3}, opts: Options{Snapshot: s1.ID.String()[:8]}, want: s1},
		{name: "named, not proven", list: []*snapshot.Snapshot{s1, s2},
			opts: Options{Snapshot: "latest", Proven: func(id blob.ID) bool { return id != s2.ID }}},
		{name: "named after the alert", list: []*snapshot.Snapshot{s1, s2, s3},
			opts: Options{Snapshot: "latest", Alerts: &alert.Log{Alerts: []detect.Alert{alertAt(2.5)}}}},
		{name: "named after the alert, allowed", list: []*snapshot.Snapshot{s1, s2, s3},
			opts: Options{Snapshot: "latest", AllowSuspect: true, Alerts: &alert.Log{Alerts: []detect.Alert{alertAt(2.5)}}}, want: s3},
		{name: "named, suspect", list: []*snapshot.Snapshot{s1, suspect3}, opts: Options{Snapshot: "latest"}},
		{name: "none qualifies", list: []*snapshot.Snapshot{suspect3, s4},
			passed: []string{"after the incident began", "after the incident began"}},
		{name: "no snapshot of the paths", list: []*snapshot.Snapshot{narrow, other}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			o.Host, o.Paths = "h", []string{"/srv/docs"}
			if o.Proven == nil {
				o.Proven = all
			}
			c, err := Choose(tt.list, o)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("Choose chose %s, want an error", c.Snapshot.ID.Short())
				}
				t.Logf("error: %v", err)
			} else if err != nil || c.Snapshot != tt.want {
				t.Fatalf("Choose = %+v, %v; want %s", c, err, tt.want.ID.Short())
			}
			if c == nil {
				return
			}
			if len(c.Passed) != len(tt.passed) {
				t.Fatalf("passed over %d snapshots, want %d: %+v", len(c.Passed), len(tt.passed), c.Passed)
			}
			for i, p := range c.Passed {
				if !strings.Contains(p.Reason, tt.passed[i]) {
					t.Errorf("passed[%d] (%s): %q, want %q in it", i, p.Snapshot.ID.Short(), p.Reason, tt.passed[i])
				}
			}
		})
	}
}

func TestJudge(t *testing.T) {
	sn := snap("s", 2, snapshot.Clean)
	log := &alert.Log{Alerts: []detect.Alert{alertAt(1), alertAt(3)}}
	if v := Judge(sn, log); v.Status != Suspect || v.Alerts != 1 {
		t.Errorf("Judge after one alert = %+v, want suspect by one alert", v)
	}
	log.Resolutions = []alert.Resolution{{Time: t0.Add(90 * time.Minute), Resolved: alert.Resolved{By: "recover"}}}
	if v := Judge(sn, log); v.Status != Clean || v.Alerts != 0 {
		t.Errorf("Judge after a resolved alert = %+v, want clean", v)
	}
	if v := Judge(snap("u", 2, ""), nil); v.Status != Unknown {
		t.Errorf("Judge of a snapshot without health = %+v, want unknown", v)
	}
	if v := Judge(snap("x", 2, snapshot.Suspect), nil); v.Status != Suspect || len(v.Reasons) != 1 {
		t.Errorf("Judge of a suspect snapshot = %+v, want its reason", v)
	}
}

package recovery

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/alert"
	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/detect"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/snapshot"
)

// event is a ledger record of kind about host at hour after t0.
func event(kind, host string, hour float64) ledger.Record {
	at := t0.Add(time.Duration(hour * float64(time.Hour)))
	return ledger.Record{Kind: kind, ID: blob.Hash(fmt.Appendf(nil, "%s %s %v", kind, host, hour)), Size: 300, Time: at, Host: host}
}

func resolvedAt(hour float64) alert.Resolution {
	return alert.Resolution{Time: t0.Add(time.Duration(hour * float64(time.Hour))), Resolved: alert.Resolved{By: "recover"}}
}

// The local alert log and the ledger's records are two sources of one
// incident timeline: Judge and Choose apply one rule to their merge.
func TestTimeline(t *testing.T) {
	s1, s2, s3, s4 := snap("s1", 1, snapshot.Clean), snap("s2", 2, snapshot.Clean), snap("s3", 3, snapshot.Clean), snap("s4", 4, snapshot.Clean)
	list := []*snapshot.Snapshot{s1, s2, s3, s4}
	tests := []struct {
		name  string
		local *alert.Log
		recs  []ledger.Record
		// suspect are the snapshots Judge marks suspect, by name.
		suspect []string
		chosen  *snapshot.Snapshot
		why     string // in the incident's description, if any
	}{
		{name: "nothing", chosen: s4},
		{name: "ledger alert marks later snapshots suspect", recs: []ledger.Record{event(ledger.KindAlert, "h", 2.5)},
			suspect: []string{"s3", "s4"}, chosen: s2, why: "the vault received at 2026-12-01T02:30:00Z"},
		{name: "ledger alert during a backup", recs: []ledger.Record{event(ledger.KindAlert, "h", 3.1)},
			suspect: []string{"s3", "s4"}, chosen: s2},
		{name: "ledger resolved ends the incident",
			recs:    []ledger.Record{event(ledger.KindAlert, "h", 1.5), event(ledger.KindResolved, "h", 2.5)},
			suspect: []string{"s2"}, chosen: s4},
		{name: "another host's records", recs: []ledger.Record{event(ledger.KindAlert, "other", 1.5), event(ledger.KindResolved, "other", 0.5)},
			chosen: s4},
		{name: "silence and other kinds do not mark",
			recs:   []ledger.Record{event(ledger.KindSilent, "h", 1.5), event(ledger.KindBack, "h", 1.6), event(ledger.KindSnapshot, "h", 1.7)},
			chosen: s4},
		{name: "local alert, ledger resolution", local: &alert.Log{Alerts: []detect.Alert{alertAt(1.5)}},
			recs: []ledger.Record{event(ledger.KindResolved, "h", 2.5)}, suspect: []string{"s2"}, chosen: s4},
		{name: "ledger alert, local resolution", local: &alert.Log{Resolutions: []alert.Resolution{resolvedAt(3.5)}},
			recs: []ledger.Record{event(ledger.KindAlert, "h", 2.5)}, suspect: []string{"s3"}, chosen: s4},
		{name: "a local resolution does not end a later ledger alert",
			local: &alert.Log{Alerts: []detect.Alert{alertAt(0.5)}, Resolutions: []alert.Resolution{resolvedAt(1.5)}},
			recs:  []ledger.Record{event(ledger.KindAlert, "h", 3.5)}, suspect: []string{"s1", "s4"}, chosen: s3},
		{name: "the same alert from both sources, the local one first",
			local: &alert.Log{Alerts: []detect.Alert{alertAt(2.4)}},
			recs:  []ledger.Record{event(ledger.KindAlert, "h", 2.5)}, suspect: []string{"s3", "s4"}, chosen: s2, why: "locker (pid 666)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before []detect.Alert
			if tt.local != nil {
				before = append(before, tt.local.Alerts...)
			}
			tl := Timeline(tt.local, tt.recs, "h")
			var suspect []string
			for _, sn := range list {
				if v := Judge(sn, tl); v.Status == Suspect {
					suspect = append(suspect, sn.ID.Short())
				}
			}
			var want []string
			for _, name := range tt.suspect {
				want = append(want, blob.Hash([]byte(name)).Short())
			}
			if strings.Join(suspect, " ") != strings.Join(want, " ") {
				t.Errorf("suspect %v, want %v (%v)", suspect, want, tt.suspect)
			}
			c, err := Choose(list, Options{Host: "h", Paths: []string{"/srv"}, Alerts: tl, Proven: func(blob.ID) bool { return true }})
			if err != nil || c.Snapshot != tt.chosen {
				t.Fatalf("Choose = %+v, %v; want %s", c, err, tt.chosen.ID.Short())
			}
			if !strings.Contains(c.IncidentWhy, tt.why) {
				t.Errorf("incident %q, want %q in it", c.IncidentWhy, tt.why)
			}
			if tt.local != nil && len(tt.local.Alerts) != len(before) {
				t.Errorf("Timeline changed the local log")
			}
		})
	}
}

// appender is a ledger that keeps what is appended, or fails.
type appender struct {
	recs []ledger.Record
	err  error
}

func (a *appender) Append(_ context.Context, recs []ledger.Record) error {
	a.recs = append(a.recs, recs...)
	return a.err
}

// recover's resolution goes to the alert log and the ledger, the ledger's
// record naming the alert log's line by its hash.
func TestResolve(t *testing.T) {
	res := alert.Resolution{Time: t0, Resolved: alert.Resolved{By: "recover", Snapshot: "abc", Paths: []string{"/srv"}}}
	line, err := res.Line()
	if err != nil {
		t.Fatal(err)
	}
	want := ledger.Record{Kind: ledger.KindResolved, ID: sha256.Sum256(line), Size: int64(len(line)), Time: t0, Host: "h"}
	tests := []struct {
		name     string
		alertLog bool
		ledger   *appender
		wantErr  string
	}{
		{name: "both", alertLog: true, ledger: &appender{}},
		{name: "ledger only", ledger: &appender{}},
		{name: "alert log only", alertLog: true},
		{name: "ledger fails", alertLog: true, ledger: &appender{err: errors.New("refused")}, wantErr: "could not be recorded in the ledger: refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := RecoverOptions{Choose: Options{Host: "h"}}
			if tt.alertLog {
				o.AlertLog = filepath.Join(t.TempDir(), "alerts.jsonl")
			}
			if tt.ledger != nil {
				o.Ledger = tt.ledger
			}
			err := resolve(t.Context(), o, res)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("resolve: %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if tt.alertLog {
				b, err := os.ReadFile(o.AlertLog)
				if err != nil || string(b) != string(line)+"\n" {
					t.Fatalf("alert log holds %q, %v; want %s", b, err, line)
				}
			}
			if tt.ledger != nil && (len(tt.ledger.recs) != 1 || !reflect.DeepEqual(tt.ledger.recs[0], want)) {
				t.Fatalf("ledger got %+v, want %+v", tt.ledger.recs, want)
			}
		})
	}
}

package fleet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/event"
	"github.com/kalaja/kalaja/internal/ledger"
)

// fakeLog is a Logger that remembers the records, or fails while failing is set.
type fakeLog struct {
	mu      sync.Mutex
	recs    []ledger.Record
	failing bool
}

func (f *fakeLog) Log(_ context.Context, recs []ledger.Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing {
		return errors.New("ledger unreachable")
	}
	f.recs = append(f.recs, recs...)
	return nil
}

func (f *fakeLog) kinds() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var k []string
	for _, r := range f.recs {
		k = append(k, r.Host+":"+r.Kind)
	}
	return strings.Join(k, " ")
}

// clock is a fake clock moved by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock               { return &clock{time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)} }
func queue(n int) string             { return fmt.Sprintf("%032x", n) }
func hb(q string, seq uint64, iv string) event.Event {
	return event.Event{Queue: q, Seq: seq, Type: event.TypeHeartbeat, Heartbeat: &event.Heartbeat{Interval: iv, Watching: []string{"/srv"}, Version: "test"}}
}
func alert(q string, seq uint64, pid int) event.Event {
	return event.Event{Queue: q, Seq: seq, Type: event.TypeAlert,
		Alert: []byte(fmt.Sprintf(`{"time":"2020-01-01T00:00:00Z","pid":%d,"command":"evil","signals":[{"signal":"rename_ext","score":1,"files":["/srv/a"]}],"files":["/srv/a","/srv/b"]}`, pid))}
}

func open(t testing.TB, dir string, c *clock, l Logger) *State {
	t.Helper()
	s, err := Open(dir, c.now, l)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestApplyOrder applies batches of events and checks the ack, the alerts
// kept and the ledger records: once each, in order, whatever is resent.
func TestApplyOrder(t *testing.T) {
	q1, q2 := queue(1), queue(2)
	tests := []struct {
		name    string
		batches [][]event.Event
		acks    []uint64
		alerts  int    // alerts kept
		kinds   string // ledger records
	}{
		{"in order", [][]event.Event{{hb(q1, 1, "30s"), alert(q1, 2, 7)}}, []uint64{2}, 1, "h:alert"},
		{"resent", [][]event.Event{{alert(q1, 1, 7)}, {alert(q1, 1, 7), alert(q1, 2, 8)}}, []uint64{1, 2}, 2, "h:alert h:alert"},
		{"old seq skipped", [][]event.Event{{alert(q1, 1, 7), alert(q1, 2, 8)}, {alert(q1, 1, 9)}}, []uint64{2, 2}, 2, "h:alert h:alert"},
		{"gap applied", [][]event.Event{{alert(q1, 1, 7)}, {alert(q1, 5, 8)}}, []uint64{1, 5}, 2, "h:alert h:alert"},
		{"new queue resets", [][]event.Event{{alert(q1, 1, 7), hb(q1, 2, "30s")}, {alert(q2, 1, 8)}}, []uint64{2, 1}, 2, "h:alert h:alert"},
		{"heartbeats only", [][]event.Event{{hb(q1, 1, "30s"), hb(q1, 2, "30s")}}, []uint64{2}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fl := &fakeLog{}
			s := open(t, t.TempDir(), newClock(), fl)
			for i, b := range tt.batches {
				ack, err := s.Apply(t.Context(), "h", b)
				if err != nil {
					t.Fatal(err)
				}
				if ack != tt.acks[i] {
					t.Errorf("batch %d: ack %d, want %d", i, ack, tt.acks[i])
				}
			}
			if got := len(s.Alerts(time.Time{}, 100)); got != tt.alerts {
				t.Errorf("%d alerts kept, want %d", got, tt.alerts)
			}
			if got := fl.kinds(); got != tt.kinds {
				t.Errorf("ledger records %q, want %q", got, tt.kinds)
			}
		})
	}
}

// TestApplyRestart checks that what was acknowledged survives a restart of
// the state and is not applied again, and that records the ledger refused
// before the restart are appended after it, once.
func TestApplyRestart(t *testing.T) {
	dir, c, fl := t.TempDir(), newClock(), &fakeLog{failing: true}
	s := open(t, dir, c, fl)
	q := queue(1)
	if ack, err := s.Apply(t.Context(), "h", []event.Event{hb(q, 1, "30s"), alert(q, 2, 7)}); err != nil || ack != 2 {
		t.Fatalf("ack %d, %v", ack, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fl.failing = false
	s = open(t, dir, c, fl)
	if ack, err := s.Apply(t.Context(), "h", []event.Event{hb(q, 1, "30s"), alert(q, 2, 7)}); err != nil || ack != 2 {
		t.Fatalf("resent after restart: ack %d, %v", ack, err)
	}
	if err := s.Tick(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := fl.kinds(); got != "h:alert" {
		t.Errorf("ledger records %q, want one alert", got)
	}
	a := s.Alerts(time.Time{}, 10)
	if len(a) != 1 || a[0].PID != 7 || a[0].Process != "evil" || len(a[0].Paths) != 2 || a[0].Signals[0] != "rename_ext" ||
		!a[0].Received.Equal(c.now()) || a[0].Claimed.Year() != 2020 || fl.recs[0].ID.String() != a[0].ID {
		t.Errorf("alert %+v, record %+v", a, fl.recs)
	}
}

// TestSilence moves a fake clock past three intervals and back.
func TestSilence(t *testing.T) {
	dir, c, fl := t.TempDir(), newClock(), &fakeLog{}
	s := open(t, dir, c, fl)
	q := queue(1)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	state := func(want WatcherState) {
		t.Helper()
		hs := s.Hosts()
		if len(hs) != 1 || hs[0].Watcher != want {
			t.Fatalf("hosts %+v, want one %s", hs, want)
		}
	}
	_, err := s.Apply(t.Context(), "h", []event.Event{hb(q, 1, "10s")})
	must(err)
	state(Watching)
	c.add(29 * time.Second)
	must(s.Tick(t.Context()))
	state(Watching)
	c.add(time.Second)
	must(s.Tick(t.Context()))
	state(Silent)
	c.add(time.Minute)
	must(s.Tick(t.Context())) // logged once only
	if got := fl.kinds(); got != "h:silent" {
		t.Fatalf("records %q", got)
	}
	if hs := s.Hosts(); !hs[0].SilentSince.Equal(c.now().Add(-90 * time.Second)) {
		t.Errorf("silent since %v", hs[0].SilentSince)
	}
	// A restart of a silent host's state keeps it silent without a new record.
	must(s.Close())
	s = open(t, dir, c, fl)
	must(s.Tick(t.Context()))
	state(Silent)
	_, err = s.Apply(t.Context(), "h", []event.Event{hb(q, 2, "10s")})
	must(err)
	state(Watching)
	if got := fl.kinds(); got != "h:silent h:back" {
		t.Fatalf("records %q", got)
	}
}

// TestRestartNotSilent: a server down longer than three intervals does not
// make its hosts silent when it comes back; they have three intervals from
// its start.
func TestRestartNotSilent(t *testing.T) {
	dir, c, fl := t.TempDir(), newClock(), &fakeLog{}
	s := open(t, dir, c, fl)
	if _, err := s.Apply(t.Context(), "h", []event.Event{hb(queue(1), 1, "10s")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c.add(time.Hour)
	s = open(t, dir, c, fl)
	c.add(29 * time.Second)
	if err := s.Tick(t.Context()); err != nil {
		t.Fatal(err)
	}
	if hs := s.Hosts(); hs[0].Watcher != Watching || fl.kinds() != "" {
		t.Fatalf("after the server's downtime: %+v, records %q", hs[0], fl.kinds())
	}
	c.add(time.Second)
	if err := s.Tick(t.Context()); err != nil {
		t.Fatal(err)
	}
	if hs := s.Hosts(); hs[0].Watcher != Silent {
		t.Fatalf("three intervals after the start: %+v", hs[0])
	}
}

// TestAlertsBounded checks that a host's alerts in memory are bounded.
func TestAlertsBounded(t *testing.T) {
	s := open(t, t.TempDir(), newClock(), &fakeLog{})
	var evs []event.Event
	for i := 1; i <= MaxAlerts+10; i++ {
		evs = append(evs, alert(queue(1), uint64(i), i))
	}
	if _, err := s.Apply(t.Context(), "h", evs); err != nil {
		t.Fatal(err)
	}
	a := s.Alerts(time.Time{}, 1000)
	if len(a) != MaxAlerts {
		t.Fatalf("%d alerts kept, want %d", len(a), MaxAlerts)
	}
	if hs := s.Hosts(); hs[0].Alerts24h != MaxAlerts || hs[0].AlertsTotal != MaxAlerts+10 || hs[0].Watcher != Never || !hs[0].Overdue {
		t.Errorf("host %+v; want %d alerts in 24 h (those kept), %d in all", hs[0], MaxAlerts, MaxAlerts+10)
	}
}

// FuzzKeepAlert checks that every alert event.Parse accepts is kept.
func FuzzKeepAlert(f *testing.F) {
	f.Add([]byte(`{"queue":"` + queue(1) + `","seq":2,"type":"alert","alert":{"pid":3,"files":["a"]}}`))
	f.Add([]byte(`{"queue":"` + queue(1) + `","seq":2,"type":"alert","alert":{"pid":3,"signals":[{"signal":"x"}],"time":"2026-01-01T00:00:00Z"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := event.Parse(b)
		if err != nil {
			return
		}
		for _, ev := range evs {
			if ev.Type == event.TypeAlert {
				if _, _, err := alertBytes("h", time.Unix(0, 0), ev); err != nil {
					t.Fatalf("parsed alert not kept: %v", err)
				}
			}
		}
	})
}

// TestConcurrent applies events of many hosts at once, with ticks between
// them (run it with -race): every host's events are applied once.
func TestConcurrent(t *testing.T) {
	fl := &fakeLog{}
	s := open(t, t.TempDir(), newClock(), fl)
	var wg sync.WaitGroup
	const hosts, events = 20, 10
	for h := range hosts {
		wg.Go(func() {
			for i := 1; i <= events; i++ {
				ev := hb(queue(h), uint64(i), "10s")
				if i%5 == 0 {
					ev = alert(queue(h), uint64(i), i)
				}
				if _, err := s.Apply(t.Context(), fmt.Sprintf("h%02d", h), []event.Event{ev}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Go(func() {
		for range events {
			if err := s.Tick(t.Context()); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	if err := s.Tick(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := len(fl.recs); n != hosts*events/5 {
		t.Errorf("%d records, want %d", n, hosts*events/5)
	}
	if hs := s.Hosts(); len(hs) != hosts || hs[0].Alerts24h != events/5 {
		t.Errorf("%d hosts, first %+v", len(hs), hs[0])
	}
}

// TestHostFileNames: a host name that cannot name a file is refused, and
// files in hosts/ that are not host files (an interrupted replacement's
// temporary file) are passed over on Open.
func TestHostFileNames(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, newClock(), &fakeLog{})
	for _, h := range []string{"", ".", "..", "../x", "a/b", strings.Repeat("a", 201)} {
		if _, err := s.Apply(t.Context(), h, []event.Event{hb(queue(1), 1, "10s")}); err == nil {
			t.Errorf("host %q accepted", h)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts", ".h.json.tmp-1"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	open(t, dir, newClock(), &fakeLog{})
	if err := os.WriteFile(filepath.Join(dir, "hosts", "h.json"), []byte(`{"v":2}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, newClock().now, &fakeLog{}); !errors.Is(err, blob.ErrUnsupported) {
		t.Fatalf("a host file of version 2: %v", err)
	}
}

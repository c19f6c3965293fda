// Package fleet is the vault's view of its hosts (docs/design.md, 22):
// the events hosts send to kalaja serve (heartbeats, alerts), applied in
// order and exactly once per host; silence of a host whose heartbeats stop;
// the ledger records of alerts, silences and returns; the hosts' snapshots
// read from the ledger; storage growth; the ledger's status and the last
// verify the server ran.
//
// The state lives in a directory of the server (SERVER-DIR/fleet): a file
// per host (hosts/NAME.json, version 1, replaced whole and durably), the
// kept bytes of every alert, silence and return (events, JSON lines,
// append-only), whose SHA-256 the ledger records name, and the survey of
// the storage and the last verify (survey.json, version 1).
package fleet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kalaja/kalaja/internal/atomicfile"
	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/event"
	"github.com/kalaja/kalaja/internal/ledger"
)

// HostVersion is the version of a host file, hosts/NAME.json.
const HostVersion = 1

// SilentAfter is how many heartbeat intervals without a heartbeat make a
// watching host silent.
const SilentAfter = 3

// Bounds on what the state keeps in memory per host; the kept bytes of
// every alert stay on disk (events).
const (
	MaxAlerts    = 256 // newest alerts kept per host
	MaxSnapshots = 200 // newest snapshots kept per host
	maxPaths     = 64  // paths kept per alert
	maxText      = 256 // bytes of a process name or signal kept
)

// Watcher states of a host.
type WatcherState string

// The watcher states.
const (
	Watching WatcherState = "watching" // heartbeats arrive
	Silent   WatcherState = "silent"   // no heartbeat for SilentAfter intervals
	Never    WatcherState = "never"    // no heartbeat ever
)

// Logger appends vault records to the ledger (ledger.Log.AppendUnsigned in
// production, see LedgerLogger). Log either appends all of recs or returns
// an error; the state retries the records of a failed call later.
type Logger interface {
	Log(ctx context.Context, recs []ledger.Record) error
}

// Host is what the vault knows of one host.
type Host struct {
	Name          string
	Watcher       WatcherState
	LastHeartbeat time.Time // zero if never
	SilentSince   time.Time // zero unless silent: the last heartbeat, or the server's start if later
	Interval      time.Duration
	Watching      []string
	Version       string // the watcher's version, from its last heartbeat
	Alerts24h     int    // alerts received in the last 24 h, of the MaxAlerts kept
	AlertsTotal   int    // alerts received since the host was first seen: a counter, never lower
	LastSnapshot  *SnapshotInfo
	Overdue       bool           // last snapshot older than the overdue age, or none
	Snapshots     []SnapshotInfo // newest first, at most MaxSnapshots
}

// SnapshotInfo is a snapshot as the ledger records it.
type SnapshotInfo struct {
	ID      string
	Time    time.Time // the record's time (the client's claim)
	Size    int64     // the snapshot object's size
	Health  string    // "clean", "suspect", or "" (unknown: a version 1 record)
	Reasons []string  // signal names
}

// Alert is an alert a host sent, as the vault keeps it.
type Alert struct {
	Host     string
	Received time.Time // the server's clock
	Claimed  time.Time // the alert's own time (the host's claim)
	PID      int
	Process  string
	Signals  []string
	Paths    []string // files touched, the first 64
	ID       string   // SHA-256 of the kept bytes = the ledger record's id
}

// hostFile is the persisted state of one host, hosts/NAME.json.
type hostFile struct {
	Version       int             `json:"v"`
	Queue         string          `json:"queue,omitempty"`
	Seq           uint64          `json:"seq,omitempty"`
	Interval      time.Duration   `json:"interval,omitempty"`
	Watching      []string        `json:"watching,omitempty"`
	AgentVersion  string          `json:"version,omitempty"`
	LastHeartbeat time.Time       `json:"last_heartbeat,omitzero"`
	SilentSince   time.Time       `json:"silent_since,omitzero"`
	Alerts        []Alert         `json:"alerts,omitempty"` // oldest first, at most MaxAlerts
	AlertsTotal   int             `json:"alerts_total,omitempty"`
	Pending       []ledger.Record `json:"pending,omitempty"` // records not yet in the ledger, in order
}

// State is the vault's view of its hosts. Safe for concurrent use.
type State struct {
	dir   string
	clock func() time.Time
	log   Logger
	start time.Time
	o     options

	flushMu  sync.Mutex // one flush of pending records at a time
	readMu   sync.Mutex // one read of the ledger at a time
	eventsMu sync.Mutex // held while appending to events
	events   *os.File   // the kept bytes, append-only

	// mu guards the maps and views below. A host's lock (hostMu) is held
	// while its file is written, and taken before mu; a hostFile in hosts
	// is never changed, only replaced.
	mu     sync.Mutex
	hostMu map[string]*sync.Mutex
	hosts  map[string]*hostFile
	snaps  map[string][]SnapshotInfo // by host, oldest first
	ledger ledgerView
	disk   storageView
}

// Option configures a State.
type Option func(*options)

type options struct {
	slog    *slog.Logger
	overdue time.Duration
	tokens  func() ([]string, error)
	source  *Source
}

// WithSlog sends the state's warnings (gaps in a queue, failed ledger
// appends) and notices (silent, back) to l. Default: discarded.
func WithSlog(l *slog.Logger) Option { return func(o *options) { o.slog = l } }

// WithOverdue sets the age after which a host's last snapshot is overdue.
// Default DefaultOverdue.
func WithOverdue(d time.Duration) Option { return func(o *options) { o.overdue = d } }

// WithTokenHosts makes Hosts list the hosts f returns (the token holders)
// even before they send anything.
func WithTokenHosts(f func() ([]string, error)) Option { return func(o *options) { o.tokens = f } }

// DefaultOverdue is the age after which a last snapshot is overdue.
const DefaultOverdue = 26 * time.Hour

// Open loads the state kept in dir (created if absent). Records a previous
// run left pending are appended at the next Apply or Tick. clock is the
// state's only source of time; the time of Open counts as the last
// heartbeat of every host for silence, so that the server's downtime does
// not make hosts silent.
func Open(dir string, clock func() time.Time, log Logger, opts ...Option) (*State, error) {
	s := &State{dir: dir, clock: clock, log: log, start: clock(), hosts: map[string]*hostFile{}, hostMu: map[string]*sync.Mutex{},
		snaps: map[string][]SnapshotInfo{}, o: options{overdue: DefaultOverdue}, disk: storageView{free: -1}}
	for _, o := range opts {
		o(&s.o)
	}
	if s.o.slog == nil {
		s.o.slog = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Join(dir, "hosts"), 0o700); err != nil {
		return nil, fmt.Errorf("open fleet state: %w", err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "hosts"))
	if err != nil {
		return nil, fmt.Errorf("open fleet state: %w", err)
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || checkHost(name) != nil {
			continue // atomicfile's temporary files, or not ours
		}
		b, err := os.ReadFile(filepath.Join(dir, "hosts", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("open fleet state: %w", err)
		}
		h, err := parseHostFile(b)
		if err != nil {
			return nil, fmt.Errorf("fleet state of host %s: %w", name, err)
		}
		s.hosts[name] = h
	}
	if err := s.loadSurvey(); err != nil {
		return nil, err
	}
	s.events, err = os.OpenFile(filepath.Join(dir, "events"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open fleet events: %w", err)
	}
	return s, nil
}

// parseHostFile decodes a host file, checking its version.
func parseHostFile(b []byte) (*hostFile, error) {
	var h hostFile
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("%v: %w", err, blob.ErrCorrupt)
	}
	if h.Version != HostVersion {
		return nil, fmt.Errorf("host file version %d, want %d: %w", h.Version, HostVersion, blob.ErrUnsupported)
	}
	return &h, nil
}

// checkHost checks that a host name can name its file. The names come
// from the server's tokens, which hold them to the host name rule
// (server.CheckHost); the state asks only what a file name needs.
func checkHost(host string) error {
	if host == "" || len(host) > 200 || host == "." || host == ".." || strings.ContainsAny(host, "/\\\x00") {
		return fmt.Errorf("host name %q cannot name a file", host)
	}
	return nil
}

// Close closes the events file. The state must not be used after.
func (s *State) Close() error {
	s.eventsMu.Lock()
	defer s.eventsMu.Unlock()
	return s.events.Close()
}

// lockHost takes a host's lock and returns its unlock.
func (s *State) lockHost(name string) func() {
	s.mu.Lock()
	m := s.hostMu[name]
	if m == nil {
		m = &sync.Mutex{}
		s.hostMu[name] = m
	}
	s.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// hostFile returns a host's current file, nil if none.
func (s *State) hostFile(name string) *hostFile {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hosts[name]
}

// replace makes h the host's current file. The host's lock is held.
func (s *State) replace(name string, h *hostFile) {
	s.mu.Lock()
	s.hosts[name] = h
	s.mu.Unlock()
}

// Apply applies a host's events (the body of POST /v1/events, parsed by
// event.Parse) in order, exactly once, and returns the ack: the highest seq
// of the host's current queue applied. An event of the current queue with a
// seq at or below the last applied is skipped; a seq past the next is
// applied and the gap logged; an event of another queue starts the host's
// queue afresh. The received time is the state's clock. What was applied
// is durable when Apply returns; the ledger records it makes are appended
// before it returns if the Logger succeeds, else at a later Apply or Tick.
// An error means nothing was applied.
func (s *State) Apply(ctx context.Context, host string, events []event.Event) (uint64, error) {
	if err := checkHost(host); err != nil {
		return 0, err
	}
	unlock := s.lockHost(host)
	old := s.hostFile(host)
	if old == nil {
		old = &hostFile{Version: HostVersion}
	}
	next := *old
	next.Alerts = slices.Clone(old.Alerts)
	next.Pending = slices.Clone(old.Pending)
	now := s.clock()
	var kept bytes.Buffer
	changed := false
	for _, ev := range events {
		if ev.Queue != next.Queue {
			if next.Queue != "" {
				s.o.slog.Info("fleet: new queue", "host", host, "queue", ev.Queue, "old", next.Queue, "old_seq", next.Seq)
			}
			next.Queue, next.Seq = ev.Queue, 0
		}
		if ev.Seq <= next.Seq {
			continue
		}
		if ev.Seq > next.Seq+1 {
			s.o.slog.Warn("fleet: gap in a host's events", "host", host, "queue", ev.Queue, "after", next.Seq, "got", ev.Seq)
		}
		next.Seq = ev.Seq
		changed = true
		switch ev.Type {
		case event.TypeHeartbeat:
			iv, _ := ev.Heartbeat.Duration() // event.Parse checked it
			if !next.SilentSince.IsZero() {
				b := silenceBytes("back", host, now, next.SilentSince, next.Interval)
				next.Pending = append(next.Pending, record(ledger.KindBack, b, host, now))
				kept.Write(b)
				kept.WriteByte('\n')
				s.o.slog.Info("fleet: host back", "host", host, "silent_since", next.SilentSince)
				next.SilentSince = time.Time{}
			}
			next.LastHeartbeat, next.Interval = now, iv
			next.Watching, next.AgentVersion = ev.Heartbeat.Watching, ev.Heartbeat.Version
		case event.TypeAlert:
			b, a, err := alertBytes(host, now, ev)
			if err != nil {
				unlock()
				return 0, err
			}
			next.Pending = append(next.Pending, record(ledger.KindAlert, b, host, now))
			kept.Write(b)
			kept.WriteByte('\n')
			next.Alerts = append(next.Alerts, a)
			next.AlertsTotal++
			if len(next.Alerts) > MaxAlerts {
				next.Alerts = slices.Delete(next.Alerts, 0, len(next.Alerts)-MaxAlerts)
			}
		}
	}
	if changed {
		if err := s.persist(host, &next, kept.Bytes()); err != nil {
			unlock()
			return 0, err
		}
		s.replace(host, &next)
	}
	ack := next.Seq
	pending := len(next.Pending) > 0
	unlock()
	if pending {
		if err := s.flush(ctx); err != nil {
			s.o.slog.Warn("fleet: ledger append failed; retried at the next tick", "err", err)
		}
	}
	return ack, nil
}

// persist writes the kept bytes, then the host file. The host's lock is
// held.
func (s *State) persist(host string, h *hostFile, kept []byte) error {
	if len(kept) > 0 {
		if err := s.keep(kept); err != nil {
			return err
		}
	}
	b, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("encode fleet state of %s: %w", host, err)
	}
	if err := atomicfile.Write(filepath.Join(s.dir, "hosts", host+".json"), b, 0o600); err != nil {
		return fmt.Errorf("persist fleet state of %s: %w", host, err)
	}
	return nil
}

// keep appends kept bytes to events, durably.
func (s *State) keep(b []byte) error {
	s.eventsMu.Lock()
	defer s.eventsMu.Unlock()
	if _, err := s.events.Write(b); err != nil {
		return fmt.Errorf("keep fleet events: %w", err)
	}
	if err := s.events.Sync(); err != nil {
		return fmt.Errorf("keep fleet events: %w", err)
	}
	return nil
}

// record is the ledger record of kept bytes b.
func record(kind string, b []byte, host string, now time.Time) ledger.Record {
	return ledger.Record{Kind: kind, ID: blob.ID(sha256.Sum256(b)), Size: int64(len(b)), Time: now, Host: host}
}

// alertBytes returns the bytes the vault keeps of an alert event (one line
// of JSON without its newline) and the alert as the state shows it.
func alertBytes(host string, now time.Time, ev event.Event) ([]byte, Alert, error) {
	var raw bytes.Buffer
	if err := json.Compact(&raw, ev.Alert); err != nil {
		return nil, Alert{}, fmt.Errorf("alert: %w", err)
	}
	b, err := json.Marshal(struct {
		Event    string          `json:"event"`
		Host     string          `json:"host"`
		Received time.Time       `json:"received"`
		Queue    string          `json:"queue"`
		Seq      uint64          `json:"seq"`
		Alert    json.RawMessage `json:"alert"`
	}{"alert", host, now.UTC(), ev.Queue, ev.Seq, raw.Bytes()})
	if err != nil {
		return nil, Alert{}, fmt.Errorf("alert: %w", err)
	}
	var c event.Claim
	if err := json.Unmarshal(ev.Alert, &c); err != nil {
		return nil, Alert{}, fmt.Errorf("alert: %w", err)
	}
	sum := sha256.Sum256(b)
	a := Alert{Host: host, Received: now, Claimed: c.Time, PID: c.PID, Process: clip(c.Command), ID: hex.EncodeToString(sum[:])}
	for _, sg := range c.Signals {
		if len(a.Signals) < maxPaths {
			a.Signals = append(a.Signals, clip(sg.Signal))
		}
	}
	a.Paths = slices.Clone(c.Files[:min(len(c.Files), maxPaths)])
	return b, a, nil
}

func clip(s string) string {
	if len(s) > maxText {
		return s[:maxText]
	}
	return s
}

// silenceBytes returns the bytes the vault keeps of a silence or a return.
func silenceBytes(event, host string, now, since time.Time, interval time.Duration) []byte {
	b, _ := json.Marshal(struct { // no value here fails to encode
		Event    string    `json:"event"`
		Host     string    `json:"host"`
		Time     time.Time `json:"time"`
		Since    time.Time `json:"since"`
		Interval string    `json:"interval"`
	}{event, host, now.UTC(), since.UTC(), interval.String()})
	return b
}

// Tick checks for silence at the clock's now: a host with a heartbeat
// interval I whose last heartbeat (or the state's Open, if later) is
// SilentAfter×I ago or more becomes silent, once, with a silent record.
// Then it appends pending records to the ledger and reads the ledger's new
// records (WithSource). The server calls it every few seconds.
func (s *State) Tick(ctx context.Context) error {
	now := s.clock()
	s.mu.Lock()
	names := make([]string, 0, len(s.hosts))
	for name := range s.hosts {
		names = append(names, name)
	}
	s.mu.Unlock()
	var errs []error
	for _, name := range names {
		if err := s.checkSilence(name, now); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.flush(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkSilence makes a host silent if it is at now.
func (s *State) checkSilence(name string, now time.Time) error {
	unlock := s.lockHost(name)
	defer unlock()
	h := s.hostFile(name)
	if h == nil || h.Interval <= 0 || !h.SilentSince.IsZero() {
		return nil
	}
	ref := h.LastHeartbeat
	if s.start.After(ref) {
		ref = s.start
	}
	if now.Sub(ref) < SilentAfter*h.Interval {
		return nil
	}
	next := *h
	next.SilentSince = ref
	b := silenceBytes("silent", name, now, ref, h.Interval)
	next.Pending = append(slices.Clone(h.Pending), record(ledger.KindSilent, b, name, now))
	if err := s.persist(name, &next, append(b, '\n')); err != nil {
		return err
	}
	s.replace(name, &next)
	s.o.slog.Warn("fleet: host silent", "host", name, "since", ref, "interval", h.Interval)
	return nil
}

// flush reads the ledger's new records (readLedger: snapshots, and
// pending records a previous flush appended but could not forget before a
// crash), then appends every host's pending records to the ledger as one
// batch, and forgets them once appended. While the Logger fails with an
// error wrapping blob.ErrNotFound (the repository has no ledger yet,
// before its first backup) they wait, without an error.
func (s *State) flush(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if err := s.readLedger(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	var recs []ledger.Record
	taken := map[string]map[blob.ID]bool{}
	for name, h := range s.hosts {
		for _, r := range h.Pending {
			recs = append(recs, r)
			if taken[name] == nil {
				taken[name] = map[blob.ID]bool{}
			}
			taken[name][r.ID] = true
		}
	}
	s.mu.Unlock()
	if len(recs) == 0 {
		return nil
	}
	slices.SortStableFunc(recs, func(a, b ledger.Record) int { return a.Time.Compare(b.Time) })
	if err := s.log.Log(ctx, recs); errors.Is(err, blob.ErrNotFound) {
		return nil // the repository has no ledger yet: the records wait for it
	} else if err != nil {
		return fmt.Errorf("append vault records to the ledger: %w", err)
	}
	return s.forget(taken)
}

// forget drops from the hosts' pending records those whose IDs are in
// logged (by host): they are in the ledger.
func (s *State) forget(logged map[string]map[blob.ID]bool) error {
	var errs []error
	for name, ids := range logged {
		unlock := s.lockHost(name)
		if cur := s.hostFile(name); cur != nil {
			next := *cur
			next.Pending = slices.DeleteFunc(slices.Clone(next.Pending), func(r ledger.Record) bool { return ids[r.ID] })
			if len(next.Pending) < len(cur.Pending) {
				if err := s.persist(name, &next, nil); err != nil {
					errs = append(errs, err)
				} else {
					s.replace(name, &next)
				}
			}
		}
		unlock()
	}
	return errors.Join(errs...)
}

// Hosts returns every known host (token holders, hosts that sent events and
// hosts seen in the ledger), sorted by name.
func (s *State) Hosts() []Host {
	var tokens []string
	if s.o.tokens != nil {
		var err error
		if tokens, err = s.o.tokens(); err != nil {
			s.o.slog.Warn("fleet: read the token holders", "err", err)
		}
	}
	now := s.clock()
	s.mu.Lock()
	defer s.mu.Unlock()
	names := map[string]bool{}
	for _, n := range tokens {
		names[n] = true
	}
	for n := range s.hosts {
		names[n] = true
	}
	for n := range s.snaps {
		names[n] = true
	}
	out := make([]Host, 0, len(names))
	for n := range names {
		out = append(out, s.host(n, now))
	}
	slices.SortFunc(out, func(a, b Host) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// host describes one host at now. s.mu is held.
func (s *State) host(name string, now time.Time) Host {
	h := Host{Name: name, Watcher: Never, Overdue: true}
	if f := s.hosts[name]; f != nil {
		h.LastHeartbeat, h.SilentSince, h.Interval = f.LastHeartbeat, f.SilentSince, f.Interval
		h.Watching, h.Version, h.AlertsTotal = slices.Clone(f.Watching), f.AgentVersion, f.AlertsTotal
		switch {
		case !f.SilentSince.IsZero():
			h.Watcher = Silent
		case !f.LastHeartbeat.IsZero():
			h.Watcher = Watching
		}
		for _, a := range f.Alerts {
			if now.Sub(a.Received) < 24*time.Hour {
				h.Alerts24h++
			}
		}
	}
	snaps := s.snaps[name]
	for i := len(snaps) - 1; i >= 0; i-- {
		h.Snapshots = append(h.Snapshots, snaps[i])
	}
	if len(h.Snapshots) > 0 {
		last := h.Snapshots[0]
		h.LastSnapshot = &last
		h.Overdue = now.Sub(last.Time) > s.o.overdue
	}
	return h
}

// Alerts returns the alerts received since t, newest first, at most n (of
// the MaxAlerts kept per host).
func (s *State) Alerts(since time.Time, n int) []Alert {
	s.mu.Lock()
	var out []Alert
	for _, h := range s.hosts {
		for _, a := range h.Alerts {
			if !a.Received.Before(since) {
				out = append(out, a)
			}
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Alert) int {
		if c := b.Received.Compare(a.Received); c != 0 {
			return c
		}
		return strings.Compare(a.Host, b.Host)
	})
	if len(out) > n {
		out = out[:max(n, 0)]
	}
	return out
}

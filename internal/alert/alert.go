// Package alert delivers the watcher's alerts where people and programs
// look for them: one JSON line per alert (detect.Alert's encoding) on
// standard output and appended to an alert log, a message in the system
// log, a POST to a webhook, an event in the host's outbox for the vault
// (kalaja serve); and the lines that follow an alert: what
// the watcher healed, and a recovery that resolved the incident. It also
// reads an alert log back, for the snapshot health and recovery that must
// know when an attack was seen.
package alert

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"log/syslog"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/kalaja/kalaja/internal/detect"
	"github.com/kalaja/kalaja/internal/event"
	"github.com/kalaja/kalaja/internal/outbox"
)

// Options says where alerts go besides the caller's log.
type Options struct {
	Stdout  io.Writer // each alert as a JSON line; nil for none
	LogFile string    // append each alert as a JSON line to this file ("" for none)
	Syslog  bool      // send each alert to the system log (LOG_ALERT, LOG_DAEMON)
	Webhook string    // POST each alert as JSON to this URL ("" for none)
	// Outbox, if set, queues each alert (not the lines that follow one)
	// for the vault: appended and synced to the host's disk, sent by the
	// outbox's sender, so the alert path never waits for the network.
	Outbox Queue
}

// Queue is where alerts wait for the vault: outbox.Queue.
type Queue interface {
	Append(typ string, body []byte) (appended bool, err error)
}

// Sinks sends alerts to every destination Options named. It is safe for
// concurrent use.
type Sinks struct {
	mu      sync.Mutex
	stdout  io.Writer
	file    *os.File
	syslog  *syslog.Writer
	webhook string
	client  *http.Client
	outbox  Queue
}

// webhookTimeout bounds one webhook POST, so a dead endpoint cannot hold up
// the alerts behind it for long.
const webhookTimeout = 10 * time.Second

// Open opens the destinations of o. An alert log that cannot be opened
// for appending, or a system log that cannot be reached, is an error naming
// the option.
func Open(o Options) (*Sinks, error) {
	s := &Sinks{stdout: o.Stdout, webhook: o.Webhook, client: &http.Client{Timeout: webhookTimeout}, outbox: o.Outbox}
	if o.LogFile != "" {
		f, err := openLog(o.LogFile)
		if err != nil {
			return nil, err
		}
		s.file = f
	}
	if o.Syslog {
		w, err := syslog.New(syslog.LOG_ALERT|syslog.LOG_DAEMON, "kalaja")
		if err != nil {
			_ = s.Close() // undoes the opening; the syslog error is the one to report
			return nil, fmt.Errorf("syslog: %w", err)
		}
		s.syslog = w
	}
	return s, nil
}

// Close closes the alert log and the system log connection.
func (s *Sinks) Close() error {
	var errs []error
	if s.file != nil {
		errs = append(errs, s.file.Close())
	}
	if s.syslog != nil {
		errs = append(errs, s.syslog.Close())
	}
	return errors.Join(errs...)
}

// SendHealing delivers h as Send delivers an alert: one JSON line to
// stdout and the alert log (synced), the system log and the webhook; not
// to the outbox, whose events are alerts and heartbeats.
func (s *Sinks) SendHealing(ctx context.Context, h Healing, log *slog.Logger) {
	s.send(ctx, h, nil, log)
}

// Send delivers a to every destination, in turn; a destination that fails
// is reported to log and the others still get the alert. The alert log is
// synced before Send returns, so an alert survives a crash (or a wiper)
// that follows it; so is the outbox, right after the alert log, before
// the destinations that may wait on the network.
func (s *Sinks) Send(ctx context.Context, a detect.Alert, log *slog.Logger) {
	s.send(ctx, a, &a, log)
}

// send delivers one line, the JSON encoding of v; to the outbox too if v
// is the alert a.
func (s *Sinks) send(ctx context.Context, v any, a *detect.Alert, log *slog.Logger) {
	line, err := json.Marshal(v)
	if err != nil {
		log.Error("encode alert", "err", err)
		return
	}
	line = append(line, '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stdout != nil {
		if _, err := s.stdout.Write(line); err != nil {
			log.Error("print alert", "err", err)
		}
	}
	if s.file != nil {
		_, err := s.file.Write(line)
		if err == nil {
			err = s.file.Sync()
		}
		if err != nil {
			log.Error("write alert log", "file", s.file.Name(), "err", err)
		}
	}
	if s.outbox != nil && a != nil {
		s.queue(*a, line, log)
	}
	if s.syslog != nil {
		if err := s.syslog.Alert(string(line)); err != nil {
			log.Error("syslog", "err", err)
		}
	}
	if s.webhook != "" {
		if err := s.post(ctx, line); err != nil {
			log.Error("webhook", "url", s.webhook, "err", err)
		}
	}
}

// queue appends alert a, encoded as line, to the outbox. An alert too
// large for the vault (its paths are long) goes without its paths, which
// the alert log keeps, rather than not at all.
func (s *Sinks) queue(a detect.Alert, line []byte, log *slog.Logger) {
	_, err := s.outbox.Append(event.TypeAlert, line)
	if errors.Is(err, outbox.ErrTooLarge) {
		log.Warn("alert too large for the vault: sent without its paths, which the alert log keeps", "bytes", len(line))
		a.Files = nil
		a.Signals = slices.Clone(a.Signals)
		for i := range a.Signals {
			a.Signals[i].Files, a.Signals[i].Renames = nil, nil
		}
		var short []byte
		if short, err = json.Marshal(a); err == nil {
			_, err = s.outbox.Append(event.TypeAlert, short)
		}
	}
	if err != nil {
		log.Error("queue alert for the vault", "err", err)
	}
}

// post sends one alert to the webhook.
func (s *Sinks) post(ctx context.Context, line []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.webhook, bytes.NewReader(line))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}

// maxLine bounds one line of an alert log: an alert lists at most a few
// hundred files.
const maxLine = 4 << 20

// Resolution is a line of an alert log that ends an incident: recover
// appends one when it has repaired the host, so that the alerts before it
// no longer mark the host's later snapshots suspect.
type Resolution struct {
	Time     time.Time `json:"time"`
	Resolved Resolved  `json:"resolved"`
}

// Resolved says what ended an incident.
type Resolved struct {
	By       string   `json:"by"`       // what resolved it: "recover"
	Snapshot string   `json:"snapshot"` // the snapshot the host was brought back to
	Paths    []string `json:"paths"`    // the paths repaired
}

// Healing is a line of an alert log that says what the watcher healed
// after an alert (kalaja watch --heal): the files it named, brought back
// from the snapshot in place, what replaced them moved to the quarantine.
type Healing struct {
	Time   time.Time `json:"time"`
	Healed Healed    `json:"healed"`
}

// Healed is what one healing did.
type Healed struct {
	Alert       time.Time `json:"alert"` // the time of the alert healed
	PID         int       `json:"pid"`   // the alert's process
	Snapshot    string    `json:"snapshot,omitempty"`
	Paths       int       `json:"paths"` // paths the alert named and the snapshot covers
	Restored    int       `json:"restored"`
	Quarantined int       `json:"quarantined"`
	Quarantine  string    `json:"quarantine,omitempty"`
	Verified    int       `json:"verified"`
	Errors      int       `json:"errors"`
	Seconds     float64   `json:"seconds"`
	Error       string    `json:"error,omitempty"` // why nothing could be healed
}

// Log is what an alert log holds, oldest first.
type Log struct {
	Alerts      []detect.Alert
	Resolutions []Resolution
	Healings    []Healing
	// Bad counts lines that did not decode (a torn last write, a line from
	// another program): skipped, so that one cannot hide the others.
	Bad int
}

// Unresolved returns the alerts after the newest resolution.
func (l *Log) Unresolved() []detect.Alert {
	var last time.Time
	for _, r := range l.Resolutions {
		if r.Time.After(last) {
			last = r.Time
		}
	}
	var out []detect.Alert
	for _, a := range l.Alerts {
		if a.Time.After(last) {
			out = append(out, a)
		}
	}
	return out
}

// ReadLog reads an alert log. A missing file holds nothing.
func ReadLog(path string) (*Log, error) {
	l := &Log{}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return l, fmt.Errorf("alert log: %w", err)
	}
	defer func() { _ = f.Close() }() // read only
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var probe struct {
			Time     time.Time        `json:"time"`
			Resolved *json.RawMessage `json:"resolved"`
			Healed   *json.RawMessage `json:"healed"`
		}
		if err := json.Unmarshal(line, &probe); err != nil || probe.Time.IsZero() {
			l.Bad++
			continue
		}
		if probe.Healed != nil {
			var h Healing
			if err := json.Unmarshal(line, &h); err != nil {
				l.Bad++
				continue
			}
			l.Healings = append(l.Healings, h)
			continue
		}
		if probe.Resolved != nil {
			var r Resolution
			if err := json.Unmarshal(line, &r); err != nil || r.Resolved.By == "" {
				l.Bad++
				continue
			}
			l.Resolutions = append(l.Resolutions, r)
			continue
		}
		var a detect.Alert
		if err := json.Unmarshal(line, &a); err != nil {
			l.Bad++
			continue
		}
		l.Alerts = append(l.Alerts, a)
	}
	if err := sc.Err(); err != nil {
		return l, fmt.Errorf("alert log %s: %w", path, err)
	}
	return l, nil
}

// Line returns r's line of an alert log, without the line break: the
// bytes Resolve appends, which a ledger record of the resolution names by
// their hash.
func (r Resolution) Line() ([]byte, error) {
	line, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode resolution: %w", err)
	}
	return line, nil
}

// Resolve appends r to the alert log at path (creating it), synced.
func Resolve(path string, r Resolution) error {
	line, err := r.Line()
	if err != nil {
		return err
	}
	f, err := openLog(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		_ = f.Close() // the write error is the one to report
		return fmt.Errorf("alert log %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close() // the sync error is the one to report
		return fmt.Errorf("alert log %s: %w", path, err)
	}
	return f.Close()
}

// openLog opens an alert log for appending, creating it. If the file does
// not end in a line break (a write torn by a crash), one is added first, so
// that the next line is not glued to the torn one and lost with it.
func openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("alert log: %w", err)
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() > 0 {
		last := make([]byte, 1)
		if _, err = f.ReadAt(last, fi.Size()-1); err == nil && last[0] != '\n' {
			_, err = f.Write([]byte{'\n'})
		}
	}
	if err != nil {
		_ = f.Close() // err is the one to report
		return nil, fmt.Errorf("alert log %s: %w", path, err)
	}
	return f, nil
}

// Package event is the wire of POST /v1/events (docs/design.md, 22.1):
// the events a host's watcher sends the vault, heartbeats and alerts, each
// one line of JSON with the host queue's ID and sequence number, and the
// bounds the vault holds them to. The host's outbox (internal/outbox)
// writes them and the vault (internal/fleet) reads them; both take the
// format and its bounds from here. The package is pure.
package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Limits of one POST /v1/events body (docs/design.md, 22.1).
const (
	MaxBody   = 1 << 20 // bytes
	MaxEvents = 1000    // lines
)

// Bounds on what an event may carry; a bigger event is malformed.
const (
	MaxWatching = 64             // paths a heartbeat may name
	MaxPath     = 4096           // bytes of one path
	MaxVersion  = 128            // bytes of the watcher's version
	MaxAlert    = 256 << 10      // bytes of one alert object
	MinInterval = time.Second    // the shortest heartbeat interval
	MaxInterval = 24 * time.Hour // the longest heartbeat interval
)

// Event types.
const (
	TypeHeartbeat = "heartbeat"
	TypeAlert     = "alert"
)

// Event is one line of a POST /v1/events body: an event of a host's
// outgoing queue. Queue is the queue's random ID (32 lowercase hex digits),
// Seq its position in the queue, from 1.
type Event struct {
	Queue     string          `json:"queue"`
	Seq       uint64          `json:"seq"`
	Type      string          `json:"type"`
	Heartbeat *Heartbeat      `json:"heartbeat,omitempty"`
	Alert     json.RawMessage `json:"alert,omitempty"`
}

// Heartbeat says a host's watcher is running: it sends one every Interval
// (a Go duration, "30s"), watching the paths Watching.
type Heartbeat struct {
	Interval string   `json:"interval"`
	Watching []string `json:"watching"`
	Version  string   `json:"version"`
}

// Claim is what the vault reads of an alert object as the watcher writes
// it (internal/detect.Alert): the rest is kept as bytes, unread.
type Claim struct {
	Time    time.Time `json:"time"`
	PID     int       `json:"pid"`
	Command string    `json:"command"`
	Signals []struct {
		Signal string `json:"signal"`
	} `json:"signals"`
	Files []string `json:"files"`
}

// Parse decodes a POST /v1/events body: at most MaxBody bytes of at
// most MaxEvents lines, each one Event (blank lines are skipped). It
// checks every event and fails on the first malformed one, so that a body
// is applied whole or not at all.
func Parse(body []byte) ([]Event, error) {
	if len(body) > MaxBody {
		return nil, fmt.Errorf("events: body of %d bytes, at most %d", len(body), MaxBody)
	}
	var evs []Event
	for i := 1; len(body) > 0; i++ {
		var line []byte
		line, body, _ = bytes.Cut(body, []byte{'\n'})
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if len(evs) == MaxEvents {
			return nil, fmt.Errorf("events: more than %d", MaxEvents)
		}
		var ev Event
		d := json.NewDecoder(bytes.NewReader(line))
		d.DisallowUnknownFields()
		if err := d.Decode(&ev); err != nil {
			return nil, fmt.Errorf("events line %d: %w", i, err)
		}
		if d.More() {
			return nil, fmt.Errorf("events line %d: more than one JSON value", i)
		}
		if err := ev.check(); err != nil {
			return nil, fmt.Errorf("events line %d: %w", i, err)
		}
		evs = append(evs, ev)
	}
	if len(evs) == 0 {
		return nil, errors.New("events: none")
	}
	return evs, nil
}

// check validates an event.
func (ev *Event) check() error {
	if len(ev.Queue) != 32 || strings.Trim(ev.Queue, "0123456789abcdef") != "" {
		return errors.New("queue: want 32 lowercase hex digits")
	}
	if ev.Seq == 0 || ev.Seq > 1<<62 {
		return errors.New("seq: want 1 or more")
	}
	switch ev.Type {
	case TypeHeartbeat:
		if ev.Heartbeat == nil || ev.Alert != nil {
			return errors.New("a heartbeat event carries a heartbeat object only")
		}
		if _, err := ev.Heartbeat.Duration(); err != nil {
			return err
		}
		if len(ev.Heartbeat.Watching) > MaxWatching || len(ev.Heartbeat.Version) > MaxVersion {
			return errors.New("heartbeat: too many paths or too long a version")
		}
		for _, p := range ev.Heartbeat.Watching {
			if len(p) > MaxPath {
				return errors.New("heartbeat: path too long")
			}
		}
	case TypeAlert:
		if ev.Alert == nil || ev.Heartbeat != nil {
			return errors.New("an alert event carries an alert object only")
		}
		if len(ev.Alert) > MaxAlert {
			return fmt.Errorf("alert of %d bytes, at most %d", len(ev.Alert), MaxAlert)
		}
		var c Claim
		if err := json.Unmarshal(ev.Alert, &c); err != nil {
			return fmt.Errorf("alert: %w", err)
		}
	default:
		return fmt.Errorf("type %q: want heartbeat or alert", ev.Type)
	}
	return nil
}

// Duration parses the heartbeat's interval, which must be from
// MinInterval to MaxInterval.
func (h *Heartbeat) Duration() (time.Duration, error) {
	d, err := time.ParseDuration(h.Interval)
	if err != nil || d < MinInterval || d > MaxInterval {
		return 0, fmt.Errorf("heartbeat interval %q: want a duration from 1s to 24h", h.Interval)
	}
	return d, nil
}

// Package alert delivers the watcher's alerts where people and programs
// look for them: one JSON line per alert (detect.Alert's encoding) on
// standard output and appended to an alert log, a message in the system
// log, and a POST to a webhook. It also reads an alert log back, for the
// snapshot health and recovery that must know when an attack was seen.
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
	"sync"
	"time"

	"github.com/kalaja/kalaja/internal/detect"
)

// Options says where alerts go besides the caller's log.
type Options struct {
	Stdout  io.Writer // each alert as a JSON line; nil for none
	LogFile string    // append each alert as a JSON line to this file ("" for none)
	Syslog  bool      // send each alert to the system log (LOG_ALERT, LOG_DAEMON)
	Webhook string    // POST each alert as JSON to this URL ("" for none)
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
}

// webhookTimeout bounds one webhook POST, so a dead endpoint cannot hold up
// the alerts behind it for long.
const webhookTimeout = 10 * time.Second

// Open opens the destinations of o. An alert log that cannot be opened
// for appending, or a system log that cannot be reached, is an error naming
// the option.
func Open(o Options) (*Sinks, error) {
	s := &Sinks{stdout: o.Stdout, webhook: o.Webhook, client: &http.Client{Timeout: webhookTimeout}}
	if o.LogFile != "" {
		f, err := os.OpenFile(o.LogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("alert log: %w", err)
		}
		s.file = f
	}
	if o.Syslog {
		w, err := syslog.New(syslog.LOG_ALERT|syslog.LOG_DAEMON, "kalaja")
		if err != nil {
			s.Close()
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

// Send delivers a to every destination, in turn; a destination that fails
// is reported to log and the others still get the alert. The alert log is
// synced before Send returns, so an alert survives a crash (or a wiper)
// that follows it.
func (s *Sinks) Send(ctx context.Context, a detect.Alert, log *slog.Logger) {
	line, err := json.Marshal(a)
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

// ReadLog reads the alerts of an alert log, oldest first. A missing file
// holds none. A line that does not decode (a torn last write, a line from
// another program) is skipped and counted in bad, so that one bad line
// cannot hide the alerts around it.
func ReadLog(path string) (alerts []detect.Alert, bad int, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("alert log: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var a detect.Alert
		if err := json.Unmarshal(line, &a); err != nil || a.Time.IsZero() {
			bad++
			continue
		}
		alerts = append(alerts, a)
	}
	if err := sc.Err(); err != nil {
		return alerts, bad, fmt.Errorf("alert log %s: %w", path, err)
	}
	return alerts, bad, nil
}

package alert

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/detect"
	"github.com/kalaja/kalaja/internal/event"
	"github.com/kalaja/kalaja/internal/outbox"
)

func TestSinksAndReadLog(t *testing.T) {
	var (
		mu     sync.Mutex
		posted [][]byte
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		posted = append(posted, b)
		mu.Unlock()
	}))
	defer srv.Close()
	logFile := filepath.Join(t.TempDir(), "alerts.jsonl")
	var stdout bytes.Buffer
	s, err := Open(Options{Stdout: &stdout, LogFile: logFile, Webhook: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	sent := []detect.Alert{
		{Time: t0, PID: 42, Command: "locker", Files: []string{"/srv/a.docx"}, Signals: []detect.Hit{{Signal: "entropy", Score: 9, Files: []string{"/srv/a.docx"}}}},
		{Time: t0.Add(time.Minute), PID: 43, Command: "wiper"},
	}
	log := slog.New(slog.DiscardHandler)
	for _, a := range sent {
		s.Send(t.Context(), a, log)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(stdout.Bytes(), []byte("\n")); n != len(sent) {
		t.Errorf("stdout holds %d lines, want %d", n, len(sent))
	}
	if len(posted) != len(sent) {
		t.Errorf("webhook got %d posts, want %d", len(posted), len(sent))
	}
	for i, p := range posted {
		var a detect.Alert
		if err := json.Unmarshal(p, &a); err != nil || a.PID != sent[i].PID {
			t.Errorf("post %d = %s (%v), want alert of pid %d", i, p, err, sent[i].PID)
		}
	}
	// A torn last line (a crash mid-write) and a foreign line are skipped.
	f, err := os.OpenFile(logFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("not an alert\n{\"time\":\"2026-12-06T10:02:00Z\",\"pid\":4")
	f.Close()
	l, err := ReadLog(logFile)
	if err != nil || l.Bad != 2 || len(l.Alerts) != len(sent) {
		t.Fatalf("ReadLog = %d alerts, %d bad, %v; want %d alerts and 2 bad lines", len(l.Alerts), l.Bad, err, len(sent))
	}
	for i, a := range l.Alerts {
		if !a.Time.Equal(sent[i].Time) || a.PID != sent[i].PID || a.Command != sent[i].Command {
			t.Errorf("alert %d read back as %+v, want %+v", i, a, sent[i])
		}
	}
	if got := l.Unresolved(); len(got) != len(sent) {
		t.Errorf("%d unresolved alerts before any resolution, want %d", len(got), len(sent))
	}
	// A recovery between the two alerts resolves the first only.
	r := Resolution{Time: t0.Add(30 * time.Second), Resolved: Resolved{By: "recover", Snapshot: "1a2b3c4d", Paths: []string{"/srv"}}}
	if err := Resolve(logFile, r); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(Options{LogFile: logFile})
	if err != nil {
		t.Fatal(err)
	}
	s2.SendHealing(t.Context(), Healing{Time: t0.Add(2 * time.Second), Healed: Healed{Alert: t0, PID: 42, Restored: 3}}, log)
	s2.Close()
	if l, err = ReadLog(logFile); err != nil || len(l.Resolutions) != 1 || len(l.Alerts) != len(sent) ||
		len(l.Healings) != 1 || l.Healings[0].Healed.Restored != 3 {
		t.Fatalf("ReadLog after Resolve = %+v, %v", l, err)
	}
	if got := l.Unresolved(); len(got) != 1 || got[0].PID != 43 {
		t.Errorf("unresolved after the recovery = %+v, want the second alert only", got)
	}
	if l, err := ReadLog(filepath.Join(t.TempDir(), "none")); err != nil || l.Bad != 0 || len(l.Alerts) != 0 {
		t.Errorf("ReadLog of a missing file = %+v, %v; want nothing", l, err)
	}
}

func TestOpenRefusesUnwritableLog(t *testing.T) {
	if _, err := Open(Options{LogFile: filepath.Join(t.TempDir(), "missing", "alerts.jsonl")}); err == nil {
		t.Fatal("Open of an alert log in a missing folder succeeded")
	}
}

// TestSinksOutbox: each alert is queued for the vault as the line the
// alert log holds; the lines that follow alerts are not.
func TestSinksOutbox(t *testing.T) {
	dir := t.TempDir()
	q, err := outbox.Open(filepath.Join(dir, "outbox"))
	if err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "alerts.jsonl")
	s, err := Open(Options{LogFile: logFile, Outbox: q})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	log := slog.New(slog.DiscardHandler)
	s.Send(t.Context(), detect.Alert{Time: t0, PID: 42, Command: "locker", Files: []string{"/srv/a.docx"}}, log)
	s.SendHealing(t.Context(), Healing{Time: t0, Healed: Healed{Alert: t0, PID: 42}}, log)
	s.Send(t.Context(), detect.Alert{Time: t0.Add(time.Minute), PID: 43, Command: "wiper"}, log)
	var long []string
	for i := range 256 {
		long = append(long, fmt.Sprintf("/srv/%04d/%s", i, strings.Repeat("x", 2000)))
	}
	huge := detect.Alert{Time: t0.Add(2 * time.Minute), PID: 44, Command: "locker", Files: long,
		Signals: []detect.Hit{{Signal: "rename_ext", Score: 9, Files: long, Renames: []detect.Move{{From: long[0], To: long[1]}}}}}
	s.Send(t.Context(), huge, log)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	logged, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(logged), []byte("\n"))
	_, entries, _, err := q.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 4 || len(entries) != 3 {
		t.Fatalf("%d log lines, %d queued events", len(lines), len(entries))
	}
	// The alert too large for the vault goes without its paths.
	var short detect.Alert
	if err := json.Unmarshal(entries[2].Body, &short); err != nil || short.PID != 44 || len(short.Files) != 0 ||
		len(short.Signals) != 1 || short.Signals[0].Signal != "rename_ext" || len(short.Signals[0].Files) != 0 || len(short.Signals[0].Renames) != 0 {
		t.Errorf("huge alert queued as %.200s (%v)", entries[2].Body, err)
	}
	if len(huge.Files) != 256 || len(huge.Signals[0].Files) != 256 || !bytes.Contains(lines[3], []byte(long[255])) {
		t.Error("the huge alert itself was changed")
	}
	for i, want := range [][]byte{lines[0], lines[2]} {
		if e := entries[i]; e.Type != event.TypeAlert || e.Seq != uint64(i+1) || !bytes.Equal(e.Body, want) {
			t.Errorf("event %d: %d %s %s, want the log's line %s", i, e.Seq, e.Type, e.Body, want)
		}
	}
}

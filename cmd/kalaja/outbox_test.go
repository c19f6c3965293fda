package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kalaja/kalaja/internal/detect"
)

// queuedEvent is a line of the host's outbox (docs/design.md, "The host's
// outbox (version 1)").
type queuedEvent struct {
	Queue     string          `json:"queue"`
	Seq       uint64          `json:"seq"`
	Type      string          `json:"type"`
	Alert     json.RawMessage `json:"alert"`
	Heartbeat json.RawMessage `json:"heartbeat"`
}

// readOutbox reads the one outbox queue under the state directory of e:
// its header's acked seq and its pending events.
func readOutbox(t *testing.T, e *testEnv) (acked uint64, events []queuedEvent) {
	t.Helper()
	var state string
	for _, v := range e.vars {
		if s, ok := strings.CutPrefix(v, "KALAJA_STATE_DIR="); ok {
			state = s
		}
	}
	files, _ := filepath.Glob(filepath.Join(state, "outbox", "*", "queue"))
	if len(files) != 1 {
		t.Fatalf("outbox queues under %s: %v, want one", state, files)
	}
	b, err := os.ReadFile(files[0])
	must(t, err)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	var h struct {
		Outbox int    `json:"outbox"`
		Queue  string `json:"queue"`
		Acked  uint64 `json:"acked"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &h); err != nil || h.Outbox != 1 || len(h.Queue) != 32 {
		t.Fatalf("outbox header %q: %v", lines[0], err)
	}
	for _, l := range lines[1:] {
		var ev queuedEvent
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.Queue != h.Queue {
			t.Fatalf("outbox line %q: %v", l, err)
		}
		events = append(events, ev)
	}
	return h.Acked, events
}

// TestWatchOutbox is issue 19's acceptance 3: with the vault (kalaja serve)
// down, a watcher catches ten attacks; their alerts, and heartbeats, wait
// in the host's outbox in order; the watcher restarts, the vault comes
// back, and the queue is delivered: the server acknowledges every event,
// keeps the ten alerts once each, in order, and its ledger records them.
func TestWatchOutbox(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for fanotify")
	}
	if testing.Short() {
		t.Skip("ten attacks")
	}
	base := t.TempDir()
	repoDir, serverDir := filepath.Join(base, "repo"), filepath.Join(base, "server")
	s := startServerAt(t, repoDir, serverDir, "127.0.0.1:0")
	addr := hostPort(t, s.url)
	_, tokenFile := s.addToken(t, "host-1")
	e := s.client(t, tokenFile)
	e.must("init")
	src := filepath.Join(base, "src")
	must(t, os.Mkdir(src, 0o755))
	must(t, os.WriteFile(filepath.Join(src, "f"), []byte("the ledger's first record"), 0o644))
	e.backup(src) // the ledger exists: the server records alerts in it
	s.kill(t)

	const attacks = 10
	protected := filepath.Join(base, "srv")
	for i := range attacks {
		dir := filepath.Join(protected, fmt.Sprint(i))
		must(t, os.MkdirAll(dir, 0o755))
		writeVictims(t, dir, 40)
	}
	// One alert per attack: the user's score is not to add up to alerts of
	// its own.
	watchArgs := []string{"--heartbeat", "1s", "--user-threshold", "1000000", "--raw-devices", "", protected}
	w := startWatch(t, e, watchArgs...)
	waitLine(t, w.stderr, "msg=ready")
	var alerts []string
	for i := range attacks {
		attack := exec.Command("sh", "-c", `for f in *.txt; do head -c 4200 /dev/urandom > "$f"; sleep 0.01; done`)
		attack.Dir = filepath.Join(protected, fmt.Sprint(i))
		attack.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		must(t, attack.Start())
		line := waitLine(t, w.stdout, `"signals"`)
		syscall.Kill(-attack.Process.Pid, syscall.SIGKILL)
		attack.Wait()
		var a detect.Alert
		must(t, json.Unmarshal([]byte(line), &a))
		if !strings.Contains(line, attack.Dir) {
			t.Fatalf("alert %d is not about %s: %s", i, attack.Dir, line)
		}
		alerts = append(alerts, line)
	}
	w.cmd.Process.Signal(syscall.SIGINT)
	if err := w.cmd.Wait(); err != nil {
		t.Fatalf("watch after SIGINT: %v", err)
	}
	for l := range w.stdout {
		if strings.Contains(l, `"signals"`) {
			t.Fatalf("an alert more than the attacks': %s", l)
		}
	}

	// Queued on the host, in order, each once; heartbeats between them,
	// not one per second.
	acked, events := readOutbox(t, e)
	var queued []string
	heartbeats := 0
	for i, ev := range events {
		if ev.Seq != acked+uint64(i)+1 {
			t.Fatalf("event %d has seq %d, want %d", i, ev.Seq, acked+uint64(i)+1)
		}
		switch ev.Type {
		case "alert":
			queued = append(queued, string(ev.Alert))
		case "heartbeat":
			heartbeats++
			var hb struct {
				Interval string   `json:"interval"`
				Watching []string `json:"watching"`
				Version  string   `json:"version"`
			}
			if err := json.Unmarshal(ev.Heartbeat, &hb); err != nil || hb.Interval != "1s" ||
				len(hb.Watching) != 1 || hb.Watching[0] != protected || hb.Version != version {
				t.Errorf("heartbeat %s: %v", ev.Heartbeat, err)
			}
		default:
			t.Fatalf("event of type %q", ev.Type)
		}
	}
	if acked != 0 || strings.Join(queued, "\n") != strings.Join(alerts, "\n") || heartbeats == 0 || heartbeats > attacks+1 {
		t.Fatalf("outbox: acked %d, %d heartbeats, alerts:\n%s\nwant the watcher's:\n%s", acked, heartbeats,
			strings.Join(queued, "\n"), strings.Join(alerts, "\n"))
	}
	lastAlert := events[len(events)-1].Seq
	for events[len(events)-1].Type != "alert" {
		events = events[:len(events)-1]
		lastAlert = events[len(events)-1].Seq
	}

	// The watcher restarts, still without its vault; then the vault
	// comes back.
	w = startWatch(t, e, watchArgs...)
	waitLine(t, w.stderr, "msg=ready")
	s = startServerAt(t, repoDir, serverDir, addr)
	waitLine(t, w.stderr, "queued events delivered")
	acked, _ = readOutbox(t, e)
	if acked < lastAlert {
		t.Fatalf("the vault acknowledged seq %d, want at least %d (the last alert's)", acked, lastAlert)
	}
	w.cmd.Process.Signal(syscall.SIGINT)
	if err := w.cmd.Wait(); err != nil {
		t.Fatalf("watch after SIGINT: %v", err)
	}
	if strings.Contains(s.log(), "gap") {
		t.Errorf("the server saw a gap in the host's events:\n%s", grepLines(s.log(), "gap"))
	}

	// What the vault kept (SERVER-DIR/fleet/events, a line per event
	// applied) holds the ten alerts once, in order, as the host's from
	// its token; the ledger binds each by its hash, in the same order.
	kept, err := os.ReadFile(filepath.Join(serverDir, "fleet", "events"))
	must(t, err)
	var got, sums []string
	for _, l := range strings.Split(strings.TrimSpace(string(kept)), "\n") {
		var k struct {
			Event string          `json:"event"`
			Host  string          `json:"host"`
			Alert json.RawMessage `json:"alert"`
		}
		must(t, json.Unmarshal([]byte(l), &k))
		if k.Event != "alert" {
			continue
		}
		if k.Host != "host-1" {
			t.Errorf("kept alert of host %q, want the token's host-1", k.Host)
		}
		got = append(got, string(k.Alert))
		sum := sha256.Sum256([]byte(l))
		sums = append(sums, hex.EncodeToString(sum[:]))
	}
	if strings.Join(got, "\n") != strings.Join(alerts, "\n") {
		t.Fatalf("the vault kept the alerts:\n%s\nwant the watcher's, once each, in order:\n%s",
			strings.Join(got, "\n"), strings.Join(alerts, "\n"))
	}
	var recs []struct {
		Kind string `json:"kind"`
		ID   string `json:"id"`
		Host string `json:"host"`
	}
	must(t, json.Unmarshal([]byte(e.must("ledger", "show", "--all", "--json").stdout), &recs))
	var logged []string
	for _, r := range recs {
		if r.Kind == "alert" {
			logged = append(logged, r.ID)
			if r.Host != "host-1" {
				t.Errorf("alert record of host %q, want the token's host-1", r.Host)
			}
		}
	}
	if strings.Join(logged, " ") != strings.Join(sums, " ") {
		t.Errorf("the ledger's alert records %v, want the kept alerts' hashes %v", logged, sums)
	}
}

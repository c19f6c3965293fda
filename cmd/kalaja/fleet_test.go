package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestVaultSeesTheFleet is issue 19's acceptance 1: a real kalaja serve,
// a host whose watcher catches an attack, a host whose watcher is killed,
// and a host that never backed up. The alert and the silence reach the
// vault through the hosts' own watchers and appear in the ledger (verify
// passes once a backup has signed them), in the metrics and on the
// dashboard, each host under the name of its token.
func TestVaultSeesTheFleet(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for fanotify")
	}
	s := startServer(t, "--check-every", "200ms")
	_, file1 := s.addToken(t, "host-1")
	_, file2 := s.addToken(t, "host-2")
	s.addToken(t, "host-3") // never backs up: overdue
	dash := strings.TrimSpace(envAt(t, "").must("serve", "token", "add", "--dashboard", "ops", "--server-dir", s.dir).stdout)

	base := t.TempDir()
	attacked, killed := filepath.Join(base, "srv-1"), filepath.Join(base, "srv-2")
	for _, d := range []string{attacked, killed} {
		must(t, os.Mkdir(d, 0o755))
		writeVictims(t, d, 40)
	}
	e1, e2 := s.client(t, file1), s.client(t, file2)
	e1.must("init")
	e1.must("backup", "--host", "host-1", attacked)
	e2.must("backup", "--host", "host-2", killed)

	w1 := startWatch(t, e1, "--heartbeat", "1s", "--raw-devices", "", attacked)
	w2 := startWatch(t, e2, "--heartbeat", "1s", "--raw-devices", "", killed)
	waitLine(t, w1.stderr, "msg=ready")
	waitLine(t, w2.stderr, "msg=ready")

	attack := exec.Command("sh", "-c", `for f in *.txt; do head -c 4200 /dev/urandom > "$f"; sleep 0.01; done`)
	attack.Dir = attacked
	attack.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	must(t, attack.Start())
	waitLine(t, w1.stdout, `"signals"`)
	syscall.Kill(-attack.Process.Pid, syscall.SIGKILL)
	attack.Wait()
	// An attacker with root stops the watcher first.
	must(t, w2.cmd.Process.Kill())
	w2.cmd.Wait()

	// The ledger: host-1's alert, then host-2's silence, each under its
	// token's host. Both arrive on their own: the alert through host-1's
	// outbox, the silence when the vault's check finds three heartbeat
	// intervals without one.
	vault := func() string {
		var rows []struct {
			Kind string `json:"kind"`
			Host string `json:"host"`
		}
		must(t, json.Unmarshal([]byte(e1.must("ledger", "show", "--json").stdout), &rows))
		var got []string
		for _, r := range rows {
			switch r.Kind {
			case "alert", "silent", "back":
				got = append(got, r.Host+":"+r.Kind)
			}
		}
		return strings.Join(got, " ")
	}
	deadline := time.Now().Add(2 * time.Minute)
	for got := vault(); got != "host-1:alert host-2:silent"; got = vault() {
		if time.Now().After(deadline) {
			t.Fatalf("vault records %q, want host-1's alert and host-2's silence\nserver log:\n%s", got, s.log())
		}
		time.Sleep(200 * time.Millisecond) // delivery and the silence check run in other processes; nothing signals them
	}
	// The next backup signs the vault's records into a checkpoint; verify
	// then covers them.
	w1.cmd.Process.Signal(syscall.SIGINT)
	w1.cmd.Wait()
	e1.must("backup", "--host", "host-1", attacked)
	e1.must("verify")

	hc := s.https(t)
	get := func(path string, auth bool) string {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.url+path, nil)
		must(t, err)
		if auth {
			req.SetBasicAuth("ops", dash)
		}
		resp, err := hc.Do(req)
		must(t, err)
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b.String())
		}
		return b.String()
	}

	// The metrics.
	metrics := get("metrics", false)
	for _, want := range []string{
		`kalaja_fleet_alerts_total{host="host-1"} 1`,
		`kalaja_fleet_alerts_total{host="host-2"} 0`,
		`kalaja_fleet_host_silent{host="host-1"} 0`,
		`kalaja_fleet_host_silent{host="host-2"} 1`,
		`kalaja_fleet_host_backup_overdue{host="host-1"} 0`,
		`kalaja_fleet_host_backup_overdue{host="host-3"} 1`,
		`kalaja_fleet_hosts{watcher="silent"} 1`,
	} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(metrics, "kalaja_fleet_"))
		}
	}

	// The dashboard: the attacked host with its alert, the silent host,
	// the overdue host; the alert with the attacked files.
	page := get("dashboard/", true)
	row := func(host string) string {
		m := regexp.MustCompile(`(?s)<tr class="[^"]*" data-host="` + regexp.QuoteMeta(host) + `">.*?</tr>`).FindString(page)
		if m == "" {
			t.Fatalf("the dashboard has no row for %s:\n%s", host, page)
		}
		return m
	}
	for host, want := range map[string][]string{
		"host-1": {`<span class="badge bad">1</span>`, `class="bad"`},
		"host-2": {`>silent</span>`, `class="bad"`},
		"host-3": {`>overdue</span>`, `>never</span>`},
	} {
		r := row(host)
		for _, w := range want {
			if !strings.Contains(r, w) {
				t.Errorf("the dashboard's row of %s lacks %s:\n%s", host, w, r)
			}
		}
	}
	if alerts := get("dashboard/alerts", true); !strings.Contains(alerts, filepath.Join(attacked, "")) {
		t.Errorf("the dashboard's alerts do not name the attacked files under %s:\n%s", attacked, alerts)
	}
}

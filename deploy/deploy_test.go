// Package deploy holds the files operators install next to the kalaja
// binary: systemd units (systemd/) and Prometheus alerting rules
// (prometheus/). Its tests check them with the tools that read them.
package deploy

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/fleet"
	"github.com/kalaja/kalaja/internal/server"
	"github.com/kalaja/kalaja/internal/store/local"
)

// tool returns the path of an outside program the test needs. Outside CI
// the test skips when it is missing; in CI it fails (scripts/test.sh
// installs promtool with scripts/promtool.sh).
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI: %s is missing and this test must run: %v", name, err)
		}
		t.Skipf("%s is missing: %v", name, err)
	}
	return p
}

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestPrometheusRules checks the example rules with promtool and runs
// their unit tests (prometheus/kalaja.rules.test.yml).
func TestPrometheusRules(t *testing.T) {
	promtool := tool(t, "promtool")
	run(t, "prometheus", promtool, "check", "rules", "kalaja.rules.yml")
	run(t, "prometheus", promtool, "test", "rules", "kalaja.rules.test.yml")
}

// TestPrometheusRulesUseServedMetrics checks that every kalaja_ metric the
// rules name is one the server serves, so that a renamed metric cannot
// leave a rule that never fires.
func TestPrometheusRulesUseServedMetrics(t *testing.T) {
	rules, err := os.ReadFile(filepath.Join("prometheus", "kalaja.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := local.Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := server.OpenTokens(filepath.Join(t.TempDir(), "tokens"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	f := &fullFleet{
		hosts: []fleet.Host{{Name: "web", Watcher: "watching", LastHeartbeat: now, Interval: time.Minute,
			LastSnapshot: &fleet.SnapshotInfo{Time: now}}},
		storage: fleet.Storage{Free: 1, FullBy: now},
	}
	srv, err := server.New(server.Options{Store: st, Tokens: tokens, Fleet: f})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	served := map[string]bool{}
	for _, line := range strings.Split(w.Body.String(), "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			served[strings.Fields(name)[0]] = true
		}
	}
	var used []string
	for _, line := range strings.Split(string(rules), "\n") {
		if strings.Contains(line, "expr:") {
			used = append(used, regexp.MustCompile(`kalaja_[a-z_]+`).FindAllString(line, -1)...)
		}
	}
	slices.Sort(used)
	used = slices.Compact(used)
	if len(used) == 0 {
		t.Fatal("the rules name no kalaja_ metric")
	}
	for _, m := range used {
		if !served[m] {
			t.Errorf("the rules use %s, which the server does not serve", m)
		}
	}
}

// fullFleet is a fleet whose every metric has a value.
type fullFleet struct {
	hosts   []fleet.Host
	storage fleet.Storage
}

func (f *fullFleet) Hosts() []fleet.Host    { return f.hosts }
func (f *fullFleet) Storage() fleet.Storage { return f.storage }

// units are the systemd units in systemd/.
var units = []string{"kalaja-serve.service", "kalaja-watch.service", "kalaja-backup.service", "kalaja-backup.timer"}

// TestSystemdUnits runs systemd-analyze verify on copies of the units whose
// ExecStart points at a kalaja built from this tree (verify wants the
// binary to exist), fails on any complaint (an unknown or misspelt setting
// is only a warning to verify), checks that kalaja accepts each ExecStart's
// subcommand and flags, and logs systemd-analyze security's exposure score
// of each service.
func TestSystemdUnits(t *testing.T) {
	analyze := tool(t, "systemd-analyze")
	if testing.Short() {
		t.Skip("builds kalaja")
	}
	dir := t.TempDir()
	kalaja := filepath.Join(dir, "kalaja")
	run(t, "..", "go", "build", "-o", kalaja, "./cmd/kalaja")
	for _, u := range units {
		b, err := os.ReadFile(filepath.Join("systemd", u))
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("/usr/local/bin/kalaja"), []byte(kalaja))
		if err := os.WriteFile(filepath.Join(dir, u), b, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if args, ok := strings.CutPrefix(line, "ExecStart="+kalaja+" "); ok {
				run(t, dir, kalaja, append(strings.Fields(args), "--help")...)
			}
		}
	}
	cmd := exec.Command(analyze, append([]string{"verify"}, units...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, u := range units {
		if !strings.HasSuffix(u, ".service") {
			continue
		}
		cmd := exec.Command(analyze, "security", "--offline=true", "./"+u)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err != nil {
			t.Logf("systemd-analyze security %s: %v (%s)", u, err, lines[len(lines)-1])
			continue
		}
		t.Logf("systemd-analyze security: %s", lines[len(lines)-1])
	}
}

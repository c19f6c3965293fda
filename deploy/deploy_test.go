// Package deploy holds the files operators install next to the kalaja
// binary: systemd units (systemd/) and Prometheus alerting rules
// (prometheus/). Its tests check them with the tools that read them.
package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
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
// rules name is one the server defines (a quoted name in a non-test source
// file of internal/server), so that a renamed metric cannot leave a rule
// that never fires.
func TestPrometheusRulesUseServedMetrics(t *testing.T) {
	rules, err := os.ReadFile(filepath.Join("prometheus", "kalaja.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	sources, err := filepath.Glob(filepath.Join("..", "internal", "server", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`kalaja_[a-z_]+`)
	quoted := regexp.MustCompile(`"(kalaja_[a-z_]+)"`)
	served := map[string]bool{}
	for _, f := range sources {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range quoted.FindAllSubmatch(b, -1) {
			served[string(m[1])] = true
		}
	}
	var used []string
	for _, line := range strings.Split(string(rules), "\n") {
		if strings.Contains(line, "expr:") {
			used = append(used, name.FindAllString(line, -1)...)
		}
	}
	slices.Sort(used)
	used = slices.Compact(used)
	if len(used) == 0 || len(served) == 0 {
		t.Fatalf("the rules name %d kalaja_ metrics, the server defines %d", len(used), len(served))
	}
	for _, m := range used {
		if !served[m] {
			t.Errorf("the rules use %s, which the server does not define", m)
		}
	}
}

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

package main

import (
	"fmt"
	"strings"
)

// serveSetup is one setup of bench/serve.sh: the tool column names the
// program, the phase column the setup; base is the phase of the same work
// on a local repository that its throughput is compared with ("" for the
// local setups themselves).
type serveSetup struct{ tool, phase, base, label string }

// backupSetups and restoreSetups are the setups of bench/serve.sh in the
// order they are reported.
var (
	backupSetups = []serveSetup{
		{"kalaja", "local", "", "kalaja, local repository"},
		{"kalaja", "serve", "local", "kalaja, through kalaja serve"},
		{"kalaja", "fleet", "local", "kalaja, concurrent clients through kalaja serve"},
		{"restic", "local", "", "restic, local repository"},
		{"restic", "rest-server", "local", "restic, through rest-server --append-only"},
	}
	restoreSetups = []serveSetup{
		{"kalaja", "restore-local", "", "kalaja, local repository"},
		{"kalaja", "restore-serve", "restore-local", "kalaja, through kalaja serve"},
	}
)

// serveTargets are the least throughput of kalaja's work through kalaja
// serve, as a fraction of the same work on a local repository: issue 4
// ("Load") for a backup, "Back in minutes" for a restore.
var serveTargets = []struct {
	name          string
	local, served string
	min           float64
}{
	{"Backup", "local", "serve", 0.70},
	{"Restore", "restore-local", "restore-serve", 0.80},
}

// renderServe writes the Markdown report of bench/serve.sh into w and
// returns its verdict on the serve targets: FAIL when any measured target
// fails, INCOMPLETE when a target lacks its local or serve setup, PASS
// otherwise.
func renderServe(w *strings.Builder, s summary) string {
	fmt.Fprintf(w, "### Medians over %d repetition(s)\n\n", s.reps())
	fmt.Fprintln(w, "Backup: the first backup of the whole source into a new repository; restore: the")
	fmt.Fprintln(w, "restore of one snapshot of it into an empty directory, from a local repository or")
	fmt.Fprintln(w, "through kalaja serve serving that repository. Throughput is source size / wall time")
	fmt.Fprintln(w, "in MB/s (10^6 bytes); for concurrent clients, the whole source over the time from the")
	fmt.Fprintln(w, "first start to the last exit. Spread is the fastest and slowest repetition. Client")
	fmt.Fprintln(w, "RSS is that of the largest client process; server RSS is the server's VmHWM (peak")
	fmt.Fprintln(w, "resident set) over its life.")
	for _, g := range []struct {
		title  string
		setups []serveSetup
	}{{"Backup", backupSetups}, {"Restore", restoreSetups}} {
		if !s.hasAny(g.setups) {
			continue
		}
		fmt.Fprintf(w, "\n#### %s\n\n", g.title)
		fmt.Fprintln(w, "| setup | time s | spread s | MB/s | client peak RSS MiB | server peak RSS MiB | repo MiB | source MiB |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
		for _, c := range g.setups {
			st, ok := s.get(c.tool, c.phase)
			if !ok {
				continue
			}
			server := "—"
			if st.serverRSSKiB > 0 {
				server = fmt.Sprintf("%.0f", st.serverRSSKiB/1024)
			}
			fmt.Fprintf(w, "| %s | %.2f | %.2f–%.2f | %.1f | %.0f | %s | %.1f | %.1f |\n", c.label, st.seconds,
				st.minSeconds, st.maxSeconds, st.throughput(), st.rssKiB/1024, server, st.repoBytes/mib, st.sourceBytes/mib)
		}
	}
	noise(w, s)

	fmt.Fprintln(w)
	fmt.Fprintln(w, "### Ratios to a local repository (throughput)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| work | setup | throughput × local |")
	fmt.Fprintln(w, "|---|---|---:|")
	for _, g := range []struct {
		work   string
		setups []serveSetup
	}{{"backup", backupSetups}, {"restore", restoreSetups}} {
		for _, c := range g.setups {
			st, ok := s.get(c.tool, c.phase)
			base, okBase := s.get(c.tool, c.base)
			if ok && okBase && c.base != "" {
				fmt.Fprintf(w, "| %s | %s | %.2f |\n", g.work, c.label, st.throughput()/base.throughput())
			}
		}
	}

	fmt.Fprintln(w)
	failed, unchecked := false, false
	for _, t := range serveTargets {
		local, okL := s.get("kalaja", t.local)
		served, okS := s.get("kalaja", t.served)
		if !okL || !okS {
			unchecked = true
			fmt.Fprintf(w, "%s through kalaja serve against local: n/a (%s not measured): INCOMPLETE\n",
				t.name, missingSetups(map[string]bool{t.local: okL, t.served: okS}, t.local, t.served))
			continue
		}
		ratio := served.throughput() / local.throughput()
		failed = failed || ratio < t.min
		fmt.Fprintf(w, "%s through kalaja serve: %.1f MB/s, local: %.1f MB/s, ratio %.3f (target >= %.2f): %s\n",
			t.name, served.throughput(), local.throughput(), ratio, t.min, verdict(ratio >= t.min))
	}
	for _, p := range []struct{ phase, label string }{
		{"serve", "one client's backup"}, {"fleet", "concurrent clients' backups"}, {"restore-serve", "one client's restore"},
	} {
		if st, ok := s.get("kalaja", p.phase); ok && st.serverRSSKiB > 0 {
			fmt.Fprintf(w, "Server peak memory, %s: %.0f MiB\n", p.label, st.serverRSSKiB/1024)
		}
	}
	switch {
	case failed:
		return "FAIL"
	case unchecked:
		return "INCOMPLETE"
	}
	return "PASS"
}

// hasAny reports whether any of setups was measured.
func (s summary) hasAny(setups []serveSetup) bool {
	for _, c := range setups {
		if _, ok := s.get(c.tool, c.phase); ok {
			return true
		}
	}
	return false
}

// missingSetups lists, of phases, those measured does not hold true.
func missingSetups(measured map[string]bool, phases ...string) string {
	var m []string
	for _, p := range phases {
		if !measured[p] {
			m = append(m, p)
		}
	}
	return strings.Join(m, ", ")
}

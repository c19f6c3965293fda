package main

import (
	"fmt"
	"strings"
)

// serveSetups are the phases of bench/serve.sh in the order they are
// reported: the tool column names the program, the phase column the setup.
var serveSetups = []struct{ tool, phase, label string }{
	{"kalaja", "local", "kalaja, local repository"},
	{"kalaja", "serve", "kalaja, through kalaja serve"},
	{"kalaja", "fleet", "kalaja, concurrent clients through kalaja serve"},
	{"restic", "local", "restic, local repository"},
	{"restic", "rest-server", "restic, through rest-server --append-only"},
}

// serveTarget is the least throughput of a backup through kalaja serve, as
// a fraction of a backup to a local repository (issue 4: within 30%).
const serveTarget = 0.70

// renderServe writes the Markdown report of bench/serve.sh into w and
// returns its verdict on the serve target: PASS, FAIL, or INCOMPLETE when
// kalaja's local or serve setup was not measured.
func renderServe(w *strings.Builder, s summary) string {
	fmt.Fprintf(w, "### Medians over %d repetition(s)\n\n", s.reps())
	fmt.Fprintln(w, "First backup of the whole source into a new repository. Throughput is source size")
	fmt.Fprintln(w, "/ wall time in MB/s (10^6 bytes); for concurrent clients, the whole source over the")
	fmt.Fprintln(w, "time from the first start to the last exit. Client RSS is that of the largest client")
	fmt.Fprintln(w, "process; server RSS is the server's VmHWM (peak resident set) over its life.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| setup | time s | MB/s | client peak RSS MiB | server peak RSS MiB | repo MiB | source MiB |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
	for _, c := range serveSetups {
		st, ok := s.get(c.tool, c.phase)
		if !ok {
			continue
		}
		server := "—"
		if st.serverRSSKiB > 0 {
			server = fmt.Sprintf("%.0f", st.serverRSSKiB/1024)
		}
		fmt.Fprintf(w, "| %s | %.2f | %.1f | %.0f | %s | %.1f | %.1f |\n", c.label,
			st.seconds, st.throughput(), st.rssKiB/1024, server, st.repoBytes/mib, st.sourceBytes/mib)
	}
	noise(w, s)

	fmt.Fprintln(w)
	fmt.Fprintln(w, "### Ratios to a local repository (throughput)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| setup | throughput × local |")
	fmt.Fprintln(w, "|---|---:|")
	for _, c := range serveSetups {
		st, ok := s.get(c.tool, c.phase)
		base, okBase := s.get(c.tool, "local")
		if ok && okBase && c.phase != "local" {
			fmt.Fprintf(w, "| %s | %.2f |\n", c.label, st.throughput()/base.throughput())
		}
	}

	fmt.Fprintln(w)
	overall := "INCOMPLETE"
	local, okL := s.get("kalaja", "local")
	served, okS := s.get("kalaja", "serve")
	if okL && okS {
		ratio := served.throughput() / local.throughput()
		overall = verdict(ratio >= serveTarget)
		fmt.Fprintf(w, "Backup through kalaja serve: %.1f MB/s, local: %.1f MB/s, ratio %.3f (target >= %.2f): %s\n",
			served.throughput(), local.throughput(), ratio, serveTarget, overall)
	} else {
		fmt.Fprintf(w, "Backup through kalaja serve against local: n/a (%s not measured): %s\n",
			missingSetups(okL, okS), overall)
	}
	for _, p := range []struct{ phase, label string }{{"serve", "one client"}, {"fleet", "concurrent clients"}} {
		if st, ok := s.get("kalaja", p.phase); ok && st.serverRSSKiB > 0 {
			fmt.Fprintf(w, "Server peak memory, %s: %.0f MiB\n", p.label, st.serverRSSKiB/1024)
		}
	}
	return overall
}

func missingSetups(local, serve bool) string {
	switch {
	case !local && !serve:
		return "local, serve"
	case !local:
		return "local"
	}
	return "serve"
}

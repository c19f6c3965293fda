package main

import (
	"fmt"
	"strings"
)

const mib = 1 << 20

// noisyCores is the other_cpu level from which the report flags noise.
const noisyCores = 0.25

// render writes the Markdown report into w (main writes it out, checked)
// and returns the overall verdict: PASS when every target passed, FAIL when
// any failed, otherwise INCOMPLETE (some target could not be checked for
// lack of measurements).
func render(w *strings.Builder, s summary) string {
	fmt.Fprintf(w, "### Medians over %d repetition(s)\n\n", s.reps())
	fmt.Fprintln(w, "Throughput is source size / wall time in MB/s (10^6 bytes), for the incremental")
	fmt.Fprintln(w, "backup the size of the whole source, as restic reports it. Repository size is")
	fmt.Fprintln(w, "measured after the backup (`du -sb`); for restore it is the repository restored from.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| phase | tool | time s | MB/s | peak RSS MiB | repo MiB | source MiB |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|")
	for _, p := range phases {
		for _, t := range s.tools {
			st, ok := s.get(t, p.key)
			if !ok {
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %.2f | %.1f | %.0f | %.1f | %.1f |\n", p.label, t,
				st.seconds, st.throughput(), st.rssKiB/1024, st.repoBytes/mib, st.sourceBytes/mib)
		}
	}

	noise(w, s)

	if _, ok := s.by["kalaja"]; ok && len(s.tools) > 1 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "### kalaja / peer")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Throughput ratio > 1 means kalaja is faster; memory and size ratios < 1 mean kalaja is smaller.")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| phase | peer | throughput × | peak RSS × | repo size × |")
		fmt.Fprintln(w, "|---|---|---:|---:|---:|")
		for _, p := range phases {
			k, ok := s.get("kalaja", p.key)
			if !ok {
				continue
			}
			for _, t := range s.tools[1:] {
				o, ok := s.get(t, p.key)
				if !ok {
					continue
				}
				size := fmt.Sprintf("%.2f", k.repoBytes/o.repoBytes)
				if p.key == "restore" {
					size = "—"
				}
				fmt.Fprintf(w, "| %s | %s | %.2f | %.2f | %s |\n", p.label, t,
					k.throughput()/o.throughput(), k.rssKiB/o.rssKiB, size)
			}
		}
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "### Targets (kalaja vs restic)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | kalaja | restic | ratio | result |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---|")
	failed, unchecked := false, false
	for _, c := range checks() {
		k, okK := s.get("kalaja", c.phase)
		r, okR := s.get("restic", c.phase)
		if !okK || !okR {
			unchecked = true
			fmt.Fprintf(w, "| %s | — | — | — | n/a (%s not measured) |\n", c.name, missing(okK, okR))
			continue
		}
		kv, rv := c.value(k), c.value(r)
		ratio := kv / rv
		pass := ratio >= c.min
		if c.lowerIsBetter {
			pass = ratio <= c.max
		}
		failed = failed || !pass
		fmt.Fprintf(w, "| %s | %s | %s | %.3f | %s |\n", c.name, c.format(kv), c.format(rv), ratio, verdict(pass))
	}
	overall := "PASS"
	switch {
	case failed:
		overall = "FAIL"
	case unchecked:
		overall = "INCOMPLETE"
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Overall: %s\n", overall)
	return overall
}

// noise writes how busy other work kept the machine, when it was measured.
func noise(w *strings.Builder, s summary) {
	if s.maxOther > 0 {
		fmt.Fprintf(w, "\nMost CPU used by other work during one measurement: %.2f cores", s.maxOther)
		if s.maxOther >= noisyCores {
			fmt.Fprint(w, " — the machine was shared, these numbers are noisy")
		}
		fmt.Fprintln(w)
	}
}

func missing(kalaja, restic bool) string {
	var m []string
	if !kalaja {
		m = append(m, "kalaja")
	}
	if !restic {
		m = append(m, "restic")
	}
	return strings.Join(m, ", ")
}

func verdict(pass bool) string {
	if pass {
		return "PASS"
	}
	return "FAIL"
}

// check is one target: kalaja's value over restic's must be >= min, or
// <= max when lowerIsBetter.
type check struct {
	name          string
	phase         string
	value         func(stat) float64
	format        func(float64) string
	lowerIsBetter bool
	min, max      float64
}

func checks() []check {
	mbps := func(st stat) float64 { return st.throughput() }
	fmtMBps := func(v float64) string { return fmt.Sprintf("%.1f MB/s", v) }
	speedup := func(st stat) float64 { return 1 / st.seconds }
	fmtSpeed := func(v float64) string { return fmt.Sprintf("%.2f s", 1/v) }
	repo := func(st stat) float64 { return st.repoBytes }
	fmtMiB := func(v float64) string { return fmt.Sprintf("%.1f MiB", v/mib) }
	rss := func(st stat) float64 { return st.rssKiB }
	fmtRSS := func(v float64) string { return fmt.Sprintf("%.0f MiB", v/1024) }
	cs := []check{
		{name: "first backup throughput >= 2x restic", phase: "first", value: mbps, format: fmtMBps, min: 2},
		{name: "incremental backup >= 2x faster than restic", phase: "incr", value: speedup, format: fmtSpeed, min: 2},
		{name: "restore throughput >= 2x restic", phase: "restore", value: mbps, format: fmtMBps, min: 2},
		{name: "repository size <= restic after first backup", phase: "first", value: repo, format: fmtMiB, lowerIsBetter: true, max: 1},
		{name: "repository size <= restic after incremental", phase: "incr", value: repo, format: fmtMiB, lowerIsBetter: true, max: 1},
	}
	for _, p := range phases {
		cs = append(cs, check{name: "peak memory <= restic, " + p.label, phase: p.key, value: rss, format: fmtRSS, lowerIsBetter: true, max: 1})
	}
	return cs
}

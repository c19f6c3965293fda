// Command report turns the raw measurements of bench/run.sh into a Markdown
// table of medians per tool and phase, ratios of kalaja to its peers, and a
// PASS/FAIL check against the performance targets. With -serve it reports
// those of bench/serve.sh instead: backup and restore throughput and memory
// by setup (phase local, serve, fleet, rest-server, restore-local or
// restore-serve) and the checks that through kalaja serve a backup keeps 70%
// of the local throughput and a restore 80%.
//
//	report [-strict] [-serve] [results.tsv]
//
// The input is tab-separated with a header line naming at least the columns
// tool, rep, phase, seconds, peak_rss_kib, repo_bytes and source_bytes; phase
// is one of first, incr or restore. An optional other_cpu column (cores kept
// busy by other work while the command ran) flags noisy runs; an optional
// server_rss_kib column is the server's peak RSS. With no file argument it
// reads stdin.
// With -strict it exits 1 unless every target is checked and passes.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	strict := flag.Bool("strict", false, "exit 1 unless every target passes")
	serve := flag.Bool("serve", false, "report the measurements of bench/serve.sh")
	flag.Parse()
	in := io.Reader(os.Stdin)
	if flag.NArg() > 1 {
		fmt.Fprintln(os.Stderr, "usage: report [-strict] [-serve] [results.tsv]")
		os.Exit(2)
	}
	if flag.NArg() == 1 {
		f, err := os.Open(flag.Arg(0))
		if err != nil {
			fmt.Fprintln(os.Stderr, "report:", err)
			os.Exit(1)
		}
		defer func() { _ = f.Close() }() // read only
		in = f
	}
	rows, err := parse(in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	r := render
	if *serve {
		r = renderServe
	}
	var out strings.Builder
	verdict := r(&out, summarize(rows))
	if _, err := os.Stdout.WriteString(out.String()); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	if verdict != "PASS" && *strict {
		os.Exit(1)
	}
}

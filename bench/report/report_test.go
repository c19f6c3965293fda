package main

import (
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

const header = "tool\trep\tphase\tseconds\tpeak_rss_kib\trepo_bytes\tsource_bytes\n"

// measurements builds rows for kalaja and restic in every phase, kalaja
// taking kalajaSecs seconds where restic takes 10, everything else equal.
func measurements(kalajaSecs string) string {
	var b strings.Builder
	b.WriteString(header)
	for _, p := range []string{"first", "incr", "restore"} {
		for _, rep := range []string{"1", "2", "3"} {
			b.WriteString("restic\t" + rep + "\t" + p + "\t10\t1000\t500\t1000000\n")
			b.WriteString("kalaja\t" + rep + "\t" + p + "\t" + kalajaSecs + "\t1000\t500\t1000000\n")
		}
	}
	return b.String()
}

func TestRender(t *testing.T) {
	tests := []struct {
		name, in, verdict string
		contains          []string
	}{
		{"fast", measurements("4"), "PASS", []string{"| first backup | kalaja | 4.00 | 0.2 |", "| restore | restic | 2.50 |"}},
		{"slow", measurements("6"), "FAIL", []string{"| first backup throughput >= 2x restic | 0.2 MB/s | 0.1 MB/s | 1.667 | FAIL |"}},
		{"noisy", "tool\trep\tphase\tseconds\tpeak_rss_kib\trepo_bytes\tsource_bytes\tother_cpu\n" +
			"restic\t1\tfirst\t10\t1000\t500\t1000000\t0.9\n", "INCOMPLETE", []string{"0.90 cores — the machine was shared"}},
		{"no kalaja", header + "restic\t1\tfirst\t10\t1000\t500\t1000000\nborg\t1\tfirst\t8\t900\t600\t1000000\n",
			"INCOMPLETE", []string{"n/a (kalaja not measured)", "| first backup | borg | 8.00 |"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkReport(t, render, tt.in, tt.verdict, tt.contains) })
	}
}

func TestParseErrors(t *testing.T) {
	tests := map[string]string{
		"empty":          "",
		"missing column": "tool\trep\tphase\n",
		"bad number":     header + "restic\t1\tfirst\tfast\t1\t1\t1\n",
		"short line":     header + "restic\t1\tfirst\n",
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := parse(strings.NewReader(in)); err == nil {
				t.Error("parse succeeded")
			}
		})
	}
}

func TestRenderServe(t *testing.T) {
	const serveHeader = "tool\trep\tphase\tseconds\tpeak_rss_kib\trepo_bytes\tsource_bytes\tother_cpu\tserver_rss_kib\n"
	// serveRows has kalaja back up in 10 s locally and serveSecs through
	// the server, and restore in 5 s (4 to 6) locally and restoreSecs
	// through the server.
	serveRows := func(serveSecs, restoreSecs string) string {
		var b strings.Builder
		b.WriteString(serveHeader)
		for _, rep := range []string{"4", "5", "6"} {
			b.WriteString("kalaja\t" + rep + "\tlocal\t10\t2048\t500\t1000000\t0\t0\n")
			b.WriteString("kalaja\t" + rep + "\tserve\t" + serveSecs + "\t2048\t500\t1000000\t0\t" + rep + "0240\n")
			b.WriteString("kalaja\t" + rep + "\tfleet\t20\t1024\t500\t1000000\t0.1\t51200\n")
			b.WriteString("kalaja\t" + rep + "\trestore-local\t" + rep + "\t1024\t500\t1000000\t0\t0\n")
			b.WriteString("kalaja\t" + rep + "\trestore-serve\t" + restoreSecs + "\t1024\t500\t1000000\t0\t30720\n")
		}
		return b.String()
	}
	tests := []struct {
		name, in, verdict string
		contains          []string
	}{
		{"fast", serveRows("12", "6"), "PASS", []string{
			"| kalaja, through kalaja serve | 12.00 | 12.00–12.00 | 0.1 | 2 | 49 | 0.0 | 1.0 |",
			"| kalaja, local repository | 10.00 | 10.00–10.00 | 0.1 | 2 | — |",
			"| kalaja, local repository | 5.00 | 4.00–6.00 | 0.2 | 1 | — |",
			"| backup | kalaja, concurrent clients through kalaja serve | 0.50 |",
			"| restore | kalaja, through kalaja serve | 0.83 |",
			"Backup through kalaja serve: 0.1 MB/s, local: 0.1 MB/s, ratio 0.833 (target >= 0.70): PASS",
			"ratio 0.833 (target >= 0.80): PASS",
			"Server peak memory, concurrent clients' backups: 50 MiB",
			"Server peak memory, one client's restore: 30 MiB",
		}},
		{"slow backup", serveRows("15", "6"), "FAIL", []string{"ratio 0.667 (target >= 0.70): FAIL", "(target >= 0.80): PASS"}},
		{"slow restore", serveRows("12", "6.5"), "FAIL", []string{"ratio 0.769 (target >= 0.80): FAIL"}},
		{"no server", serveHeader + "kalaja\t1\tlocal\t10\t2048\t500\t1000000\t0\t0\nrestic\t1\tlocal\t20\t2048\t500\t1000000\t0\t0\n",
			"INCOMPLETE", []string{"n/a (serve not measured)", "n/a (restore-local, restore-serve not measured)", "| restic, local repository | 20.00 |"}},
		{"restore only", serveHeader + "kalaja\t1\trestore-local\t4\t1024\t500\t1000000\t0\t0\nkalaja\t1\trestore-serve\t4.5\t1024\t500\t1000000\t0\t0\n",
			"INCOMPLETE", []string{"Backup through kalaja serve against local: n/a (local, serve not measured)", "ratio 0.889 (target >= 0.80): PASS"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkReport(t, renderServe, tt.in, tt.verdict, tt.contains) })
	}
}

// checkReport renders the measurements in with render and checks the
// verdict and that the output holds each of contains.
func checkReport(t *testing.T, render func(*strings.Builder, summary) string, in, verdict string, contains []string) {
	t.Helper()
	rows, err := parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if got := render(&out, summarize(rows)); got != verdict {
		t.Errorf("verdict %s, want %s", got, verdict)
	}
	for _, want := range contains {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

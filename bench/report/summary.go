package main

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// phases in the order they run and are reported.
var phases = []struct{ key, label string }{
	{"first", "first backup"},
	{"incr", "incremental backup"},
	{"restore", "restore"},
}

// row is one measurement: one tool, one repetition, one phase.
type row struct {
	tool, phase string
	rep         int
	seconds     float64
	rssKiB      float64
	repoBytes   float64
	sourceBytes float64
	otherCPU    float64 // optional other_cpu column: cores busy with other work
	serverRSS   float64 // optional server_rss_kib column: the server's peak RSS (bench/serve.sh)
}

// parse reads tab-separated rows with a header line. Columns are found by
// name, so extra columns are ignored; other_cpu and server_rss_kib are
// optional.
func parse(r io.Reader) ([]row, error) {
	sc := bufio.NewScanner(r)
	if !sc.Scan() {
		return nil, fmt.Errorf("no header line: %v", sc.Err())
	}
	col := map[string]int{}
	for i, name := range strings.Split(sc.Text(), "\t") {
		col[strings.TrimSpace(name)] = i
	}
	for _, name := range []string{"tool", "rep", "phase", "seconds", "peak_rss_kib", "repo_bytes", "source_bytes"} {
		if _, ok := col[name]; !ok {
			return nil, fmt.Errorf("header lacks column %q", name)
		}
	}
	var rows []row
	for line := 2; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		f := strings.Split(sc.Text(), "\t")
		if len(f) < len(col) {
			return nil, fmt.Errorf("line %d: %d fields, want %d", line, len(f), len(col))
		}
		num := func(name string) (float64, error) {
			v, err := strconv.ParseFloat(strings.TrimSpace(f[col[name]]), 64)
			if err != nil {
				return 0, fmt.Errorf("line %d: column %s: %w", line, name, err)
			}
			return v, nil
		}
		rw := row{tool: f[col["tool"]], phase: f[col["phase"]]}
		rep, err := num("rep")
		rw.rep = int(rep)
		for _, p := range []struct {
			name string
			dst  *float64
		}{
			{"seconds", &rw.seconds}, {"peak_rss_kib", &rw.rssKiB},
			{"repo_bytes", &rw.repoBytes}, {"source_bytes", &rw.sourceBytes},
		} {
			if err != nil {
				break
			}
			*p.dst, err = num(p.name)
		}
		if _, ok := col["other_cpu"]; ok && err == nil {
			rw.otherCPU, err = num("other_cpu")
		}
		if _, ok := col["server_rss_kib"]; ok && err == nil {
			rw.serverRSS, err = num("server_rss_kib")
		}
		if err != nil {
			return nil, err
		}
		rows = append(rows, rw)
	}
	return rows, sc.Err()
}

// stat holds the medians of one tool in one phase, and the spread of its
// times.
type stat struct {
	n                                       int
	seconds, rssKiB, repoBytes, sourceBytes float64
	serverRSSKiB                            float64
	minSeconds, maxSeconds                  float64
}

// throughput is decimal megabytes of source per second.
func (s stat) throughput() float64 { return s.sourceBytes / 1e6 / s.seconds }

// summary maps tool, then phase key, to medians.
type summary struct {
	tools    []string // kalaja first, then restic, borg, then the rest by name
	by       map[string]map[string]stat
	maxOther float64 // highest other_cpu of any row
}

func (s summary) get(tool, phase string) (stat, bool) {
	st, ok := s.by[tool][phase]
	return st, ok
}

func summarize(rows []row) summary {
	groups := map[[2]string][]row{}
	s := summary{by: map[string]map[string]stat{}}
	for _, r := range rows {
		s.maxOther = max(s.maxOther, r.otherCPU)
		k := [2]string{r.tool, r.phase}
		groups[k] = append(groups[k], r)
	}
	for k, g := range groups {
		if s.by[k[0]] == nil {
			s.by[k[0]] = map[string]stat{}
			s.tools = append(s.tools, k[0])
		}
		pick := func(f func(row) float64) float64 {
			v := make([]float64, len(g))
			for i, r := range g {
				v[i] = f(r)
			}
			return median(v)
		}
		s.by[k[0]][k[1]] = stat{
			n:            len(g),
			seconds:      pick(func(r row) float64 { return r.seconds }),
			rssKiB:       pick(func(r row) float64 { return r.rssKiB }),
			repoBytes:    pick(func(r row) float64 { return r.repoBytes }),
			sourceBytes:  pick(func(r row) float64 { return r.sourceBytes }),
			serverRSSKiB: pick(func(r row) float64 { return r.serverRSS }),
			minSeconds:   slices.MinFunc(g, func(a, b row) int { return cmp.Compare(a.seconds, b.seconds) }).seconds,
			maxSeconds:   slices.MaxFunc(g, func(a, b row) int { return cmp.Compare(a.seconds, b.seconds) }).seconds,
		}
	}
	rank := map[string]int{"kalaja": 0, "restic": 1, "borg": 2}
	slices.SortFunc(s.tools, func(a, b string) int {
		ra, oka := rank[a]
		rb, okb := rank[b]
		if !oka {
			ra = len(rank)
		}
		if !okb {
			rb = len(rank)
		}
		return cmp.Or(cmp.Compare(ra, rb), strings.Compare(a, b))
	})
	return s
}

// median of v; the mean of the middle two for an even count; 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	m := len(v) / 2
	if len(v)%2 == 0 {
		return (v[m-1] + v[m]) / 2
	}
	return v[m]
}

// reps is the most repetitions any measurement had.
func (s summary) reps() int {
	n := 0
	for _, t := range s.tools {
		for _, st := range s.by[t] {
			n = max(n, st.n)
		}
	}
	return n
}

package drill

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Overhead is the watcher's cost on one benign workload: medians over the
// repetitions with and without it.
type Overhead struct {
	Workload string `json:"workload"`
	Reps     int    `json:"reps"`
	// Without and With are the workload's median wall-clock seconds.
	Without float64 `json:"seconds_without"`
	With    float64 `json:"seconds_with"`
	// Slowdown is With/Without - 1. SlowdownLow and SlowdownHigh bound
	// it at 90% confidence (see slowdownInterval): a workload of a second
	// on a busy or virtual machine varies from run to run by more than
	// the slowdown measured.
	Slowdown     float64 `json:"slowdown"`
	SlowdownLow  float64 `json:"slowdown_low"`
	SlowdownHigh float64 `json:"slowdown_high"`
	// RunsWithout and RunsWith are each run's wall-clock seconds.
	RunsWithout []float64 `json:"runs_without"`
	RunsWith    []float64 `json:"runs_with"`
	// WatcherCPU is the median CPU seconds the watch process used while
	// the workload ran; WatcherCores is that over With: the average share
	// of one core it kept busy.
	WatcherCPU   float64 `json:"watcher_cpu_seconds"`
	WatcherCores float64 `json:"watcher_cores"`
	// WatcherRSS is the watch process's median peak resident memory, in
	// bytes (its whole life: start-up sampling of the tree included).
	WatcherRSS int64 `json:"watcher_peak_rss"`
	// Alerts counts the alerts over all runs with the watcher: false
	// alarms, which also stop the workload, so those runs are left out of
	// the medians.
	Alerts int      `json:"alerts"`
	Errors []string `json:"errors,omitempty"`
}

// OverheadReport is the outcome of MeasureOverhead.
type OverheadReport struct {
	Backend   string     `json:"backend,omitempty"`
	Files     int        `json:"files_per_run"`
	BulkBytes int64      `json:"bulk_bytes"`
	Results   []Overhead `json:"results"`
	// Without, With and Slowdown sum the workloads' medians.
	Without  float64 `json:"seconds_without"`
	With     float64 `json:"seconds_with"`
	Slowdown float64 `json:"slowdown"`
}

// overheadLead is how long after the tree is synced each timed run starts,
// with or without the watcher. A run that starts at once is measurably
// faster than one that starts after an idle second, and one that starts
// soon after the previous tree was deleted pays more for new inodes
// (ext4 skips recently freed ones), by more than the 5% the measurement is
// for: so both arms wait the same time, the watcher starting within it
// (docs/measurements.md, "Noise").
const overheadLead = 1500 * time.Millisecond

// MeasureOverhead runs every selected benign workload reps times without
// and reps times with the watcher (alternating which goes first), each on
// a fresh tree, and reports medians. cfg.Watch must be set; the watcher's
// CPU time and memory are known only when it is a WatchProcess.
func MeasureOverhead(ctx context.Context, cfg Config, reps int) (*OverheadReport, error) {
	cfg.defaults()
	if cfg.Watch == nil {
		return nil, fmt.Errorf("%w: measuring overhead needs a watcher", ErrUsage)
	}
	list, err := selectScenarios(cfg.Scenarios)
	if err != nil {
		return nil, err
	}
	rep := &OverheadReport{Files: cfg.Tree.Files, BulkBytes: cfg.BulkBytes}
	r := &runner{cfg: &cfg, lead: overheadLead}
	for _, sc := range list {
		if sc.Kind != KindBenign {
			continue
		}
		o := Overhead{Workload: sc.Name, Reps: reps}
		var wall [2][]float64  // [0] without, [1] with
		var cpu, rss []float64 // of the watch process, with
		for i := range reps {
			for j := range 2 {
				with := (i+j)%2 == 1
				watch := WatchFunc(nil)
				if with {
					watch = cfg.Watch
				}
				out, err := r.scenario(ctx, sc, watch)
				if err != nil {
					return rep, err
				}
				cfg.Logger.Info("overhead run", "workload", sc.Name, "rep", i+1, "watcher", with, "seconds", out.wall.Seconds(), "error", out.Error)
				if out.backend != "" {
					rep.Backend = out.backend
				}
				o.Alerts += out.Alerts
				if out.Alerts > 0 {
					continue // a false alarm stopped the workload: its time means nothing
				}
				if out.Error != "" {
					o.Errors = append(o.Errors, out.Error)
					continue
				}
				if !with {
					wall[0] = append(wall[0], out.wall.Seconds())
					continue
				}
				wall[1] = append(wall[1], out.wall.Seconds())
				cpu = append(cpu, out.cpu.Seconds())
				rss = append(rss, float64(out.peakRSS))
			}
		}
		o.RunsWithout, o.RunsWith = slices.Clone(wall[0]), slices.Clone(wall[1])
		o.Without, o.With = median(wall[0]), median(wall[1])
		if o.Without > 0 {
			o.Slowdown = o.With/o.Without - 1
			o.SlowdownLow, o.SlowdownHigh = slowdownInterval(wall[0], wall[1])
		}
		o.WatcherCPU = median(cpu)
		if o.With > 0 {
			o.WatcherCores = o.WatcherCPU / o.With
		}
		o.WatcherRSS = int64(median(rss))
		rep.Results = append(rep.Results, o)
		rep.Without += o.Without
		rep.With += o.With
	}
	if rep.Without > 0 {
		rep.Slowdown = rep.With/rep.Without - 1
	}
	return rep, nil
}

// slowdownInterval returns a 90% confidence interval of the slowdown
// median(with)/median(without) - 1: the 5th and 95th percentiles of that
// ratio over resamples of each arm's runs (the percentile bootstrap). The
// resampling is seeded, so one set of runs always gives one interval.
// Both arms need runs; with one run each the interval is the point.
func slowdownInterval(without, with []float64) (lo, hi float64) {
	const resamples = 2000
	rng := rand.New(rand.NewPCG(1, 2))
	draw := func(dst, src []float64) []float64 {
		dst = dst[:0]
		for range src {
			dst = append(dst, src[rng.IntN(len(src))])
		}
		return dst
	}
	var a, b []float64
	ratios := make([]float64, 0, resamples)
	for range resamples {
		a, b = draw(a, without), draw(b, with)
		if m := median(a); m > 0 {
			ratios = append(ratios, median(b)/m-1)
		}
	}
	if len(ratios) == 0 {
		return 0, 0
	}
	slices.Sort(ratios)
	return ratios[len(ratios)*5/100], ratios[(len(ratios)*95-1)/100]
}

// WriteTable writes the overhead report as an aligned table.
func (r *OverheadReport) WriteTable(w io.Writer) error {
	if _, err := fmt.Fprintf(w, "watcher overhead (backend %s): %d files per run, %s dataset; medians of %d runs with and without\n\n",
		r.Backend, r.Files, fmtMiB(r.BulkBytes), repsOf(r)); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tWITHOUT\tWITH\tSLOWDOWN\t90% INTERVAL\tWATCHER CPU\tWATCHER PEAK RSS\tALERTS\t")
	for _, o := range r.Results {
		fmt.Fprintf(tw, "%s\t%.2f s\t%.2f s\t%+.1f%%\t%+.1f%% to %+.1f%%\t%.2f s (%.0f%% of a core)\t%s\t%d\t\n", o.Workload, o.Without, o.With,
			100*o.Slowdown, 100*o.SlowdownLow, 100*o.SlowdownHigh, o.WatcherCPU, 100*o.WatcherCores, fmtMiB(o.WatcherRSS), o.Alerts)
	}
	fmt.Fprintf(tw, "total\t%.2f s\t%.2f s\t%+.1f%%\t\t\t\t\t\n", r.Without, r.With, 100*r.Slowdown)
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, o := range r.Results {
		for _, e := range o.Errors {
			if _, err := fmt.Fprintf(w, "%s: %s\n", o.Workload, e); err != nil {
				return err
			}
		}
	}
	return nil
}

func repsOf(r *OverheadReport) int {
	if len(r.Results) == 0 {
		return 0
	}
	return r.Results[0].Reps
}

// statusKB returns the value in kB of the line starting with key in a
// /proc status file, or 0.
func statusKB(file, key string) int64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb
		}
	}
	return 0
}

// fmtMiB formats bytes as MiB with one decimal.
func fmtMiB(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// progressEnabled reports whether to draw progress: on a terminal, and
// neither --quiet nor --json.
func (g *globalOptions) progressEnabled() bool {
	return !g.quiet && !g.json && term.IsTerminal(int(os.Stderr.Fd()))
}

// meter redraws one status line on stderr until stopped.
type meter struct {
	stop chan struct{}
	done chan struct{}
}

// startMeter calls line every 250 ms and prints it over the previous one.
// line gets the elapsed time.
func startMeter(line func(elapsed time.Duration) string) *meter {
	m := &meter{stop: make(chan struct{}), done: make(chan struct{})}
	start := time.Now()
	go func() {
		defer close(m.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				fmt.Fprint(os.Stderr, "\r\033[K")
				return
			case <-t.C:
				fmt.Fprintf(os.Stderr, "\r\033[K%s", line(time.Since(start)))
			}
		}
	}()
	return m
}

// Stop clears the line and waits for the meter to end. A nil meter is fine.
func (m *meter) Stop() {
	if m == nil {
		return
	}
	close(m.stop)
	<-m.done
}

// totals counts files and bytes below paths in the background, for ETAs.
type totals struct {
	files, bytes atomic.Int64
	done         atomic.Bool
}

func scanTotals(paths []string) *totals {
	t := &totals{}
	go func() {
		defer t.done.Store(true)
		for _, p := range paths {
			// The callback never fails (what cannot be read is left out
			// of the estimate), so neither does the walk.
			_ = filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					if fi, err := d.Info(); err == nil {
						t.files.Add(1)
						t.bytes.Add(fi.Size())
					}
				}
				return nil
			})
		}
	}()
	return t
}

// progressLine formats files, bytes, rate and, when total is known, ETA.
func progressLine(elapsed time.Duration, files, bytes, totalFiles, totalBytes int64, totalKnown bool) string {
	rate := float64(bytes) / max(elapsed.Seconds(), 0.001)
	s := fmt.Sprintf("[%s] %d files, %s, %s/s", fmtDuration(elapsed), files, fmtBytes(bytes), fmtBytes(int64(rate)))
	if totalBytes > 0 {
		s += fmt.Sprintf(" of %d files, %s", totalFiles, fmtBytes(totalBytes))
		if totalKnown && rate > 0 && bytes < totalBytes {
			s += ", ETA " + fmtDuration(time.Duration(float64(totalBytes-bytes)/rate*float64(time.Second)))
		}
	}
	return s
}

func fmtDuration(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}

func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

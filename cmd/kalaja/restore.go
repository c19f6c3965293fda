package main

import (
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kalaja/kalaja/internal/restorer"
)

func newRestoreCommand(g *globalOptions) *cobra.Command {
	var (
		target   string
		includes []string
	)
	cmd := &cobra.Command{
		Use:   "restore SNAPSHOT --target DIR",
		Short: "Restore a snapshot",
		Long: `Restore a snapshot ("latest", an ID or an ID prefix) under DIR: the file
/home/a/x of the snapshot becomes DIR/home/a/x. Contents, modes, owners (when
run as root), times, symlinks, hard links, special files, sparse holes and
extended attributes are restored. Every block is verified against its ID.

--include PATTERN (repeatable) restores only matching paths and everything
below them. A pattern containing "/" is matched against the whole path as
backed up (e.g. /home/*/docs); one without "/" against each name (e.g.
*.pdf). Patterns use shell glob syntax.

Files that cannot be restored are reported and the rest is restored; the exit
code is then 1.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if target == "" {
				return usageError{fmt.Errorf("--target is required")}
			}
			for _, p := range includes {
				if _, err := path.Match(p, ""); err != nil {
					return usageError{fmt.Errorf("--include %q: %w", p, err)}
				}
			}
			ctx := cmd.Context()
			r, err := g.openToRead(ctx, "restore", true)
			if err != nil {
				return err
			}
			sn, err := findSnapshot(ctx, g, r, a[0])
			if err != nil {
				return err
			}
			opts := restorer.Options{Target: target, Progress: &restorer.Progress{}}
			if len(includes) > 0 {
				opts.Include = func(p string) bool { return matchAny(includes, p) }
			}
			opts.OnError = func(p string, err error) {
				fmt.Fprintf(os.Stderr, "\r\033[Kerror: %s: %v\n", p, err)
			}
			var m *meter
			if g.progressEnabled() {
				var total int64
				if sn.Summary != nil {
					total = sn.Summary.TotalBytes
				}
				p := opts.Progress
				m = startMeter(func(el time.Duration) string {
					return progressLine(el, p.Files.Load(), p.Bytes.Load(), 0, total, len(includes) == 0)
				})
			}
			start := time.Now()
			stats, err := restorer.Restore(ctx, r, sn, opts)
			m.Stop()
			if err != nil {
				return err
			}
			d := time.Since(start)
			if g.json {
				if err := printJSON(cmd.OutOrStdout(), map[string]any{"snapshot": sn.ID, "target": target, "files": stats.Files,
					"dirs": stats.Dirs, "other": stats.Other, "bytes": stats.Bytes, "errors": stats.Errors, "seconds": d.Seconds()}); err != nil {
					return err
				}
			} else {
				g.printf("restored snapshot %s to %s: %d files, %d directories, %d other, %s in %s (%s/s)\n",
					sn.ID.Short(), target, stats.Files, stats.Dirs, stats.Other, fmtBytes(stats.Bytes),
					d.Round(time.Millisecond), fmtBytes(int64(float64(stats.Bytes)/max(d.Seconds(), 0.001))))
			}
			if stats.Errors > 0 {
				return fmt.Errorf("%d paths could not be restored", stats.Errors)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&target, "target", "t", "", "directory to restore into (required)")
	cmd.Flags().StringArrayVar(&includes, "include", nil, "restore only paths matching this glob (repeatable)")
	return cmd
}

// matchAny reports whether snapshot path p matches one of the patterns.
func matchAny(patterns []string, p string) bool {
	for _, pat := range patterns {
		subject := p
		if !strings.Contains(pat, "/") {
			subject = path.Base(p)
		}
		if ok, _ := path.Match(pat, subject); ok {
			return true
		}
	}
	return false
}

package main

import (
	"fmt"
	"os"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/spf13/cobra"

	"github.com/kalaja/kalaja/internal/archiver"
	"github.com/kalaja/kalaja/internal/backup"
	"github.com/kalaja/kalaja/internal/ledger"
)

func newBackupCommand(g *globalOptions) *cobra.Command {
	var (
		tags        []string
		host        string
		compression string
		readAll     bool
	)
	cmd := &cobra.Command{
		Use:   "backup PATH...",
		Short: "Save a snapshot of files and directories",
		Long: `Save a snapshot of the given paths. Files whose size, modification time,
change time and inode match the previous snapshot of the same host and paths
are not read again; everything else is chunked and deduplicated.

Files that cannot be read are reported and left out; the snapshot is still
saved and the exit code is 3.

With a write-only key (kalaja key add --write-only) the previous snapshot
comes from this host's parent cache in the state directory, sealed with a
key derived from the repository's index key; without it every file is read.

Each snapshot's health is judged during the backup, against the previous
snapshot and the host's earlier clean snapshots of the same paths, and
printed: "health: clean", or "health: SUSPECT:" and the reasons (files that
lost their format or turned random, mass deletion, a new extension on many
files, the same new note in many folders).`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, paths []string) error {
			ctx := cmd.Context()
			if host == "" {
				host, _ = os.Hostname()
			}
			level, err := compressionLevel(compression)
			if err != nil {
				return err
			}
			r, err := g.open(ctx, true)
			if err != nil {
				return err
			}
			if err := r.SetCompression(level); err != nil {
				return err
			}
			var lc *ledger.Client
			if withLedger {
				if lc, err = g.openLedger(ctx, r); err != nil {
					return err
				}
			}
			cache, err := g.parentCache(r)
			if err != nil {
				return err
			}
			opts := backup.Options{Host: host, Tags: tags, Version: version, ReadAll: readAll,
				Progress: &archiver.Progress{}, Log: g.logger(), Cache: cache}
			opts.OnError = func(path string, err error) {
				fmt.Fprintf(os.Stderr, "\r\033[Kerror: %v\n", err)
			}
			var m *meter
			if g.progressEnabled() {
				tot := scanTotals(paths)
				p := opts.Progress
				m = startMeter(func(el time.Duration) string {
					return progressLine(el, p.Files.Load(), p.Bytes.Load(), tot.files.Load(), tot.bytes.Load(), tot.done.Load())
				})
			}
			res, err := backup.Run(ctx, r, lc, paths, opts)
			m.Stop()
			if err != nil {
				return err
			}
			sn := res.Snapshot
			s := sn.Summary
			if g.json {
				if err := printJSON(cmd.OutOrStdout(), map[string]any{"snapshot": sn.ID, "parent": sn.Parent, "summary": s, "health": sn.Health}); err != nil {
					return err
				}
			} else {
				d := s.End.Sub(s.Start)
				g.printf("Files: %d new, %d changed, %d unmodified; %d directories\n", s.FilesNew, s.FilesChanged, s.FilesUnchanged, s.Dirs)
				g.printf("Added %s to the repository (%d blobs); read %s of %s in %s (%s/s)\n",
					fmtBytes(s.BytesAdded), s.BlobsAdded, fmtBytes(s.BytesRead), fmtBytes(s.TotalBytes),
					d.Round(time.Millisecond), fmtBytes(int64(float64(s.TotalBytes)/max(d.Seconds(), 0.001))))
				g.printf("snapshot %s saved\n", sn.ID.Short())
				g.printf("health: %s\n", sn.Health.Verdict())
			}
			if s.Errors > 0 {
				return fmt.Errorf("%w: %d left out of snapshot %s", errPartial, s.Errors, sn.ID.Short())
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&tags, "tag", nil, "add a tag to the snapshot (repeatable)")
	f.StringVar(&host, "host", "", "hostname to record (default: this host's name)")
	f.StringVar(&compression, "compression", "auto", "zstd level: auto, fastest, better, best, or off")
	f.BoolVar(&readAll, "force", false, "read every file, even those the previous snapshot says are unchanged")
	return cmd
}

// compressionLevel maps the --compression flag to a zstd level (nil: off).
func compressionLevel(s string) (*zstd.EncoderLevel, error) {
	levels := map[string]zstd.EncoderLevel{"auto": zstd.SpeedDefault, "fastest": zstd.SpeedFastest, "better": zstd.SpeedBetterCompression, "best": zstd.SpeedBestCompression}
	if s == "off" {
		return nil, nil
	}
	l, ok := levels[s]
	if !ok {
		return nil, usageError{fmt.Errorf("--compression %q: want auto, fastest, better, best or off", s)}
	}
	return &l, nil
}

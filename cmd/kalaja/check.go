package main

import (
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/checker"
)

func newCheckCommand(g *globalOptions) *cobra.Command {
	var readData bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Verify the repository's integrity",
		Long: `Check that every index file decodes, every indexed pack exists with the
size and header the index says, every snapshot decodes and every tree and file
content it needs is present. With --read-data, also read every pack in full and
verify every blob's authentication tag and ID.

Problems are listed with the snapshots and paths they damage; everything not
listed still restores. The exit code is 13 if an object changed or went
missing after it was written (tampering, or storage that corrupts bytes),
1 if anything else is wrong.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			r, err := g.openToRead(ctx, "check", false)
			if err != nil {
				return err
			}
			var packs atomic.Int64
			opts := checker.Options{ReadData: readData, OnPack: func() { packs.Add(1) }}
			var m *meter
			if g.progressEnabled() {
				m = startMeter(func(el time.Duration) string {
					return fmt.Sprintf("[%s] %d packs checked", fmtDuration(el), packs.Load())
				})
			}
			rep, err := checker.Check(ctx, r, opts)
			m.Stop()
			if err != nil {
				return err
			}
			if g.json {
				if err := printJSON(cmd.OutOrStdout(), rep); err != nil {
					return err
				}
			} else {
				printReport(g, rep)
			}
			switch {
			case rep.Tampered:
				return fmt.Errorf("%w: %d errors, %d damaged paths", blob.ErrTampered, len(rep.Errors), len(rep.Damaged))
			case !rep.OK():
				return fmt.Errorf("%w: %d errors, %d damaged paths", errDamaged, len(rep.Errors), len(rep.Damaged))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&readData, "read-data", false, "read and verify all data")
	return cmd
}

func printReport(g *globalOptions, rep *checker.Report) {
	g.printf("checked %d snapshots, %d packs, %d blobs\n", rep.Snapshots, rep.Packs, rep.Blobs)
	for _, n := range rep.Notes {
		g.printf("note: %s\n", n)
	}
	for _, e := range rep.Errors {
		fmt.Printf("error: %s\n", e)
	}
	bySnap := map[string][]checker.Damage{}
	for _, d := range rep.Damaged {
		bySnap[d.Snapshot] = append(bySnap[d.Snapshot], d)
	}
	snaps := make([]string, 0, len(bySnap))
	for s := range bySnap {
		snaps = append(snaps, s)
	}
	sort.Strings(snaps)
	for _, s := range snaps {
		id, _ := blob.ParseID(s)
		fmt.Printf("snapshot %s: %d paths damaged:\n", id.Short(), len(bySnap[s]))
		for _, d := range bySnap[s] {
			fmt.Printf("  %s (blob %s: %s)\n", d.Path, d.Blob[:8], d.Reason)
		}
	}
	if rep.OK() {
		g.printf("no errors found\n")
	}
}

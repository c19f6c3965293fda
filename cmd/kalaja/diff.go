package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kalaja/kalaja/internal/snapshot"
)

func newDiffCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "diff SNAPSHOT1 SNAPSHOT2",
		Short: "Show what changed between two snapshots",
		Long: `Show every path added (+), removed (-), whose content changed (M), whose
type changed (T) or whose metadata only changed (U) from SNAPSHOT1 to SNAPSHOT2.`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx := cmd.Context()
			r, err := g.openToRead(ctx, "diff", true)
			if err != nil {
				return err
			}
			list, err := r.Snapshots(ctx)
			if err != nil {
				g.warn("%v", err)
			}
			s1, err := snapshot.Find(list, a[0], nil)
			if err != nil {
				return err
			}
			s2, err := snapshot.Find(list, a[1], nil)
			if err != nil {
				return err
			}
			counts := map[string]int{}
			out := cmd.OutOrStdout()
			err = snapshot.Diff(ctx, r.LoadTree, &s1.Tree, &s2.Tree, "/", func(code, p string) error {
				counts[code]++
				if g.json {
					return printJSON(out, map[string]any{"change": code, "path": snapshot.Name(p)})
				}
				_, err := fmt.Fprintf(out, "%-4s %s\n", code, p)
				return err
			})
			if err != nil {
				return err
			}
			g.printf("\n%d added, %d removed, %d changed, %d type changed, %d metadata changed\n",
				counts[snapshot.Added], counts[snapshot.Removed], counts[snapshot.Modified], counts[snapshot.Retyped], counts[snapshot.Metadata])
			return nil
		},
	}
}

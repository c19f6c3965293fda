package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kalaja/kalaja/internal/snapshot"
)

func newSnapshotsCommand(g *globalOptions) *cobra.Command {
	var host string
	cmd := &cobra.Command{
		Use:   "snapshots",
		Short: "List snapshots, oldest first",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := g.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			list, err := r.Snapshots(cmd.Context())
			if err != nil {
				g.warn("%v", err)
			}
			var out []*snapshot.Snapshot
			for _, s := range list {
				if host == "" || s.Hostname == host {
					out = append(out, s)
				}
			}
			if g.json {
				type item struct {
					ID string `json:"id"`
					*snapshot.Snapshot
				}
				items := make([]item, 0, len(out))
				for _, s := range out {
					items = append(items, item{s.ID.String(), s})
				}
				return printJSON(cmd.OutOrStdout(), items)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTime\tHost\tTags\tSize\tPaths")
			for _, s := range out {
				size := ""
				if s.Summary != nil {
					size = fmtBytes(s.Summary.TotalBytes)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID.Short(), s.Time.Local().Format("2006-01-02 15:04:05"),
					s.Hostname, strings.Join(s.Tags, ","), size, strings.Join(s.Paths, " "))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			g.printf("%d snapshots\n", len(out))
			return nil
		},
	}
	cmd.Flags().StringVar(&host, "host", "", "only snapshots of this host")
	return cmd
}

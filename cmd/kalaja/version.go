package main

import (
	"runtime"

	"github.com/spf13/cobra"

	"github.com/kalaja/kalaja/internal/repo"
)

func newVersionCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{
					"version": version, "go": runtime.Version(), "os": runtime.GOOS, "arch": runtime.GOARCH,
					"repository_format": repo.ConfigVersion,
				})
			}
			cmd.Printf("kalaja %s (%s %s/%s, repository format %d)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH, repo.ConfigVersion)
			return nil
		},
	}
}

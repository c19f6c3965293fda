package main

import (
	"github.com/spf13/cobra"

	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/store/local"
)

func newInitCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create a new repository",
		Long: `Create a new repository at --repo (or $KALAJA_REPOSITORY), protected by
the password from --password-file, $KALAJA_PASSWORD_FILE, $KALAJA_PASSWORD
or a prompt. The directory may exist but must not hold a repository.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := g.repoPath()
			if err != nil {
				return err
			}
			pw, err := g.password(true)
			if err != nil {
				return err
			}
			kdf, err := crypto.DefaultKDF()
			if err != nil {
				return err
			}
			st, err := local.Create(path)
			if err != nil {
				return err
			}
			r, err := repo.Init(cmd.Context(), st, pw, kdf)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]string{"id": r.Config().ID.String(), "repository": path})
			}
			g.printf("created repository %s at %s\n", r.Config().ID.Short(), path)
			g.printf("Keep the password safe: without it the data cannot be recovered.\n")
			return nil
		},
	}
}

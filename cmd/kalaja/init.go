package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/local"
	"github.com/kalaja/kalaja/internal/store/remote"
	"github.com/kalaja/kalaja/internal/store/s3"
)

func newInitCommand(g *globalOptions) *cobra.Command {
	var noLock bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a new repository",
		Long: `Create a new repository at --repo (or $KALAJA_REPOSITORY), protected by
the password from --password-file, $KALAJA_PASSWORD_FILE, $KALAJA_PASSWORD
or a prompt. The directory may exist but must not hold a repository.

An s3: location (see README.md, "S3 storage") names a bucket that must exist
with versioning and Object Lock, so that client credentials cannot delete or
overwrite backups; --no-lock accepts a bucket without them.`,
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
			var st store.Store
			switch {
			case s3.IsLocation(path):
				st, err = createS3(cmd.Context(), path, noLock)
			case noLock:
				return usageError{errors.New("--no-lock applies only to s3: locations")}
			case remote.IsLocation(path):
				st, err = g.createRemote(cmd.Context(), path)
			default:
				st, err = local.Create(path)
			}
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
	cmd.Flags().BoolVar(&noLock, "no-lock", false, "accept an S3 bucket without versioning and Object Lock (backups can then be deleted)")
	return cmd
}

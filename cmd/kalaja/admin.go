package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
)

func newAdminCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "The server administrator's offline key and signed requests",
		Long: `Deleting objects from a repository behind 'kalaja serve', and changing its
retention, takes a request signed with the administrator's key; host tokens
cannot do either (docs/design.md, "Server API"). Make the key on an offline
machine with 'kalaja admin keygen', keep the secret key file there, and give
the public key it prints to the server: 'kalaja serve --admin-key FILE'.`,
		Args: args(cobra.NoArgs),
	}
	cmd.AddCommand(newAdminKeygenCommand(g))
	return cmd
}

func newAdminKeygenCommand(g *globalOptions) *cobra.Command {
	var name, out string
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Create the administrator's signing key",
		Long: `Create an Ed25519 note signing key named --name, write its secret key to --out
(readable only by you; an existing file is never overwritten) and print its
public (verifier) key on stdout. Run it on the offline machine that will sign
requests; copy only the printed public key to the server.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" || strings.ContainsAny(name, " \t\r\n+") {
				return usageError{errors.New("--name is required: a key name without spaces or '+', e.g. kalaja-admin-example.org")}
			}
			if out == "" {
				return usageError{errors.New("--out is required: the file for the secret key")}
			}
			skey, vkey, err := note.GenerateKey(rand.Reader, name)
			if err != nil {
				return usageError{fmt.Errorf("--name: %w", err)}
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s already exists: not overwriting a key", out)
			}
			if err != nil {
				return err
			}
			// abandon removes the partial key file after err, and says so
			// if it cannot: the next run would refuse to overwrite it.
			abandon := func(err error) error {
				_ = f.Close() // err is the failure to report, and the file is removed next
				if rerr := os.Remove(out); rerr != nil {
					return errors.Join(err, fmt.Errorf("the partial key file stays: %w", rerr))
				}
				return err
			}
			if _, err := f.WriteString(skey + "\n"); err != nil {
				return abandon(err)
			}
			if err := f.Sync(); err != nil {
				return abandon(err)
			}
			if err := f.Close(); err != nil {
				return abandon(err)
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]string{"name": name, "verifier_key": vkey, "secret_key_file": out})
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), vkey)
			return err
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the key's name, e.g. kalaja-admin-example.org")
	cmd.Flags().StringVar(&out, "out", "", "file to write the secret key to (mode 0600, must not exist)")
	return cmd
}

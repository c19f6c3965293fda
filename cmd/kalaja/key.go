package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/store"
)

func newKeyCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage the passwords (key files) that open the repository",
	}
	var newPasswordFile string
	newPassword := func() ([]byte, error) {
		return readPassword(env(newPasswordFile, "KALAJA_NEW_PASSWORD_FILE"), "KALAJA_NEW_PASSWORD", "new password", true)
	}
	add := &cobra.Command{
		Use:   "add",
		Short: "Add a password",
		Long:  "Add a key file sealing the repository keys under a new password, read from --new-password-file, $KALAJA_NEW_PASSWORD_FILE, $KALAJA_NEW_PASSWORD or a prompt.",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := g.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			pw, err := newPassword()
			if err != nil {
				return err
			}
			kdf, err := crypto.DefaultKDF()
			if err != nil {
				return err
			}
			name, err := r.AddKey(cmd.Context(), pw, kdf)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]string{"id": name})
			}
			g.printf("added key %s\n", name[:8])
			return nil
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List key files",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := g.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			keys, err := r.ListKeys(cmd.Context())
			if err != nil {
				g.warn("%v", err)
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), keys)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, " ID\tUser\tHost\tCreated")
			for _, k := range keys {
				cur := " "
				if k.Current {
					cur = "*"
				}
				fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\n", cur, k.Name[:8], k.Username, k.Host, k.Created.Local().Format("2006-01-02 15:04:05"))
			}
			return tw.Flush()
		},
	}
	remove := &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a key file (not the one in use)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			r, err := g.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			rm, ok := r.Store().(store.Remover)
			if !ok {
				return fmt.Errorf("this repository's store does not allow removing keys")
			}
			if err := r.RemoveKey(cmd.Context(), rm, a[0]); err != nil {
				return err
			}
			g.printf("removed key %s\n", a[0])
			return nil
		},
	}
	passwd := &cobra.Command{
		Use:   "passwd",
		Short: "Change the password: add a key for the new one, remove the current one",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			r, err := g.open(ctx, false)
			if err != nil {
				return err
			}
			rm, ok := r.Store().(store.Remover)
			if !ok {
				return fmt.Errorf("this repository's store does not allow removing keys")
			}
			pw, err := newPassword()
			if err != nil {
				return err
			}
			kdf, err := crypto.DefaultKDF()
			if err != nil {
				return err
			}
			name, err := r.AddKey(ctx, pw, kdf)
			if err != nil {
				return err
			}
			if err := rm.Remove(ctx, store.Handle{Type: store.Keys, Name: r.KeyName()}); err != nil {
				return fmt.Errorf("new key %s added, but the old one could not be removed: %w", name[:8], err)
			}
			g.printf("password changed (key %s replaces %s)\n", name[:8], r.KeyName()[:8])
			return nil
		},
	}
	for _, c := range []*cobra.Command{add, passwd} {
		c.Flags().StringVar(&newPasswordFile, "new-password-file", "", "read the new password from this file")
	}
	cmd.AddCommand(add, list, remove, passwd)
	return cmd
}

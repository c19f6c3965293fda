package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/repo"
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
	var (
		writeOnly bool
		keyHost   string
	)
	add := &cobra.Command{
		Use:   "add",
		Short: "Add a password (with --write-only, one for a host that backs up but cannot read)",
		Long: `Add a key file sealing the repository keys under a new password, read from
--new-password-file, $KALAJA_NEW_PASSWORD_FILE, $KALAJA_NEW_PASSWORD or a prompt.

With --write-only the key file lacks the content private key: a host that
holds only it (and its password) backs up, incrementally, and appends to the
ledger, but reads no snapshot, tree or file content, its own earlier ones
included; restore, ls, diff, recover, snapshots, check, forget and prune
refuse with exit code 14. Give each host its own write-only key, labelled
with --host, from the machine that holds the full key (the recovery key,
kept off the hosts; docs/design.md, "Write-only hosts"), and hand the host
only the new password. A key added while the repository is opened with a
write-only key is write-only too.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			r, err := g.open(ctx, false)
			if err != nil {
				return err
			}
			o := repo.KeyOptions{WriteOnly: writeOnly || !r.Keys().CanRead(), Host: keyHost}
			if o.WriteOnly && r.Keys().CanRead() {
				if o.LogSigner, err = ledger.SignerKey(ctx, r.Store(), r.Config().ID, r.Keys()); err != nil {
					return err
				}
			}
			pw, err := newPassword()
			if err != nil {
				return err
			}
			kdf, err := crypto.DefaultKDF()
			if err != nil {
				return err
			}
			name, err := r.AddKeyWith(ctx, pw, kdf, o)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"id": name, "write_only": o.WriteOnly})
			}
			if o.WriteOnly {
				g.printf("added write-only key %s\n", name[:8])
			} else {
				g.printf("added key %s\n", name[:8])
			}
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
			fmt.Fprintln(tw, " ID\tRights\tUser\tHost\tCreated")
			for _, k := range keys {
				cur := " "
				if k.Current {
					cur = "*"
				}
				rights := "full"
				if k.WriteOnly {
					rights = "write-only"
				}
				fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\n", cur, k.Name[:8], rights, k.Username, k.Host, k.Created.Local().Format("2006-01-02 15:04:05"))
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
	add.Flags().BoolVar(&writeOnly, "write-only", false, "leave out the content private key: the key backs up but cannot read (for a host)")
	add.Flags().StringVar(&keyHost, "host", "", "the host the key is for, shown by 'key list' (default: this host's name)")
	cmd.AddCommand(add, list, remove, passwd)
	return cmd
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/kalaja/kalaja/internal/atomicfile"
	"github.com/kalaja/kalaja/internal/ledger"
)

func newWitnessCommand(g *globalOptions) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "witness",
		Short: "Co-sign a repository's ledger checkpoints after checking they extend the last one",
		Long: `A witness keeps the newest checkpoint it co-signed of each repository it
watches, and co-signs a newer one only after a consistency proof shows that the
log extends it: a rolled-back or forked log is refused. It needs no repository
password. Run it on another host or at another institution, and give its public
key to clients ('kalaja verify --witness KEY').

The witness's private key and its memory of each log live in --witness-dir
(default $KALAJA_WITNESS_DIR).`,
	}
	cmd.PersistentFlags().StringVar(&dir, "witness-dir", "", "the witness's key and state (default $KALAJA_WITNESS_DIR)")
	witnessDir := func() (string, error) {
		d := env(dir, "KALAJA_WITNESS_DIR")
		if d == "" {
			return "", usageError{errors.New("no witness directory: use --witness-dir or set KALAJA_WITNESS_DIR")}
		}
		return d, nil
	}

	var name string
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Create the witness's signing key and print its public key",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := witnessDir()
			if err != nil {
				return err
			}
			if name == "" || strings.ContainsAny(name, " \t\n+") {
				return usageError{errors.New("--name is required: a witness name without spaces or '+'")}
			}
			skey, vkey, err := ledger.GenerateKey(name)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(d, 0o700); err != nil {
				return err
			}
			f, err := os.OpenFile(filepath.Join(d, "witness.key"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s already holds a witness key", d)
			}
			if err != nil {
				return err
			}
			if _, err := f.WriteString(skey + "\n"); err != nil {
				_ = f.Close() // the write error is the one to report
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			if err := atomicfile.Write(filepath.Join(d, "witness.pub"), []byte(vkey+"\n"), 0o644); err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), vkey)
			return err
		},
	}
	initCmd.Flags().StringVar(&name, "name", "", "the witness's name, e.g. witness.example.org")

	var (
		logKey string
		every  time.Duration
	)
	cosignCmd := &cobra.Command{
		Use:   "cosign",
		Short: "Check the repository's newest checkpoint against the last one co-signed, and co-sign it",
		Long: `Check the newest checkpoint of the repository given by --repo and co-sign it
if the log extends the checkpoint this witness co-signed last. The first time,
the log's public key comes from --log-key (get it from the owner with 'kalaja
ledger key'); without it, the key published in the repository is pinned
(trust on first use). With --every, repeat until interrupted.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			d, err := witnessDir()
			if err != nil {
				return err
			}
			skey, err := os.ReadFile(filepath.Join(d, "witness.key"))
			if err != nil {
				return fmt.Errorf("witness key: %w (create one with 'kalaja witness init')", err)
			}
			signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
			if err != nil {
				return fmt.Errorf("witness key in %s: %v", d, err)
			}
			for {
				err := g.cosign(ctx, d, signer, logKey, cmd)
				if every == 0 {
					return err
				}
				if err != nil {
					g.warn("%v", err)
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(every):
				}
			}
		},
	}
	cosignCmd.Flags().StringVar(&logKey, "log-key", "", "the log's public key, pinned on first use")
	cosignCmd.Flags().DurationVar(&every, "every", 0, "repeat at this interval until interrupted")
	cmd.AddCommand(initCmd, cosignCmd)
	return cmd
}

// cosign runs one witness step on the repository given by g.
func (g *globalOptions) cosign(ctx context.Context, dir string, signer note.Signer, logKey string, cmd *cobra.Command) error {
	st, cfg, err := g.openStore(ctx)
	if err != nil {
		return err
	}
	pin := ledger.PinFile(filepath.Join(dir, "logs", cfg.ID.String()+".json"))
	run, err := ledger.Witness(ctx, st, cfg.ID, signer, pin, logKey)
	if run.Published != "" {
		g.warn("pinning the log key the repository publishes, %s (pass --log-key to check it)", run.Published)
	}
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(cmd.OutOrStdout(), map[string]any{"size": run.Checkpoint.N, "checkpoint": string(run.Cosigned)})
	}
	g.printf("co-signed %s (previous: size %d)\n", run.Checkpoint, run.Previous)
	return nil
}

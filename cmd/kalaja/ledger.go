package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/kalaja/kalaja/internal/ledger"
)

func newLedgerCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ledger",
		Short: "Show the ledger's timeline, and export proofs for offline checking",
		Long: `The ledger is a signed Merkle log (the Go checksum database's tlog) of every
snapshot, pack and index file stored in the repository, and of the fleet's
incidents: alerts and silent watchers the vault (kalaja serve) saw, and
recoveries that resolved them. 'verify' checks it;
these commands show it and export proofs that an investigator can check
offline without the repository or its password (docs/design.md, "Checking an
export by hand").`,
	}
	cmd.AddCommand(newLedgerShowCommand(g), newLedgerProofCommand(g), newLedgerExportCommand(g), newLedgerKeyCommand(g))
	return cmd
}

func newLedgerShowCommand(g *globalOptions) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print the ledger's timeline of snapshots and vault events (with --all, every record)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			_, lc, err := g.openWithLedger(ctx)
			if err != nil {
				return err
			}
			c, err := lc.Log.ReadAll(ctx)
			if err != nil {
				return err
			}
			type row struct {
				Index int64 `json:"index"`
				ledger.Record
			}
			rows := []row{}
			for i, rec := range c.Records {
				if all || onTimeline(rec) {
					rows = append(rows, row{int64(i), rec})
				}
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), rows)
			}
			w := cmd.OutOrStdout()
			if _, err := fmt.Fprintf(w, "%-8s %-20s %-16s %-10s %-20s %-10s %s\n", "record", "logged", "kind", "id", "host", "size", "health"); err != nil {
				return err
			}
			for _, r := range rows {
				health, size := "", fmtBytes(r.Size)
				if r.Health != nil {
					health = r.Health.String()
				}
				if ledger.IsEvent(r.Kind) {
					size = "" // the length of bytes the vault or the host keeps
				}
				if _, err := fmt.Fprintf(w, "%-8d %-20s %-16s %-10s %-20s %-10s %s\n", r.Index, r.Time.Local().Format("2006-01-02 15:04:05"),
					r.Kind, r.ID.Short(), r.Host, size, health); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "show packs, index files and removals too")
	return cmd
}

func newLedgerProofCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "proof SNAPSHOT",
		Short: "Print a proof that a snapshot is in the ledger, as an export of one record",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx := cmd.Context()
			r, lc, err := g.openWithLedger(ctx)
			if err != nil {
				return err
			}
			if err := r.RequireRead(); err != nil {
				return fmt.Errorf("ledger proof (a write-only key can use 'ledger export'): %w", err)
			}
			sn, err := findSnapshot(ctx, g, r, a[0])
			if err != nil {
				return err
			}
			ex, err := lc.Log.Export(ctx, func(rec ledger.Record) bool {
				return rec.Kind == ledger.KindSnapshot && rec.ID == sn.ID
			})
			if err != nil {
				return err
			}
			if len(ex.Records) == 0 {
				return fmt.Errorf("snapshot %s is not in the ledger under a signed checkpoint (run 'kalaja verify')", sn.ID.Short())
			}
			return printJSON(cmd.OutOrStdout(), ex)
		},
	}
}

func newLedgerExportCommand(g *globalOptions) *cobra.Command {
	var (
		all    bool
		output string
	)
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write every snapshot and vault event record (with --all, every record) with inclusion proofs, as JSON",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			_, lc, err := g.openWithLedger(ctx)
			if err != nil {
				return err
			}
			ex, err := lc.Log.Export(ctx, func(rec ledger.Record) bool { return all || onTimeline(rec) })
			if err != nil {
				return err
			}
			if output == "" || output == "-" {
				return printJSON(cmd.OutOrStdout(), ex)
			}
			f, err := os.Create(output)
			if err != nil {
				return err
			}
			if err := printJSON(f, ex); err != nil {
				_ = f.Close() // the write error is the one to report
				return fmt.Errorf("write %s: %w", output, err)
			}
			return f.Close()
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "export packs, index files and removals too")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to this file instead of standard output")
	return cmd
}

func newLedgerKeyCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "key",
		Short: "Print the log's public key, for witnesses and investigators to pin",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			_, lc, err := g.openWithLedger(ctx)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]string{"log_key": lc.Log.VerifierKey(), "origin": lc.Log.Origin()})
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), lc.Log.VerifierKey())
			return err
		},
	}
}

// onTimeline reports whether ledger show and export list rec without
// --all: snapshots, and the events of the fleet's incidents (alerts,
// silences, returns, resolutions).
func onTimeline(rec ledger.Record) bool {
	return rec.Kind == ledger.KindSnapshot || ledger.IsEvent(rec.Kind)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/prune"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store"
)

func newVerifyCommand(g *globalOptions) *cobra.Command {
	var (
		readData  bool
		witnesses []string
		adminPub  string
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the ledger: nothing recorded was removed, changed, rolled back or forked",
		Long: `Check the repository's ledger, the signed Merkle log of every snapshot, pack
and index file (docs/design.md, "Ledger"):

  - every checkpoint is signed by the log key this client pinned, and matches
    the log's records; every stored tile matches them too;
  - the log extends the newest checkpoint this client saw before (kept in its
    state directory) and the checkpoint each snapshot recorded: a shorter log
    is a rollback, a different one a fork;
  - every object the log names exists with its logged size, and snapshots and
    index files hash to their logged IDs (packs too with --read-data);
  - every snapshot is in the log;
  - with --witness KEY, the witness co-signed a checkpoint the log extends;
  - every removal record (forget, prune) is bound to a request signed with
    the administrator's key, whose public half this client pins when first
    given (--admin-pub, or a server repository's own); an object removed
    without it is unauthorised-removal, and missing.

Exit status 0 when all holds, 1 with every problem listed otherwise. After a
clean run this client remembers the newest checkpoint.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			var vs []note.Verifier
			for _, k := range witnesses {
				v, err := note.NewVerifier(k)
				if err != nil {
					return usageError{fmt.Errorf("--witness %q: %v", k, err)}
				}
				vs = append(vs, v)
			}
			r, lc, err := g.openWithLedger(ctx)
			if err != nil {
				return err
			}
			adm, err := adminVerifier(ctx, r.Store(), lc, adminPub)
			if err != nil {
				return err
			}
			var list []*snapshot.Snapshot
			if r.Keys().CanRead() {
				if list, err = r.Snapshots(ctx); err != nil {
					g.warn("%v", err)
				}
			}
			rep, err := lc.Verify(ctx, ledger.VerifyOptions{ReadData: readData, Witnesses: vs, Admin: adm}, list)
			if err != nil {
				return err
			}
			var printErr error // a failure to print the problems, returned with them
			if g.json {
				if err := printJSON(cmd.OutOrStdout(), rep); err != nil {
					return err
				}
			} else {
				g.printf("ledger: %d records, signed up to record %d; %d snapshots and %d objects checked\n",
					rep.Records, rep.SignedN, rep.Snapshots, rep.Objects)
				for _, n := range rep.Notes {
					g.printf("note: %s\n", n)
				}
				for _, p := range rep.Problems {
					obj := ""
					if p.Object != "" {
						obj = " " + p.Object
					}
					if _, err := fmt.Fprintf(cmd.OutOrStdout(), "error: %s%s: %s\n", p.Kind, obj, p.Message); err != nil {
						printErr = fmt.Errorf("print the problems: %w", err)
						break
					}
				}
				if len(rep.Problems) == 0 {
					g.printf("no problems found\n")
				}
			}
			switch {
			case rep.Tampered():
				return errors.Join(fmt.Errorf("%w: verify found %d problems", blob.ErrTampered, len(rep.Problems)), printErr)
			case len(rep.Problems) > 0:
				return errors.Join(fmt.Errorf("%w: verify found %d problems", errDamaged, len(rep.Problems)), printErr)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&readData, "read-data", false, "also hash every pack the log names")
	f.StringArrayVar(&witnesses, "witness", nil, "require a co-signature by this witness `key` (repeatable)")
	f.StringVar(&adminPub, "admin-pub", "", "the administrator's public `key`, or a file holding it, to check removals against; pinned on first use (default $KALAJA_ADMIN_PUB, else a server's own)")
	return cmd
}

// adminVerifier returns the administrator's key that removals are checked
// against (ledger.Client.Admin): given as flag (a key or a file holding
// one), or in $KALAJA_ADMIN_PUB, or else the key a server repository's
// server holds; pinned on first use. Nil when none is known.
func adminVerifier(ctx context.Context, st store.Store, lc *ledger.Client, flag string) (note.Verifier, error) {
	key := strings.TrimSpace(env(flag, "KALAJA_ADMIN_PUB"))
	if key != "" && !strings.Contains(key, "+") {
		b, err := os.ReadFile(key)
		if err != nil {
			return nil, usageError{fmt.Errorf("--admin-pub: %w", err)}
		}
		key = strings.TrimSpace(string(b))
	}
	if as, ok := st.(prune.AdminStore); ok && key == "" {
		state, err := as.AdminState(ctx)
		if err != nil {
			return nil, fmt.Errorf("the server's administrator key: %w", err)
		}
		key = state.Key
	}
	return lc.Admin(key)
}

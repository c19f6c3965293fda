package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/kalaja/kalaja/internal/prune"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/snapshot"
)

// deleteOptions are the flags forget and prune share: how to delete.
type deleteOptions struct {
	adminKey string
	dryRun   bool
}

func (d *deleteOptions) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&d.adminKey, "admin-key", "", "the administrator's secret key file, to sign every deletion (default $KALAJA_ADMIN_KEY_FILE)")
	cmd.Flags().BoolVarP(&d.dryRun, "dry-run", "n", false, "say what would be deleted, delete nothing")
}

// remover returns what deletes from r's store (prune.NewRemover), reading
// the administrator's key, which every deletion needs: the ledger counts a
// removal only under the administrator's signed request.
func (d *deleteOptions) remover(r *repo.Repository) (prune.Remover, error) {
	file := env(d.adminKey, "KALAJA_ADMIN_KEY_FILE")
	if file == "" {
		return nil, usageError{fmt.Errorf("deleting from %s needs the administrator's signature: give the administrator's key with --admin-key or KALAJA_ADMIN_KEY_FILE", r.Store().Location())}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("administrator key: %w", err)
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("administrator key %s: not a secret note key (make one with 'kalaja admin keygen')", file)
	}
	return prune.NewRemover(r.Store(), signer, r.Config().ID)
}

func newForgetCommand(g *globalOptions) *cobra.Command {
	var (
		p       snapshot.Policy
		hosts   []string
		del     deleteOptions
		doPrune bool
		po      pruneOptions
	)
	cmd := &cobra.Command{
		Use:   "forget [SNAPSHOT...]",
		Short: "Delete snapshots by a policy, or by ID (administrator only)",
		Long: `Delete the named snapshots, or those a policy does not keep. Snapshots are
grouped by host and paths (the host whose server token stored a snapshot,
where the server recorded it; else the hostname the snapshot claims); in
each group the policy keeps the newest --keep-last, the newest of each of
the newest --keep-hourly hours, --keep-daily days, --keep-weekly weeks,
--keep-monthly months and --keep-yearly years, and every one stored within
--keep-within.

The policy reads the time the store recorded each snapshot (the server's,
the object store's or the file system's clock), never the time a snapshot
claims: a snapshot claiming a time more than --max-skew after it was stored is
suspect, counts for no rule and is kept, to be forgotten by ID. A flood of
fake future-dated snapshots from a compromised host therefore pushes no real
snapshot out of the policy.

Deleting is for the administrator: every deletion is a request signed with
the administrator's key (--admin-key), stored in the ledger with a removal
record of each snapshot before anything is deleted. A server carries the
request out and keeps what its retention still protects; on S3, Object Lock
does the same. The data only they
used stays until 'kalaja prune' (or --prune).`,
		RunE: func(cmd *cobra.Command, ids []string) error {
			ctx := cmd.Context()
			if len(ids) > 0 && !p.Empty() {
				return usageError{errors.New("give snapshot IDs or a policy, not both")}
			}
			if len(ids) == 0 && p.Empty() {
				return usageError{errors.New("no policy: give at least one --keep-* flag, or snapshot IDs")}
			}
			r, lc, err := g.openWithLedger(ctx)
			if err != nil {
				return err
			}
			if err := r.RequireRead(); err != nil {
				return fmt.Errorf("forget: %w", err)
			}
			if _, _, err := lc.Check(ctx); err != nil {
				return fmt.Errorf("ledger: %w (nothing was deleted; run 'kalaja verify' for details)", err)
			}
			host, _ := os.Hostname()
			fo := prune.ForgetOptions{IDs: ids, Policy: p, Hosts: hosts, DryRun: del.dryRun, Host: host,
				Remover: func() (prune.Remover, error) { return del.remover(r) }}
			decisions, kept, err := prune.Forget(ctx, r, lc, fo)
			if err != nil {
				return err
			}
			out := forgetReport{DryRun: del.dryRun, Kept: keptLines(kept)}
			for _, d := range decisions {
				out.Snapshots = append(out.Snapshots, forgetLine{ID: d.ID.String(), Host: d.Hostname, StoredBy: d.Owner, Paths: d.Paths,
					Time: d.Time, Stamp: d.Stamp, Keep: d.Keep, Reasons: d.Reasons})
			}
			if err := out.print(g); err != nil {
				return err
			}
			if doPrune && !del.dryRun {
				return runPrune(ctx, g, r, lc, &del, po)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&p.Last, "keep-last", 0, "keep the newest N snapshots")
	f.IntVar(&p.Hourly, "keep-hourly", 0, "keep the newest snapshot of each of the newest N hours")
	f.IntVar(&p.Daily, "keep-daily", 0, "keep the newest snapshot of each of the newest N days")
	f.IntVar(&p.Weekly, "keep-weekly", 0, "keep the newest snapshot of each of the newest N weeks")
	f.IntVar(&p.Monthly, "keep-monthly", 0, "keep the newest snapshot of each of the newest N months")
	f.IntVar(&p.Yearly, "keep-yearly", 0, "keep the newest snapshot of each of the newest N years")
	f.DurationVar(&p.Within, "keep-within", 0, "keep every snapshot stored within this long before now (e.g. 720h)")
	f.DurationVar(&p.MaxSkew, "max-skew", time.Hour, "how far a snapshot's claimed time may run ahead of its store stamp before it is suspect")
	f.StringSliceVar(&hosts, "host", nil, "only consider snapshots of these hosts")
	f.BoolVar(&doPrune, "prune", false, "run prune afterwards")
	del.flags(cmd)
	po.flags(cmd)
	return cmd
}

// forgetLine is one snapshot in forget's report.
type forgetLine struct {
	ID       string    `json:"id"`
	Host     string    `json:"host"`                // what the snapshot claims
	StoredBy string    `json:"stored_by,omitempty"` // the host the store recorded, which groups it
	Paths    []string  `json:"paths"`
	Time     time.Time `json:"time"`  // what the snapshot claims
	Stamp    time.Time `json:"stamp"` // when the store recorded it
	Keep     bool      `json:"keep"`
	Reasons  []string  `json:"reasons,omitempty"`
}

type forgetReport struct {
	DryRun    bool         `json:"dry_run"`
	Snapshots []forgetLine `json:"snapshots"`
	Kept      []keptLine   `json:"retained,omitempty"` // deletions the store refused
}

func (f forgetReport) print(g *globalOptions) error {
	if g.json {
		return printJSON(os.Stdout, f)
	}
	var removed int
	for _, s := range f.Snapshots {
		verb := "remove"
		if s.Keep {
			verb = "keep  "
		} else {
			removed++
		}
		host := s.Host
		if s.StoredBy != "" && s.StoredBy != s.Host {
			host = fmt.Sprintf("%s (claims %s)", s.StoredBy, s.Host)
		} else if s.StoredBy != "" {
			host = s.StoredBy
		}
		g.printf("%s %s  %s  %-12s %s  stored %s  %s\n", verb, s.ID[:8], s.Time.Local().Format("2006-01-02 15:04:05"),
			host, strings.Join(s.Paths, ","), s.Stamp.Local().Format("2006-01-02 15:04:05"), strings.Join(s.Reasons, ", "))
	}
	for _, k := range f.Kept {
		g.printf("retained %s: %s\n", k.Object, k.Reason)
	}
	switch {
	case f.DryRun:
		g.printf("%d snapshots would be removed (dry run)\n", removed)
	default:
		g.printf("%d snapshots removed, %d retained by the store\n", removed-len(f.Kept), len(f.Kept))
	}
	return nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/prune"
	"github.com/kalaja/kalaja/internal/repo"
)

// pruneOptions are prune's flags, also on forget --prune.
type pruneOptions struct {
	maxUnused string
	grace     time.Duration
}

func (o *pruneOptions) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.maxUnused, "max-unused", "10%", "copy the used blobs out of packs with more than this share unused, and delete the packs")
	cmd.Flags().DurationVar(&o.grace, "grace", 6*time.Hour, "leave packs and index files stored within this long alone (a backup running now may need them)")
}

// fraction parses "10%" or "0.1".
func (o *pruneOptions) fraction() (float64, error) {
	s := strings.TrimSpace(o.maxUnused)
	div := 1.0
	if t, ok := strings.CutSuffix(s, "%"); ok {
		s, div = t, 100
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f/div > 1 {
		return 0, usageError{fmt.Errorf("--max-unused %q: want a share such as 10%% or 0.1", o.maxUnused)}
	}
	return f / div, nil
}

func newPruneCommand(g *globalOptions) *cobra.Command {
	var (
		del deleteOptions
		po  pruneOptions
	)
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Delete data no snapshot uses (administrator only)",
		Args:  args(cobra.NoArgs),
		Long: `Reclaim the space of forgotten snapshots. Nothing is rewritten in place: the
used blobs of packs with more than --max-unused of their bytes unused are
copied into new packs, new index files list every pack that stays, and every
object about to go is named in a request signed with the administrator's key
(--admin-key), which is stored in the ledger with a removal record of each
object. Only then are the old index files and packs deleted: directly on a
local directory or S3 (where Object Lock keeps what is still retained), or by
the server carrying the request out, as far as its retention allows. What
retention keeps is deleted by a later prune.

Packs and index files stored within --grace are left alone, since a backup
running now may be about to use them. A backup that runs longer than that
watches for prune's signed requests and fails rather than store a snapshot
missing data; and prune keeps what it planned to delete if a snapshot was
stored while it ran (run it again later).`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			r, lc, err := g.openWithLedger(ctx)
			if err != nil {
				return err
			}
			if err := r.RequireRead(); err != nil {
				return fmt.Errorf("prune: %w", err)
			}
			if _, _, err := lc.Check(ctx); err != nil {
				return fmt.Errorf("ledger: %w (nothing was deleted; run 'kalaja verify' for details)", err)
			}
			return runPrune(ctx, g, r, lc, &del, po)
		},
	}
	del.flags(cmd)
	po.flags(cmd)
	return cmd
}

// runPrune plans and, unless a dry run, carries out a prune of r.
func runPrune(ctx context.Context, g *globalOptions, r *repo.Repository, lc *ledger.Client, del *deleteOptions, po pruneOptions) error {
	maxUnused, err := po.fraction()
	if err != nil {
		return err
	}
	o := prune.RunOptions{Options: prune.Options{MaxUnused: maxUnused, Grace: po.grace, Now: time.Now()}, DryRun: del.dryRun}
	if !del.dryRun {
		if o.Remover, err = del.remover(r); err != nil {
			return err
		}
		o.Host, _ = os.Hostname()
	}
	plan, res, err := prune.Run(ctx, r, lc, o)
	if plan == nil {
		return err
	}
	out := pruneReport{DryRun: del.dryRun, Stats: plan.Stats}
	if res != nil {
		out.Removed, out.Renewed = len(res.Removed), res.Renewed
		out.Retained = keptLines(res.Kept)
	}
	if err != nil {
		return errors.Join(out.print(g), err)
	}
	return out.print(g)
}

// keptLine is an object a deletion had to keep, for reports.
type keptLine struct {
	Object string `json:"object"`
	Reason string `json:"reason"`
}

func keptLines(kept []prune.Kept) []keptLine {
	out := make([]keptLine, len(kept))
	for i, k := range kept {
		out[i] = keptLine{k.Object.String(), k.Reason}
	}
	return out
}

type pruneReport struct {
	DryRun   bool        `json:"dry_run"`
	Stats    prune.Stats `json:"stats"`
	Removed  int         `json:"removed"`
	Renewed  int         `json:"renewed"` // objects whose Object Lock retention was extended
	Retained []keptLine  `json:"retained,omitempty"`
}

func (p pruneReport) print(g *globalOptions) error {
	if g.json {
		return printJSON(os.Stdout, p)
	}
	s := p.Stats
	g.printf("%d packs: %d kept, %d to copy (%s used), %d to delete; %d left alone as recent\n",
		s.Packs, s.KeptPacks, s.RepackPacks, fmtBytes(s.CopyBytes), s.DeletePacks, s.RecentPacks)
	g.printf("%s used, %s unused; %s to free, %d index files to replace\n",
		fmtBytes(s.UsedBytes), fmtBytes(s.UnusedBytes), fmtBytes(s.FreedBytes), s.IndexFiles)
	if p.DryRun {
		g.printf("dry run: nothing was written or deleted\n")
		return nil
	}
	for _, k := range p.Retained {
		g.printf("retained %s: %s\n", k.Object, k.Reason)
	}
	g.printf("%d objects removed, %d retained\n", p.Removed, len(p.Retained))
	if p.Renewed > 0 {
		g.printf("retention extended for %d objects that stay\n", p.Renewed)
	}
	return nil
}

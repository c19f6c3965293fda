package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/kalaja/kalaja/internal/admin"
	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/prune"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store"
)

// deleteOptions are the flags forget and prune share: how to delete.
type deleteOptions struct {
	adminKey string
	dryRun   bool
}

func (d *deleteOptions) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&d.adminKey, "admin-key", "", "the administrator's secret key file, to sign deletions on a server repository (default $KALAJA_ADMIN_KEY_FILE)")
	cmd.Flags().BoolVarP(&d.dryRun, "dry-run", "n", false, "say what would be deleted, delete nothing")
}

// adminStore is a store that deletes only on the administrator's signed
// request: a server repository (internal/store/remote).
type adminStore interface {
	AdminState(ctx context.Context) (admin.State, error)
	Admin(ctx context.Context, signed []byte) (admin.Result, error)
}

// remover returns what deletes from r's store: the store's own Remove for
// a local directory or an S3 bucket (where the credential decides and
// Object Lock refuses what is retained), or for a server, requests signed
// with the administrator's key.
func (d *deleteOptions) remover(r *repo.Repository) (prune.Remover, error) {
	switch st := r.Store().(type) {
	case adminStore:
		file := env(d.adminKey, "KALAJA_ADMIN_KEY_FILE")
		if file == "" {
			return nil, usageError{fmt.Errorf("%s deletes only what the administrator signs: give the administrator's key with --admin-key or KALAJA_ADMIN_KEY_FILE", r.Store().Location())}
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("administrator key: %w", err)
		}
		signer, err := note.NewSigner(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, fmt.Errorf("administrator key %s: not a secret note key (make one with 'kalaja admin keygen')", file)
		}
		return signedRemover{st, signer}, nil
	case store.Remover:
		return prune.Direct(st), nil
	}
	return nil, fmt.Errorf("%s cannot delete objects", r.Store().Location())
}

// signedRemover deletes through a server, one signed request per batch.
type signedRemover struct {
	st     adminStore
	signer note.Signer
}

// requestLifetime is how long a signed request stays valid: long enough to
// reach the server, short enough that a copy is of no later use.
const requestLifetime = time.Hour

func (s signedRemover) Remove(ctx context.Context, hs []store.Handle) ([]prune.Kept, error) {
	var kept []prune.Kept
	for start := 0; start < len(hs); start += admin.MaxDeletes {
		state, err := s.st.AdminState(ctx)
		if err != nil {
			return kept, err
		}
		req := admin.Request{Server: state.Server, Seq: state.Seq + 1,
			Expires: time.Now().Add(requestLifetime).Truncate(time.Second), Delete: hs[start:min(start+admin.MaxDeletes, len(hs))]}
		signed, err := req.Sign(s.signer)
		if err != nil {
			return kept, err
		}
		res, err := s.st.Admin(ctx, signed)
		if err != nil {
			return kept, err
		}
		for _, k := range res.Kept {
			reason := k.Reason
			if !k.Until.IsZero() {
				reason = fmt.Sprintf("%s (until %s)", reason, k.Until.UTC().Format(time.RFC3339))
			}
			kept = append(kept, prune.Kept{Object: k.Object, Reason: reason})
		}
	}
	return kept, nil
}

// removalRecords are the ledger's records of objects about to be deleted,
// with their sizes from a listing of the store.
func removalRecords(ctx context.Context, st store.Lister, hs []store.Handle, host string) ([]ledger.Record, error) {
	now := time.Now()
	var recs []ledger.Record
	for _, h := range hs {
		id, err := blob.ParseID(h.Name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", h, err)
		}
		fi, err := st.Stat(ctx, h)
		if err != nil {
			return nil, err
		}
		recs = append(recs, ledger.Record{Kind: ledger.Removed(ledger.KindOf(h.Type)), ID: id, Size: fi.Size, Time: now, Host: host})
	}
	return recs, nil
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
grouped by host and paths; in each group the policy keeps the newest
--keep-last, the newest of each of the newest --keep-hourly hours,
--keep-daily days, --keep-weekly weeks, --keep-monthly months and
--keep-yearly years, and every one stored within --keep-within.

The policy reads the time the store recorded each snapshot (the server's,
the object store's or the file system's clock), never the time a snapshot
claims: a snapshot claiming a time more than --max-skew after it was stored is
suspect, counts for no rule and is kept, to be forgotten by ID. A flood of
fake future-dated snapshots from a compromised host therefore pushes no real
snapshot out of the policy.

Deleting is for the administrator: on a server repository every deletion is a
request signed with the administrator's key (--admin-key), and the server
keeps what its retention still protects; on S3, Object Lock does the same.
Each deleted snapshot is first recorded in the ledger. The data only they
used stays until 'kalaja prune' (or --prune).`,
		RunE: func(cmd *cobra.Command, ids []string) error {
			ctx := cmd.Context()
			if len(ids) > 0 && !p.Empty() {
				return usageError{errors.New("give snapshot IDs or a policy, not both")}
			}
			if len(ids) == 0 && p.Empty() {
				return usageError{errors.New("no policy: give at least one --keep-* flag, or snapshot IDs")}
			}
			r, cl, err := g.openWithLedger(ctx)
			if err != nil {
				return err
			}
			if _, _, err := cl.log.Check(ctx, cl.seen); err != nil {
				return fmt.Errorf("ledger: %w (nothing was deleted; run 'kalaja verify' for details)", err)
			}
			list, err := stampedSnapshots(ctx, r)
			if err != nil {
				return err
			}
			var decisions []snapshot.Decision
			if len(ids) > 0 {
				decisions, err = byID(list, ids)
			} else {
				decisions = byPolicy(p, list, hosts)
			}
			if err != nil {
				return err
			}
			var doomed []store.Handle
			for _, d := range decisions {
				if !d.Keep {
					doomed = append(doomed, store.Handle{Type: store.Snapshots, Name: d.ID.String()})
				}
			}
			out := forgetReport{DryRun: del.dryRun}
			for _, d := range decisions {
				out.Snapshots = append(out.Snapshots, forgetLine{ID: d.ID.String(), Host: d.Hostname, Paths: d.Paths,
					Time: d.Time, Stamp: d.Stamp, Keep: d.Keep, Reasons: d.Reasons})
			}
			if !del.dryRun && len(doomed) > 0 {
				kept, err := forget(ctx, r, cl, &del, doomed)
				if err != nil {
					return err
				}
				out.Kept = keptLines(kept)
			}
			if err := out.print(g); err != nil {
				return err
			}
			if doPrune && !del.dryRun {
				return runPrune(ctx, g, r, cl, &del, po)
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

// stampedSnapshots loads every snapshot with its store stamp. A snapshot
// that cannot be read is an error: forget must not decide without it.
func stampedSnapshots(ctx context.Context, r *repo.Repository) ([]snapshot.Stamped, error) {
	stamps := map[string]time.Time{}
	if err := r.Store().List(ctx, store.Snapshots, func(fi store.FileInfo) error {
		stamps[fi.Name] = fi.Stamp
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	list, err := r.Snapshots(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w (nothing was deleted)", err)
	}
	out := make([]snapshot.Stamped, len(list))
	for i, sn := range list {
		out[i] = snapshot.Stamped{Snapshot: sn, Stamp: stamps[sn.ID.String()]}
	}
	return out, nil
}

// byID decides to remove the named snapshots and keep the others.
func byID(list []snapshot.Stamped, names []string) ([]snapshot.Decision, error) {
	plain := make([]*snapshot.Snapshot, len(list))
	for i, s := range list {
		plain[i] = s.Snapshot
	}
	doomed := map[blob.ID]bool{}
	for _, name := range names {
		sn, err := snapshot.Find(plain, name, nil)
		if err != nil {
			return nil, err
		}
		doomed[sn.ID] = true
	}
	var out []snapshot.Decision
	for _, s := range list {
		if doomed[s.ID] {
			out = append(out, snapshot.Decision{Stamped: s})
		}
	}
	return out, nil
}

// byPolicy applies p to each group of snapshots of the same host and
// paths, among those of hosts (all if empty).
func byPolicy(p snapshot.Policy, list []snapshot.Stamped, hosts []string) []snapshot.Decision {
	groups := map[string][]snapshot.Stamped{}
	var keys []string
	for _, s := range list {
		if len(hosts) > 0 && !slices.Contains(hosts, s.Hostname) {
			continue
		}
		paths := slices.Clone(s.Paths)
		slices.Sort(paths)
		key := s.Hostname + "\x00" + strings.Join(paths, "\x00")
		if groups[key] == nil {
			keys = append(keys, key)
		}
		groups[key] = append(groups[key], s)
	}
	slices.Sort(keys)
	now := time.Now()
	var out []snapshot.Decision
	for _, k := range keys {
		out = append(out, p.Apply(groups[k], now)...)
	}
	return out
}

// forget records the removal of doomed in the ledger, then deletes them,
// and returns what the store kept.
func forget(ctx context.Context, r *repo.Repository, cl *clientLedger, del *deleteOptions, doomed []store.Handle) ([]prune.Kept, error) {
	rm, err := del.remover(r)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	recs, err := removalRecords(ctx, r.Store(), doomed, host)
	if err != nil {
		return nil, err
	}
	if err := cl.append(ctx, recs); err != nil {
		return nil, fmt.Errorf("nothing was deleted: %w", err)
	}
	kept, err := rm.Remove(ctx, doomed)
	if err != nil {
		return kept, fmt.Errorf("delete snapshots: %w", err)
	}
	return kept, nil
}

// forgetLine is one snapshot in forget's report.
type forgetLine struct {
	ID      string    `json:"id"`
	Host    string    `json:"host"`
	Paths   []string  `json:"paths"`
	Time    time.Time `json:"time"`  // what the snapshot claims
	Stamp   time.Time `json:"stamp"` // when the store recorded it
	Keep    bool      `json:"keep"`
	Reasons []string  `json:"reasons,omitempty"`
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
		g.printf("%s %s  %s  %-12s %s  stored %s  %s\n", verb, s.ID[:8], s.Time.Local().Format("2006-01-02 15:04:05"),
			s.Host, strings.Join(s.Paths, ","), s.Stamp.Local().Format("2006-01-02 15:04:05"), strings.Join(s.Reasons, ", "))
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

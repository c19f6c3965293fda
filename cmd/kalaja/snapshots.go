package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kalaja/kalaja/internal/alert"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/recovery"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/snapshot"
)

func newSnapshotsCommand(g *globalOptions) *cobra.Command {
	var host, alertLog string
	cmd := &cobra.Command{
		Use:   "snapshots",
		Short: "List snapshots, oldest first, with their health",
		Long: `List snapshots, oldest first, with their health: "clean", or "suspect"
with the reasons, as the backup judged it against the parent snapshot and
the host's earlier clean ones (files that lost their format or turned into
random bytes, mass deletion, a new extension on many files, ransom notes;
docs/design.md, "Snapshot health"), and "unknown" for snapshots made before
snapshots carried health. A snapshot taken after an alert of its host's
watcher is suspect too, until a recovery resolved the alert: alerts and
resolutions of this host's alert log (--alert-log), and those the ledger
holds for any host (recorded by the vault, kalaja serve).`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := g.openToRead(cmd.Context(), "snapshots", false)
			if err != nil {
				return err
			}
			list, err := r.Snapshots(cmd.Context())
			if err != nil {
				g.warn("%v", err)
			}
			log, err := g.readAlertLog(alertLog)
			if err != nil {
				return err
			}
			recs := g.ledgerRecords(cmd.Context(), r)
			self, _ := os.Hostname()
			var out []*snapshot.Snapshot
			for _, s := range list {
				if host == "" || s.Hostname == host {
					out = append(out, s)
				}
			}
			timelines := map[string]*alert.Log{}
			verdict := func(s *snapshot.Snapshot) recovery.Verdict {
				tl, ok := timelines[s.Hostname]
				if !ok {
					var local *alert.Log
					if s.Hostname == self {
						local = log
					}
					tl = recovery.Timeline(local, recs, s.Hostname)
					timelines[s.Hostname] = tl
				}
				return recovery.Judge(s, tl)
			}
			if g.json {
				type health struct {
					recovery.Verdict
					Stats *snapshot.Stats `json:"stats,omitempty"`
				}
				type item struct {
					ID string `json:"id"`
					*snapshot.Snapshot
					Health health `json:"health"`
				}
				items := make([]item, 0, len(out))
				for _, s := range out {
					it := item{ID: s.ID.String(), Snapshot: s, Health: health{Verdict: verdict(s)}}
					if s.Health != nil {
						it.Health.Stats = &s.Health.Stats
					}
					items = append(items, it)
				}
				return printJSON(cmd.OutOrStdout(), items)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTime\tHost\tTags\tSize\tHealth\tPaths")
			var reasons []string
			for _, s := range out {
				size := ""
				if s.Summary != nil {
					size = fmtBytes(s.Summary.TotalBytes)
				}
				v := verdict(s)
				status := string(v.Status)
				if v.Status == recovery.Suspect {
					status = "SUSPECT"
					reasons = append(reasons, fmt.Sprintf("%s: %s", s.ID.Short(), strings.Join(v.Reasons, "; ")))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID.Short(), s.Time.Local().Format("2006-01-02 15:04:05"),
					s.Hostname, strings.Join(s.Tags, ","), size, status, strings.Join(s.Paths, " "))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			g.printf("%d snapshots\n", len(out))
			for _, r := range reasons {
				g.printf("suspect %s\n", r)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&host, "host", "", "only snapshots of this host")
	cmd.Flags().StringVar(&alertLog, "alert-log", "", "this host's alert log (default $KALAJA_ALERT_LOG, else alerts.jsonl in the state directory)")
	return cmd
}

// readAlertLog reads this host's alert log (alertLogPath), warning about
// lines it could not read.
func (g *globalOptions) readAlertLog(flag string) (*alert.Log, error) {
	path, err := g.alertLogPath(flag)
	if err != nil {
		return nil, err
	}
	log, err := alert.ReadLog(path)
	if err != nil {
		return nil, err
	}
	if log.Bad > 0 {
		g.warn("alert log %s: %d lines could not be read and were skipped", path, log.Bad)
	}
	return log, nil
}

// ledgerRecords returns the ledger's records, for the incidents the vault
// recorded in it. A ledger that cannot be opened or read is warned about,
// and none are returned: health is then judged from the alert log alone.
func (g *globalOptions) ledgerRecords(ctx context.Context, r *repo.Repository) []ledger.Record {
	if !withLedger {
		return nil
	}
	lc, err := g.openLedger(ctx, r)
	if err == nil {
		var recs []ledger.Record
		if recs, _, err = lc.Log.RecordsFrom(ctx, 0); err == nil {
			return recs
		}
	}
	g.warn("ledger: %v (alerts the vault recorded are not taken into account)", err)
	return nil
}

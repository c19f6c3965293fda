package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kalaja/kalaja/internal/alert"
	"github.com/kalaja/kalaja/internal/recovery"
	"github.com/kalaja/kalaja/internal/restorer"
)

// recoverOptions are the flags of kalaja recover.
type recoverOptions struct {
	inPlace      bool
	target       string
	dryRun       bool
	snapshot     string
	before       string
	allowSuspect bool
	host         string
	quarantine   string
	force        bool
	alertLog     string
}

func newRecoverCommand(g *globalOptions) *cobra.Command {
	o := &recoverOptions{}
	cmd := &cobra.Command{
		Use:   "recover PATH... (--in-place | --target DIR)",
		Short: "Bring paths back to the last clean snapshot, in place or into a folder, and verify",
		Long: `Bring the given paths back to this host's last clean snapshot.

The snapshot: the newest of this host (--host) that holds the paths, whose
health is clean (or unknown: made before snapshots carried health), that the
ledger proves under a checkpoint this client has checked, and that was taken
before the incident began: the first alert of the host's watcher not
resolved since (this host's alert log, --alert-log, and the alerts and
resolutions the ledger holds for the host, recorded by the vault), or the
first suspect snapshot, whichever is earlier. A snapshot taken after damage
began may judge clean against a damaged parent, so every later one is
passed over. recover says which it chose and why, and what it passed
over. --before TIME passes over snapshots from TIME on; --snapshot ID names
one instead (it must still be proven, and neither suspect nor after the
incident unless --allow-suspect).

--in-place repairs the live tree: a file whose size, times and inode are
those of the snapshot is left alone unread; one that may differ is read and
compared with the snapshot's blob IDs; only what differs is restored.
Everything the snapshot does not have there, and every file it replaces
(ransom notes, *.locked copies, files written after the snapshot), is moved
into a quarantine folder (--quarantine; default .kalaja-quarantine/<time>
at the root of the file system holding the first path), under its path:
nothing is deleted. Symlinks in the live tree are never followed. recover
refuses to repair in place while a stopped process (as the watcher leaves
one) holds a file open under the paths (--force to go on).

--target DIR restores the paths under DIR instead (the file /srv/x becomes
DIR/srv/x), the same way. --dry-run prints what would be done.

Every file written is read back and compared with the snapshot. After a
repair in place without errors, the incident is marked resolved in the
alert log and in the ledger (a "resolved" record of this host), so that the
next snapshots are judged on their own.

Exit codes: 0 done and verified; 1 some paths could not be repaired or
verified (listed); 13 the ledger contradicts what this client saw.`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, paths []string) error {
			return runRecover(cmd, g, o, paths)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.inPlace, "in-place", false, "repair the live tree")
	f.StringVarP(&o.target, "target", "t", "", "restore under this folder instead")
	f.BoolVarP(&o.dryRun, "dry-run", "n", false, "print what would be done, change nothing")
	f.StringVar(&o.snapshot, "snapshot", "", "use this snapshot (ID, prefix or latest) instead of choosing")
	f.StringVar(&o.before, "before", "", "pass over snapshots taken at or after this time (RFC 3339, or 2006-01-02[ 15:04[:05]] local)")
	f.BoolVar(&o.allowSuspect, "allow-suspect", false, "let --snapshot name a suspect snapshot, or one taken after the incident began")
	f.StringVar(&o.host, "host", "", "whose snapshots to choose from (default: this host's name)")
	f.StringVar(&o.quarantine, "quarantine", "", "where to move what the repair takes away (default: .kalaja-quarantine/<time> at the root of the file system)")
	f.BoolVar(&o.force, "force", false, "repair in place even while a stopped process holds files open under the paths")
	f.StringVar(&o.alertLog, "alert-log", "", "this host's alert log (default $KALAJA_ALERT_LOG, else alerts.jsonl in the state directory)")
	return cmd
}

// recoverResult is what recover prints with --json.
type recoverResult struct {
	Choice *choiceLine       `json:"choice"`
	Report *recovery.Report  `json:"report,omitempty"`
	Held   []recovery.Holder `json:"held,omitempty"`
}

type choiceLine struct {
	Snapshot    string           `json:"snapshot,omitempty"`
	Time        time.Time        `json:"time,omitzero"`
	Verdict     recovery.Verdict `json:"verdict"`
	Why         string           `json:"why,omitempty"`
	Incident    time.Time        `json:"incident,omitzero"`
	IncidentWhy string           `json:"incident_why,omitempty"`
	Passed      []passedLine     `json:"passed"`
}

type passedLine struct {
	Snapshot string    `json:"snapshot"`
	Time     time.Time `json:"time"`
	Reason   string    `json:"reason"`
}

func runRecover(cmd *cobra.Command, g *globalOptions, o *recoverOptions, args []string) error {
	ctx := cmd.Context()
	if o.inPlace == (o.target != "") {
		return usageError{errors.New("say where to recover: --in-place, or --target DIR")}
	}
	if o.force && !o.inPlace {
		return usageError{errors.New("--force is for --in-place")}
	}
	paths, err := absPaths(args)
	if err != nil {
		return usageError{err}
	}
	before, err := parseTime(o.before)
	if err != nil {
		return usageError{fmt.Errorf("--before: %w", err)}
	}
	self, _ := os.Hostname()
	host := o.host
	if host == "" {
		host = self
	}
	r, err := g.openToRead(ctx, "recover", true)
	if err != nil {
		return err
	}
	lc, err := g.openLedger(ctx, r)
	if err != nil {
		return err
	}
	ro := recovery.RecoverOptions{
		Choose: recovery.Options{Host: host, Paths: paths, Before: before, Snapshot: o.snapshot, AllowSuspect: o.allowSuspect},
		Repair: recovery.RepairOptions{DryRun: o.dryRun, Progress: &restorer.Progress{},
			OnError: func(path string, err error) { fmt.Fprintf(os.Stderr, "\r\033[Kerror: %s: %v\n", path, err) }},
		Force: o.force,
	}
	var local *alert.Log
	if host == self {
		if local, err = g.readAlertLog(o.alertLog); err != nil {
			return err
		}
		if ro.AlertLog, err = g.alertLogPath(o.alertLog); err != nil {
			return err
		}
		ro.Ledger = lc
	}
	recs, _, err := lc.Log.RecordsFrom(ctx, 0)
	if err != nil {
		return fmt.Errorf("ledger: %w (nothing was recovered; run 'kalaja verify' for details)", err)
	}
	ro.Choose.Alerts = recovery.Timeline(local, recs, host)
	if o.target != "" {
		if ro.Repair.Root, err = filepath.Abs(o.target); err != nil {
			return usageError{fmt.Errorf("--target: %w", err)}
		}
	}
	if o.quarantine != "" {
		if ro.Repair.Quarantine, err = filepath.Abs(o.quarantine); err != nil {
			return usageError{fmt.Errorf("--quarantine: %w", err)}
		}
	}
	var m *meter
	if g.progressEnabled() {
		p := ro.Repair.Progress
		m = startMeter(func(el time.Duration) string {
			return progressLine(el, p.Files.Load(), p.Bytes.Load(), 0, 0, false)
		})
	}
	choice, held, rep, err := recovery.Recover(ctx, r, lc, ro)
	m.Stop()
	res := recoverResult{Choice: choiceOf(choice), Report: rep, Held: held}
	if g.json {
		if perr := printJSON(cmd.OutOrStdout(), res); perr != nil && err == nil {
			err = perr
		}
	} else {
		if res.Choice != nil {
			printChoice(g, res.Choice)
		}
		if rep != nil {
			printRepair(g, rep, o.target)
		}
	}
	switch {
	case errors.Is(err, recovery.ErrHeld):
		return fmt.Errorf("%w; kill or resume it, then recover again (or --force)", err)
	case err != nil:
		return err
	case rep.Errors > 0:
		return fmt.Errorf("%d paths could not be recovered or verified (listed above)", rep.Errors)
	}
	return nil
}

// absPaths makes paths absolute and clean. They need not exist: a path
// an attack deleted is one to recover.
func absPaths(paths []string) ([]string, error) {
	out := make([]string, len(paths))
	for i, p := range paths {
		a, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("path %q: %w", p, err)
		}
		out[i] = a
	}
	return out, nil
}

// parseTime reads a --before time: RFC 3339, or a date with an optional
// time of day in local time. "" is the zero time.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q: want RFC 3339 (2026-12-06T10:00:00Z) or 2026-12-06[ 10:00[:00]]", s)
}

func choiceOf(c *recovery.Choice) *choiceLine {
	if c == nil {
		return nil
	}
	l := &choiceLine{Why: c.Why, Incident: c.Incident, IncidentWhy: c.IncidentWhy, Verdict: c.Verdict, Passed: []passedLine{}}
	if c.Snapshot != nil {
		l.Snapshot, l.Time = c.Snapshot.ID.String(), c.Snapshot.Time
	}
	for _, p := range c.Passed {
		l.Passed = append(l.Passed, passedLine{Snapshot: p.Snapshot.ID.String(), Time: p.Snapshot.Time, Reason: p.Reason})
	}
	return l
}

func printChoice(g *globalOptions, c *choiceLine) {
	if c.Incident.IsZero() {
		g.printf("no incident: no unresolved alert, no suspect snapshot\n")
	} else {
		g.printf("incident began %s: %s\n", c.Incident.Local().Format(time.DateTime), c.IncidentWhy)
	}
	for _, p := range c.Passed {
		g.printf("passed over %s (%s): %s\n", p.Snapshot[:8], p.Time.Local().Format(time.DateTime), p.Reason)
	}
	if c.Snapshot != "" {
		g.printf("chose %s (%s, %s): %s\n", c.Snapshot[:8], c.Time.Local().Format(time.DateTime), c.Verdict.Status, c.Why)
	}
}

func printRepair(g *globalOptions, rep *recovery.Report, target string) {
	where := "in place"
	if target != "" {
		where = "under " + target
	}
	verb := "recovered"
	if rep.DryRun {
		verb = "would recover"
		for _, a := range rep.Actions {
			g.printf("%-12s %s (%s)\n", a.Do, a.Path, a.Reason)
		}
		if rep.ActionsOmitted > 0 {
			g.printf("... and %d more\n", rep.ActionsOmitted)
		}
	}
	g.printf("%s %s %s: %d files restored (%s), %d other entries and %d folders made, %d repaired in metadata, "+
		"%d moved to quarantine (%d files, %s) in %s, %d left as they were (%s); %d verified, %d failed verification; %d errors; %.2f s\n",
		verb, strings.Join(rep.Paths, " "), where, rep.FilesRestored, fmtBytes(rep.BytesRestored), rep.OtherRestored+rep.LinksRestored,
		rep.DirsCreated, rep.MetadataRepaired, rep.Quarantined, rep.QuarantinedFiles, fmtBytes(rep.QuarantinedBytes), rep.Quarantine,
		rep.Unchanged, fmtBytes(rep.UnchangedBytes), rep.Verified, rep.VerifyFailed, rep.Errors, rep.Seconds)
}

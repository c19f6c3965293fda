package recovery

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kalaja/kalaja/internal/alert"
	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/detect"
	"github.com/kalaja/kalaja/internal/fswatch"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/snapshot"
)

// Status is a snapshot's health as recovery judges it.
type Status string

// Statuses. Unknown is a snapshot made before snapshots carried health,
// with no alert against it: nothing says it is suspect.
const (
	Clean   Status = "clean"
	Suspect Status = "suspect"
	Unknown Status = "unknown"
)

// Verdict is a snapshot's health: its backup's verdict, and the alerts of
// the host's watcher that were raised before the backup ended and not
// resolved before it began.
type Verdict struct {
	Status  Status   `json:"status"`
	Reasons []string `json:"reasons,omitempty"`
	// Alerts counts the alerts that mark the snapshot suspect.
	Alerts int `json:"alerts,omitempty"`
}

// end is when a snapshot's backup ended: a file it read may have been
// damaged up to then.
func end(sn *snapshot.Snapshot) time.Time {
	if sn.Summary != nil && !sn.Summary.End.IsZero() {
		return sn.Summary.End
	}
	return sn.Time
}

// Judge returns sn's verdict. log is the incident timeline of sn's host
// (Timeline: its alert log and the ledger's records; nil for none): an
// alert raised before sn's backup ended marks it suspect unless a
// resolution (a recovery) came between the alert and the backup's start.
func Judge(sn *snapshot.Snapshot, log *alert.Log) Verdict {
	v := Verdict{Status: Unknown}
	if sn.Health != nil {
		h := sn.Health.Verdict()
		v.Status = Status(h.Status)
		for _, r := range h.Reasons {
			v.Reasons = append(v.Reasons, r.String())
		}
	}
	if log == nil {
		return v
	}
	var first time.Time
	for _, a := range log.Alerts {
		if !a.Time.Before(end(sn)) || resolvedBetween(log, a.Time, sn.Time) {
			continue
		}
		if v.Alerts == 0 || a.Time.Before(first) {
			first = a.Time
		}
		v.Alerts++
	}
	if v.Alerts > 0 {
		v.Status = Suspect
		v.Reasons = append(v.Reasons, fmt.Sprintf("taken after %d alert(s) of the watcher on this host, the first at %s", v.Alerts, first.UTC().Format(time.RFC3339)))
	}
	return v
}

// resolvedBetween reports whether log holds a resolution after from and
// before to.
func resolvedBetween(log *alert.Log, from, to time.Time) bool {
	for _, r := range log.Resolutions {
		if r.Time.After(from) && r.Time.Before(to) {
			return true
		}
	}
	return false
}

// Options says which snapshots may be chosen.
type Options struct {
	Host  string   // the host whose snapshots are candidates
	Paths []string // absolute, clean: each must lie in the snapshot's paths
	// Before, if set, passes over snapshots taken at or after it.
	Before time.Time
	// Snapshot, if set, names the snapshot to use ("latest", an ID or a
	// prefix) instead of choosing one; it must still be proven, and not
	// suspect or newer than the incident unless AllowSuspect.
	Snapshot string
	// AllowSuspect lets Snapshot name a suspect snapshot, or one taken
	// after the incident began.
	AllowSuspect bool
	// Alerts is the host's incident timeline (Timeline: its alert log and
	// the ledger's records; nil for none).
	Alerts *alert.Log
	// Proven reports whether the ledger proves the snapshot of that ID
	// (ledger.Client.ProvenSnapshots).
	Proven func(blob.ID) bool
}

// Passed is a snapshot recovery did not choose, and why.
type Passed struct {
	Snapshot *snapshot.Snapshot
	Verdict  Verdict
	Reason   string
}

// Choice is the snapshot chosen and how.
type Choice struct {
	Snapshot *snapshot.Snapshot
	Verdict  Verdict
	Why      string
	// Incident is when the incident began: the first unresolved alert or
	// the first suspect snapshot after the last resolution (zero if none).
	Incident    time.Time
	IncidentWhy string
	// Passed are the candidates newer than the chosen one (all of them if
	// none was chosen), newest first, each with why it was passed over.
	Passed []Passed
}

// Covers reports whether sn backed up every one of paths (each equal to
// or below one of sn.Paths).
func Covers(sn *snapshot.Snapshot, paths []string) bool {
	for _, p := range paths {
		if !slices.ContainsFunc(sn.Paths, func(q string) bool { return fswatch.Under(p, q) }) {
			return false
		}
	}
	return true
}

// Choose picks the snapshot of o.Host that covers o.Paths to go back to:
// the newest that is not suspect, is proven by the ledger, and was taken
// before the incident began and before o.Before. The incident begins at
// the host's first alert not resolved since, or at its first suspect
// snapshot after the last resolution, whichever is earlier: a snapshot
// taken after damage began may judge clean against a damaged parent, so
// everything after the incident's start is passed over. With o.Snapshot
// the named snapshot is used if it is proven, and (unless o.AllowSuspect)
// not suspect and older than the incident. It returns an error naming what
// was passed over when no snapshot qualifies.
func Choose(list []*snapshot.Snapshot, o Options) (*Choice, error) {
	var cands []*snapshot.Snapshot
	for _, sn := range list {
		if sn.Hostname == o.Host && Covers(sn, o.Paths) {
			cands = append(cands, sn)
		}
	}
	slices.SortFunc(cands, func(a, b *snapshot.Snapshot) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID.String(), b.ID.String())
	})
	if len(cands) == 0 {
		return nil, fmt.Errorf("no snapshot of host %q holds %s: %w", o.Host, strings.Join(o.Paths, ", "), blob.ErrNotFound)
	}
	c := &Choice{}
	c.Incident, c.IncidentWhy = incident(cands, o.Alerts)
	judge := func(sn *snapshot.Snapshot) (Verdict, string) {
		v := Judge(sn, o.Alerts)
		switch {
		case o.Proven == nil || !o.Proven(sn.ID):
			return v, "not proven by the ledger under a checkpoint this client checked"
		case !c.Incident.IsZero() && !sn.Time.Before(c.Incident):
			return v, "taken after the incident began (" + c.IncidentWhy + ")"
		case v.Status == Suspect:
			return v, "suspect: " + strings.Join(v.Reasons, "; ")
		case !o.Before.IsZero() && !sn.Time.Before(o.Before):
			return v, "not before " + o.Before.UTC().Format(time.RFC3339)
		}
		return v, ""
	}
	if o.Snapshot != "" {
		sn, err := snapshot.Find(cands, o.Snapshot, nil)
		if err != nil {
			return nil, fmt.Errorf("%w (among the snapshots of host %q that hold %s)", err, o.Host, strings.Join(o.Paths, ", "))
		}
		v, why := judge(sn)
		if o.Proven == nil || !o.Proven(sn.ID) {
			return nil, fmt.Errorf("snapshot %s is %s: recover restores only what the ledger proves (use 'kalaja restore' to read it anyway)", sn.ID.Short(), why)
		}
		if why != "" && !o.AllowSuspect && !strings.HasPrefix(why, "not before") {
			return nil, fmt.Errorf("snapshot %s is %s (--allow-suspect to use it anyway)", sn.ID.Short(), why)
		}
		c.Snapshot, c.Verdict, c.Why = sn, v, "named with --snapshot"
		if why != "" {
			c.Why += "; " + why
		}
		return c, nil
	}
	for _, sn := range cands {
		v, why := judge(sn)
		if why == "" {
			c.Snapshot, c.Verdict = sn, v
			c.Why = "the newest snapshot of this host and these paths that is " + string(v.Status) + " and proven by the ledger"
			if !c.Incident.IsZero() {
				c.Why += ", taken before the incident began"
			}
			return c, nil
		}
		c.Passed = append(c.Passed, Passed{Snapshot: sn, Verdict: v, Reason: why})
	}
	return c, fmt.Errorf("no snapshot of host %q qualifies: all %d that hold %s were passed over", o.Host, len(cands), strings.Join(o.Paths, ", "))
}

// incident returns when the incident began, and why: the earliest of the
// first alert after the newest resolution and the first snapshot after it
// whose own health is suspect.
func incident(cands []*snapshot.Snapshot, log *alert.Log) (time.Time, string) {
	var t time.Time
	var why string
	var resolved time.Time
	if log != nil {
		for _, r := range log.Resolutions {
			if r.Time.After(resolved) {
				resolved = r.Time
			}
		}
		for _, a := range log.Unresolved() {
			if t.IsZero() || a.Time.Before(t) {
				t, why = a.Time, describe(a)
			}
		}
	}
	for _, sn := range cands {
		if sn.Health == nil || sn.Health.Status != snapshot.Suspect || !sn.Time.After(resolved) {
			continue
		}
		if t.IsZero() || sn.Time.Before(t) {
			t, why = sn.Time, fmt.Sprintf("snapshot %s at %s, suspect", sn.ID.Short(), sn.Time.UTC().Format(time.RFC3339))
		}
	}
	return t, why
}

// describe names an alert of the timeline for a reason.
func describe(a detect.Alert) string {
	at := a.Time.UTC().Format(time.RFC3339)
	if a.Scope == VaultScope {
		return "the watcher's alert the vault received at " + at
	}
	return fmt.Sprintf("the watcher's alert at %s, %s (pid %d)", at, a.Command, a.PID)
}

// RecoverOptions configures Recover.
type RecoverOptions struct {
	// Choose says which snapshot to go back to; Recover fills in Proven.
	Choose Options
	// Repair says where and how; Recover fills in Paths (Choose.Paths)
	// and, if empty, Quarantine (DefaultQuarantine of the first path, or
	// under Root for a repair into another folder).
	Repair RepairOptions
	// Force repairs in place even while a stopped process holds a file
	// open under the paths (Holders).
	Force bool
	// AlertLog, if set, is the alert log to which a resolution of the
	// incident is appended after a repair in place (no Root) without
	// errors, so that the next snapshots are judged on their own.
	AlertLog string
	// Ledger, if set, is where the same resolution is also recorded, as a
	// ledger.KindResolved record of Choose.Host whose ID is the SHA-256 of
	// the resolution's alert log line (alert.Resolution.Line), so that the
	// vault and every reader of the ledger see the incident end.
	Ledger Appender
}

// Appender appends records to the ledger: ledger.Client.
type Appender interface {
	Append(ctx context.Context, recs []ledger.Record) error
}

// ErrHeld is wrapped by the error of a repair in place refused because a
// stopped process holds files under the paths.
var ErrHeld = errors.New("a stopped process holds files under the paths")

// Recover is kalaja recover: it chooses the snapshot to go back to among
// src's snapshots, proven by lg (Choose), refuses a repair in place while
// a stopped process holds files under the paths unless o.Force (an error
// wrapping ErrHeld, with the holders), repairs (Repair), and after a clean
// repair in place resolves the incident in o.AlertLog and o.Ledger (the
// alert log first). It returns what it
// got to: the choice (with what was passed over, also when none
// qualifies), the holders, the report.
func Recover(ctx context.Context, src HealSource, lg Prover, o RecoverOptions) (*Choice, []Holder, *Report, error) {
	proven, _, err := lg.ProvenSnapshots(ctx)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("ledger: %w (nothing was recovered; run 'kalaja verify' for details)", err)
	}
	list, err := src.Snapshots(ctx)
	if err != nil && len(list) == 0 {
		return nil, nil, nil, err
	}
	co := o.Choose
	co.Proven = func(id blob.ID) bool { _, ok := proven[id]; return ok }
	c, err := Choose(list, co)
	if err != nil {
		return c, nil, nil, err
	}
	ro := o.Repair
	ro.Paths = co.Paths
	now := time.Now()
	inPlace := ro.Root == ""
	if inPlace && !o.Force && !ro.DryRun {
		held, err := Holders(ro.Paths)
		if err != nil {
			return c, nil, nil, err
		}
		if len(held) > 0 {
			return c, held, nil, fmt.Errorf("%w: %s", ErrHeld, heldList(held))
		}
	}
	if ro.Quarantine == "" {
		if inPlace {
			if ro.Quarantine, err = DefaultQuarantine(ro.Paths[0], now); err != nil {
				return c, nil, nil, err
			}
		} else {
			ro.Quarantine = filepath.Join(ro.Root, snapshot.QuarantineName, now.UTC().Format(QuarantineTime))
		}
	}
	rep, err := Repair(ctx, src, c.Snapshot, ro)
	if err != nil || rep.Errors > 0 || !inPlace || ro.DryRun {
		return c, nil, rep, err
	}
	return c, nil, rep, resolve(ctx, o, alert.Resolution{Time: time.Now(), Resolved: alert.Resolved{
		By: "recover", Snapshot: c.Snapshot.ID.String(), Paths: ro.Paths}})
}

// resolve writes res to o.AlertLog and o.Ledger, those that are set.
func resolve(ctx context.Context, o RecoverOptions, res alert.Resolution) error {
	if o.AlertLog != "" {
		if err := alert.Resolve(o.AlertLog, res); err != nil {
			return fmt.Errorf("recovered, but the incident could not be marked resolved: %w", err)
		}
	}
	if o.Ledger == nil {
		return nil
	}
	line, err := res.Line()
	if err == nil {
		err = o.Ledger.Append(ctx, []ledger.Record{{Kind: ledger.KindResolved, ID: sha256.Sum256(line), Size: int64(len(line)),
			Time: res.Time, Host: o.Choose.Host}})
	}
	if err != nil {
		return fmt.Errorf("recovered, but the incident's resolution could not be recorded in the ledger: %w", err)
	}
	return nil
}

// heldList names the holders.
func heldList(held []Holder) string {
	var parts []string
	for _, h := range held {
		parts = append(parts, fmt.Sprintf("pid %d (%s, user %s) holds %s", h.PID, h.Command, h.User, h.File))
	}
	return strings.Join(parts, "; ")
}

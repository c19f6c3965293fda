package prune

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/kalaja/kalaja/internal/admin"
	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store"
)

// Ledger is where forget and prune record each object before they delete
// it: ledger.Client.Append.
type Ledger interface {
	Append(ctx context.Context, recs []ledger.Record) error
}

// ForgetOptions says which snapshots forget removes: those named by IDs
// (as snapshot.Find resolves names), or else those Policy does not keep
// among the snapshots of Hosts (all hosts if empty), grouped by host and
// paths.
type ForgetOptions struct {
	IDs    []string
	Policy snapshot.Policy
	Hosts  []string
	// DryRun decides and removes nothing.
	DryRun bool
	// Remover returns what deletes; it is called only when there is
	// something to delete, so that a policy that removes nothing needs no
	// administrator's key.
	Remover func() (Remover, error)
	Host    string // the host recorded in the removal records
}

// ForgetSource is the repository as forget reads it.
type ForgetSource interface {
	Store() store.Store
	Snapshots(ctx context.Context) ([]*snapshot.Snapshot, error)
}

// Forget decides, from the time the store stamped each snapshot, which
// snapshots to remove (snapshot.Named or Policy.ApplyGroups), records
// their removal in lg, and deletes them with o.Remover. It returns every
// decision and what the remover had to keep. A snapshot that cannot be
// read stops it before it decides anything; records that cannot be
// appended stop it before it deletes anything.
func Forget(ctx context.Context, src ForgetSource, lg Ledger, o ForgetOptions) ([]snapshot.Decision, []Kept, error) {
	list, err := StampedSnapshots(ctx, src.Store(), src.Snapshots)
	if err != nil {
		return nil, nil, err
	}
	var decisions []snapshot.Decision
	if len(o.IDs) > 0 {
		if decisions, err = snapshot.Named(list, o.IDs); err != nil {
			return nil, nil, err
		}
	} else {
		decisions = o.Policy.ApplyGroups(list, o.Hosts, time.Now())
	}
	var doomed []store.Handle
	for _, d := range decisions {
		if !d.Keep {
			doomed = append(doomed, store.Handle{Type: store.Snapshots, Name: d.ID.String()})
		}
	}
	if o.DryRun || len(doomed) == 0 {
		return decisions, nil, nil
	}
	rm, err := o.Remover()
	if err != nil {
		return decisions, nil, err
	}
	kept, err := remove(ctx, src.Store(), lg, rm, doomed, o.Host)
	return decisions, kept, err
}

// remove records the removal of the snapshots doomed in lg, then deletes
// them with rm, and returns what rm had to keep. Nothing is deleted if the
// records cannot be appended.
func remove(ctx context.Context, st store.Lister, lg Ledger, rm Remover, doomed []store.Handle, host string) ([]Kept, error) {
	recs, err := RemovalRecords(ctx, st, doomed, host, time.Now())
	if err != nil {
		return nil, err
	}
	if err := lg.Append(ctx, recs); err != nil {
		return nil, fmt.Errorf("nothing was deleted: %w", err)
	}
	kept, err := rm.Remove(ctx, doomed)
	if err != nil {
		return kept, fmt.Errorf("delete snapshots: %w", err)
	}
	return kept, nil
}

// RemovalRecords returns the ledger's records, at time now for host, of the
// objects hs about to be deleted, with their sizes from the store.
func RemovalRecords(ctx context.Context, st store.Lister, hs []store.Handle, host string, now time.Time) ([]ledger.Record, error) {
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

// StampedSnapshots loads every snapshot of a repository with the time its
// store stamped it. A snapshot that cannot be read is an error: forget must
// not decide without it.
func StampedSnapshots(ctx context.Context, st store.Lister, load func(context.Context) ([]*snapshot.Snapshot, error)) ([]snapshot.Stamped, error) {
	stamps := map[string]time.Time{}
	if err := st.List(ctx, store.Snapshots, func(fi store.FileInfo) error {
		stamps[fi.Name] = fi.Stamp
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	list, err := load(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w (nothing was deleted)", err)
	}
	out := make([]snapshot.Stamped, len(list))
	for i, sn := range list {
		out[i] = snapshot.Stamped{Snapshot: sn, Stamp: stamps[sn.ID.String()]}
	}
	return out, nil
}

// AdminStore is a store that deletes only on the administrator's signed
// request: a server repository (internal/store/remote).
type AdminStore interface {
	AdminState(ctx context.Context) (admin.State, error)
	Admin(ctx context.Context, signed []byte) (admin.Result, error)
}

// requestLifetime is how long a signed request stays valid: long enough
// to reach the server, short enough that a copy is of no later use.
const requestLifetime = time.Hour

// Signed is a Remover that deletes through a server, one request signed
// with the administrator's key per batch of at most admin.MaxDeletes
// objects. What the server keeps (its retention) is returned as kept.
func Signed(st AdminStore, signer note.Signer) Remover { return signed{st, signer} }

type signed struct {
	st     AdminStore
	signer note.Signer
}

func (s signed) Remove(ctx context.Context, hs []store.Handle) ([]Kept, error) {
	var kept []Kept
	for start := 0; start < len(hs); start += admin.MaxDeletes {
		state, err := s.st.AdminState(ctx)
		if err != nil {
			return kept, err
		}
		req := admin.Request{Server: state.Server, Seq: state.Seq + 1,
			Expires: time.Now().Add(requestLifetime).Truncate(time.Second), Delete: hs[start:min(start+admin.MaxDeletes, len(hs))]}
		msg, err := req.Sign(s.signer)
		if err != nil {
			return kept, err
		}
		res, err := s.st.Admin(ctx, msg)
		if err != nil {
			return kept, err
		}
		for _, k := range res.Kept {
			reason := k.Reason
			if !k.Until.IsZero() {
				reason = fmt.Sprintf("%s (until %s)", reason, k.Until.UTC().Format(time.RFC3339))
			}
			kept = append(kept, Kept{Object: k.Object, Reason: reason})
		}
	}
	return kept, nil
}

// NeedsSigner reports whether deleting from st needs the administrator's
// signing key (st deletes only on signed requests).
func NeedsSigner(st store.Store) bool {
	_, ok := st.(AdminStore)
	return ok
}

// NewRemover returns what deletes from st: Signed with signer for a store
// that deletes only on the administrator's signed request (signer must
// then be set), Direct for one with its own Remove (a local directory, or
// S3 where the credential and Object Lock decide). A store that can do
// neither is an error.
func NewRemover(st store.Store, signer note.Signer) (Remover, error) {
	switch st := st.(type) {
	case AdminStore:
		if signer == nil {
			return nil, fmt.Errorf("%s deletes only what the administrator signs, and no administrator key was given", st.(store.Store).Location())
		}
		return Signed(st, signer), nil
	case store.Remover:
		return Direct(st), nil
	}
	return nil, fmt.Errorf("%s cannot delete objects", st.Location())
}

// RunOptions configures Run.
type RunOptions struct {
	Options
	// DryRun plans and deletes nothing.
	DryRun bool
	// Remover deletes (not used in a dry run).
	Remover Remover
	Host    string // the host recorded in the ledger
}

// Run is prune: it reads every snapshot, plans (NewPlan) and, unless a
// dry run, carries the plan out (Plan.Execute). It returns the plan and
// what Execute did (nil in a dry run). A snapshot that cannot be read
// stops it before anything is written.
func Run(ctx context.Context, r *repo.Repository, lg Ledger, o RunOptions) (*Plan, *Result, error) {
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (prune must read every snapshot; nothing was deleted)", err)
	}
	plan, err := NewPlan(ctx, r, snaps, o.Options)
	if err != nil || o.DryRun {
		return plan, nil, err
	}
	res, err := plan.Execute(ctx, r, o.Remover, lg, o.Host)
	return plan, res, err
}

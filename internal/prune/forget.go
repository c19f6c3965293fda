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
// it: ledger.Client. SaveRequest stores the administrator's signed request
// in the repository and returns its hash, which each removal record it
// authorises carries (ledger.Record.Auth).
type Ledger interface {
	Append(ctx context.Context, recs []ledger.Record) error
	SaveRequest(ctx context.Context, signed []byte) (blob.ID, error)
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

// remove deletes the snapshots doomed as removeLogged does.
func remove(ctx context.Context, st store.Lister, lg Ledger, rm Remover, doomed []store.Handle, host string) ([]Kept, error) {
	kept, err := removeLogged(ctx, st, lg, rm, doomed, nil, host, time.Now(), nil)
	if err != nil {
		return kept, fmt.Errorf("delete snapshots: %w", err)
	}
	return kept, nil
}

// removeLogged has the administrator's key sign requests that delete hs
// (rm.Authorise), stores each in the ledger, appends extra and then a
// removal record of each object bound to its request, and only then
// carries the requests out. It returns what rm had to keep. Nothing is
// deleted if a request cannot be signed or stored, or the records cannot
// be appended. gate, if set, is asked after the requests are stored and
// before anything is deleted: a reason it gives keeps every object of hs.
func removeLogged(ctx context.Context, st store.Lister, lg Ledger, rm Remover, hs []store.Handle, extra []ledger.Record, host string, now time.Time, gate func(context.Context) (string, error)) ([]Kept, error) {
	var reqs []Request
	if len(hs) > 0 {
		var err error
		if reqs, err = rm.Authorise(ctx, hs); err != nil {
			return nil, fmt.Errorf("nothing was deleted: %w", err)
		}
	}
	recs := extra
	for _, req := range reqs {
		auth, err := lg.SaveRequest(ctx, req.Signed)
		if err != nil {
			return nil, fmt.Errorf("nothing was deleted: %w", err)
		}
		more, err := RemovalRecords(ctx, st, req.Delete, host, now, auth)
		if err != nil {
			return nil, err
		}
		recs = append(recs, more...)
	}
	if len(recs) > 0 {
		if err := lg.Append(ctx, recs); err != nil {
			return nil, fmt.Errorf("nothing was deleted: %w", err)
		}
	}
	var kept []Kept
	if gate != nil && len(hs) > 0 {
		reason, err := gate(ctx)
		if err != nil {
			return nil, fmt.Errorf("nothing was deleted: %w", err)
		}
		if reason != "" {
			for _, h := range hs {
				kept = append(kept, Kept{h, reason})
			}
			return kept, nil
		}
	}
	for _, req := range reqs {
		k, err := rm.Remove(ctx, req)
		kept = append(kept, k...)
		if err != nil {
			return kept, err
		}
	}
	return kept, nil
}

// RemovalRecords returns the ledger's records, at time now for host, of the
// objects hs about to be deleted, with their sizes from the store, each
// bound to the administrator's request whose hash is auth.
func RemovalRecords(ctx context.Context, st store.Lister, hs []store.Handle, host string, now time.Time, auth blob.ID) ([]ledger.Record, error) {
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
		recs = append(recs, ledger.Record{Kind: ledger.Removed(ledger.KindOf(h.Type)), ID: id, Size: fi.Size, Time: now, Host: host, Auth: auth})
	}
	return recs, nil
}

// StampedSnapshots loads every snapshot of a repository with the time its
// store stamped it and the host the store recorded as storing it. A snapshot that cannot be read is an error: forget must
// not decide without it.
func StampedSnapshots(ctx context.Context, st store.Lister, load func(context.Context) ([]*snapshot.Snapshot, error)) ([]snapshot.Stamped, error) {
	stamps := map[string]store.FileInfo{}
	if err := st.List(ctx, store.Snapshots, func(fi store.FileInfo) error {
		stamps[fi.Name] = fi
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
		fi := stamps[sn.ID.String()]
		out[i] = snapshot.Stamped{Snapshot: sn, Stamp: fi.Stamp, Owner: fi.Host}
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

// Signed is a Remover that deletes through a server: one request signed
// with the administrator's key per batch of at most admin.MaxDeletes
// objects, numbered from the server's last accepted seq, sent as it is
// carried out. What the server keeps (its retention) is returned as kept.
func Signed(st AdminStore, signer note.Signer) Remover { return signed{st, signer} }

type signed struct {
	st     AdminStore
	signer note.Signer
}

func (s signed) Authorise(ctx context.Context, hs []store.Handle) ([]Request, error) {
	state, err := s.st.AdminState(ctx)
	if err != nil {
		return nil, err
	}
	return authorise(s.signer, state.Server, state.Seq+1, hs)
}

func (s signed) Remove(ctx context.Context, req Request) ([]Kept, error) {
	res, err := s.st.Admin(ctx, req.Signed)
	if err != nil {
		return nil, err
	}
	var kept []Kept
	for _, k := range res.Kept {
		reason := k.Reason
		if !k.Until.IsZero() {
			reason = fmt.Sprintf("%s (until %s)", reason, k.Until.UTC().Format(time.RFC3339))
		}
		kept = append(kept, Kept{Object: k.Object, Reason: reason})
	}
	return kept, nil
}

// authorise signs requests that delete hs, at most admin.MaxDeletes each,
// for server with sequence numbers from seq on.
func authorise(signer note.Signer, server string, seq uint64, hs []store.Handle) ([]Request, error) {
	var reqs []Request
	expires := time.Now().Add(requestLifetime).Truncate(time.Second)
	for start := 0; start < len(hs); start += admin.MaxDeletes {
		del := hs[start:min(start+admin.MaxDeletes, len(hs))]
		msg, err := admin.Request{Server: server, Seq: seq, Expires: expires, Delete: del}.Sign(signer)
		if err != nil {
			return nil, err
		}
		reqs = append(reqs, Request{Signed: msg, Delete: del})
		seq++
	}
	return reqs, nil
}

// NewRemover returns what deletes from st, signing with signer, the
// administrator's key, which every mode needs: the ledger counts a
// removal only under the administrator's signed request. For a store that
// deletes only on signed requests (a server) it is Signed; for one with
// its own Remove (a local directory, or S3 where the credential and Object
// Lock decide) Direct, with requests naming the repository id. A missing
// signer, or a store that can do neither, is an error.
func NewRemover(st store.Store, signer note.Signer, id blob.ID) (Remover, error) {
	if signer == nil {
		return nil, fmt.Errorf("deleting from %s needs the administrator's key: the ledger counts a removal only under the administrator's signed request", st.Location())
	}
	switch st := st.(type) {
	case AdminStore:
		return Signed(st, signer), nil
	case store.Remover:
		return Direct(st, signer, id), nil
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

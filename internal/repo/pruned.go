package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/mod/sumdb/note"

	"github.com/kalaja/kalaja/internal/admin"
	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/store"
)

// ErrPruned reports that a prune running meanwhile removes a pack that a
// backup uses: one it deduplicated against or stored itself. The backup
// must be run again; the next one stores what is gone anew.
var ErrPruned = errors.New("a prune running meanwhile removes data this backup uses")

// uses is what a backup depends on (docs/design.md, "Forget and prune"):
// every pack it deduplicated against or stored, and the administrator's
// removal requests (ledger/removals) stored before it read the index.
// Prune stores its request to delete packs before deleting them, so a
// request that appears later and names one of these packs means the
// backup's snapshot would lack data.
type uses struct {
	mu     sync.Mutex
	packs  map[blob.ID]struct{}
	before map[string]bool // nil: the listing failed, every request is new
	// checked is the digest of the requests the last CheckPruned that
	// passed listed (see RemovalsDigest).
	checked string
	// unlooked: the session took a parent's content without looking
	// its blobs up (ReuseTrusted), so it knows no pack of theirs.
	unlooked atomic.Bool
}

// startUses begins tracking, listing the requests stored so far. A listing
// that fails makes every request count as new (a backup may then fail
// needlessly, never pass wrongly).
func (r *Repository) startUses(ctx context.Context) {
	u := &uses{packs: map[blob.ID]struct{}{}, before: map[string]bool{}}
	if err := r.st.List(ctx, store.LedgerRemovals, func(fi store.FileInfo) error {
		u.before[fi.Name] = true
		return nil
	}); err != nil {
		u.before = nil
	}
	r.uses = u
}

// RemovalsDigest returns the digest of a set of administrator's requests
// (docs/design.md, "Trusted parents"): the SHA-256, in hex, of their
// names sorted and each followed by a newline. Any request stored, or
// removed, changes it.
func RemovalsDigest(names []string) string {
	sorted := slices.Sorted(slices.Values(names))
	h := sha256.New()
	for _, n := range sorted {
		h.Write([]byte(n + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Removals returns the digest of the administrator's requests stored when
// this session began (RemovalsDigest), or "" when they could not be
// listed. Prune stores a request before it deletes a pack, so while this
// digest stays what it was when a snapshot was checked whole
// (CheckedRemovals), no pack has been deleted since.
func (r *Repository) Removals() string {
	if r.uses == nil || r.uses.before == nil {
		return ""
	}
	return RemovalsDigest(slices.Collect(maps.Keys(r.uses.before)))
}

// CheckedRemovals returns the digest of the requests listed by the last
// CheckPruned that passed, or "" if none did or it could not list them:
// the snapshot stored by a session that ends with such a check is whole
// as of those requests.
func (r *Repository) CheckedRemovals() string {
	if r.uses == nil {
		return ""
	}
	r.uses.mu.Lock()
	defer r.uses.mu.Unlock()
	return r.uses.checked
}

// ReuseTrusted records that the session takes the content of unchanged
// files from a parent snapshot without looking its blobs up (Reuse), the
// caller knowing that no pack was deleted since that snapshot was stored
// whole (Removals). Not knowing the packs that content is in, CheckPruned
// then fails on any request stored since the session began.
func (r *Repository) ReuseTrusted() {
	if r.uses != nil {
		r.uses.unlooked.Store(true)
	}
}

// use records that the session depends on pack id.
func (r *Repository) use(id blob.ID) {
	u := r.uses
	if u == nil {
		return
	}
	u.mu.Lock()
	u.packs[id] = struct{}{}
	u.mu.Unlock()
}

// Reuse reports whether every blob of type t in ids is indexed, and if so
// records the packs that hold them as packs this backup uses (a file
// unchanged since the parent snapshot keeps the parent's content).
func (r *Repository) Reuse(t blob.Type, ids []blob.ID) bool {
	locs := make([]blob.ID, 0, len(ids))
	for _, id := range ids {
		loc, ok := r.idx.Lookup(blob.Handle{Type: t, ID: id})
		if !ok {
			return false
		}
		locs = append(locs, loc.Pack)
	}
	for _, p := range locs {
		r.use(p)
	}
	return true
}

// SetAdminKey sets the administrator's key: CheckPruned then reads only
// requests it signed. Without it, any stored request counts, so a forged
// one can make a backup fail (never pass with missing data).
func (r *Repository) SetAdminKey(v note.Verifier) { r.admin = v }

// CheckPruned returns an error wrapping ErrPruned if an administrator's
// request stored since this repository read its index names a pack that
// the current session used or stored, or, if the session reused content
// unlooked (ReuseTrusted), any such request that deletes anything. A
// request that cannot be read or opened is passed over. When the check
// passes, CheckedRemovals returns the digest of the requests it listed.
// A failing listing is an error, unless the
// listing at the start failed too (a server of an earlier version, which
// has no ledger/removals): then nothing can be checked.
func (r *Repository) CheckPruned(ctx context.Context) error {
	u := r.uses
	if u == nil {
		return nil
	}
	var all, fresh []string
	if err := r.st.List(ctx, store.LedgerRemovals, func(fi store.FileInfo) error {
		all = append(all, fi.Name)
		if !u.before[fi.Name] {
			fresh = append(fresh, fi.Name)
		}
		return nil
	}); err != nil {
		if u.before == nil && ctx.Err() == nil {
			return nil
		}
		return fmt.Errorf("list the administrator's requests: %w", err)
	}
	for _, name := range fresh {
		msg, err := r.st.Load(ctx, store.Handle{Type: store.LedgerRemovals, Name: name})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		}
		var req admin.Request
		if r.admin != nil {
			req, err = admin.Open(msg, r.admin)
		} else {
			req, err = admin.Unverified(msg)
		}
		if err != nil {
			continue
		}
		if u.unlooked.Load() && len(req.Delete) > 0 {
			return fmt.Errorf("%w: the administrator's request %s was stored since this backup began, and the backup took unchanged files from its parent snapshot without looking up the packs that hold them", ErrPruned, name[:8])
		}
		u.mu.Lock()
		var hit string
		for _, h := range req.Delete {
			id, err := blob.ParseID(h.Name)
			if _, used := u.packs[id]; err == nil && h.Type == store.Packs && used {
				hit = h.Name
				break
			}
		}
		u.mu.Unlock()
		if hit != "" {
			return fmt.Errorf("%w: pack %s is named by the administrator's request %s, stored since this backup began", ErrPruned, hit[:8], name[:8])
		}
	}
	u.mu.Lock()
	u.checked = RemovalsDigest(all)
	u.mu.Unlock()
	return nil
}

package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"github.com/kalaja/kalaja/internal/admin"
	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/store"
)

// ProblemUnauthorised is a removal record that no request signed by the
// administrator's key authorises: a holder of the log key claimed an
// object's removal. Verify then treats the object as not removed.
const ProblemUnauthorised = "unauthorised-removal"

// checkAuth checks that only a removal record carries Auth.
func checkAuth(r Record) error {
	if r.Auth.IsZero() {
		return nil
	}
	if _, removal, ok := TypeOf(r.Kind); !ok || !removal {
		return fmt.Errorf("a %s record with an authorisation: %w", r.Kind, blob.ErrCorrupt)
	}
	return nil
}

// SaveRequest stores signed, an administrator's request, as
// ledger/removals/<SHA-256 of signed> and returns that hash, the Auth of
// the removal records it authorises. The name is created exclusively; if
// it exists with the same bytes (the same request saved again) that is
// not an error.
func (l *Log) SaveRequest(ctx context.Context, signed []byte) (blob.ID, error) {
	id := blob.Hash(signed)
	h := store.Handle{Type: store.LedgerRemovals, Name: id.String()}
	err := l.st.Save(ctx, h, signed)
	if errors.Is(err, store.ErrExists) {
		got, lerr := l.st.Load(ctx, h)
		if lerr == nil && bytes.Equal(got, signed) {
			return id, nil
		}
	}
	if err != nil {
		return blob.ID{}, fmt.Errorf("store the administrator's request %s: %w", id.Short(), err)
	}
	return id, nil
}

// authorisations checks removal records against the administrator's
// signed requests, loading each stored request once.
type authorisations struct {
	l     *Log
	admin note.Verifier // nil: no key, nothing is authorised
	reqs  map[blob.ID]authorised
}

type authorised struct {
	deletes map[store.Handle]bool
	err     error // why the request authorises nothing
}

// check returns nil if r, a removal record of the object h, is bound to a
// stored request signed by the administrator's key that deletes h, and
// otherwise why not. Only a failing store is returned as fatal.
func (a *authorisations) check(ctx context.Context, r Record, h store.Handle) (reason, fatal error) {
	switch {
	case r.Auth.IsZero():
		return errors.New("it names no administrator's request (written before removal records were bound, or forged)"), nil
	case a.admin == nil:
		return errors.New("no administrator's key to check its request against (give the administrator's public key)"), nil
	}
	req, ok := a.reqs[r.Auth]
	if !ok {
		var err error
		if req, err = a.load(ctx, r.Auth); err != nil {
			return nil, err
		}
		a.reqs[r.Auth] = req
	}
	switch {
	case req.err != nil:
		return req.err, nil
	case !req.deletes[h]:
		return fmt.Errorf("the administrator's request %s does not delete it", r.Auth.Short()), nil
	}
	return nil, nil
}

// load reads and opens the request stored under id.
func (a *authorisations) load(ctx context.Context, id blob.ID) (authorised, error) {
	h := store.Handle{Type: store.LedgerRemovals, Name: id.String()}
	msg, err := a.l.st.Load(ctx, h)
	switch {
	case errors.Is(err, blob.ErrNotFound):
		return authorised{err: fmt.Errorf("its administrator's request %s is missing", h)}, nil
	case err != nil:
		if ctx.Err() != nil {
			return authorised{}, ctx.Err()
		}
		return authorised{err: fmt.Errorf("its administrator's request %s cannot be read: %v", h, err)}, nil
	case blob.Hash(msg) != id:
		return authorised{err: fmt.Errorf("its administrator's request %s does not hash to its name", h)}, nil
	}
	req, err := admin.Open(msg, a.admin)
	if err != nil {
		return authorised{err: fmt.Errorf("its request %s: %v", h, err)}, nil
	}
	out := authorised{deletes: make(map[store.Handle]bool, len(req.Delete))}
	for _, d := range req.Delete {
		out.deletes[d] = true
	}
	return out, nil
}

// Admin returns the administrator's key that Verify checks removal
// records against: key (a note verifier key), pinned in this client's
// state on first use, or the pinned key when key is empty; nil and no
// error when there is neither. A key other than the pinned one is refused
// with an error wrapping ErrSignature: the pin changes only by editing the
// state file.
func (c *Client) Admin(key string) (note.Verifier, error) {
	if key != "" {
		if _, err := note.NewVerifier(key); err != nil {
			return nil, fmt.Errorf("administrator's key %q: %v", key, err)
		}
	}
	p, err := c.pin.Update(func(cur Pin, ok bool) (Pin, error) {
		if key != "" && cur.AdminKey == "" {
			cur.AdminKey = key
		}
		return cur, nil
	})
	if err != nil {
		return nil, err
	}
	if key != "" && p.AdminKey != key {
		return nil, fmt.Errorf("%w: the administrator's key given is %s, but this client pinned %s (state in %s)", ErrSignature, key, p.AdminKey, c.pin)
	}
	if p.AdminKey == "" {
		return nil, nil
	}
	v, err := note.NewVerifier(p.AdminKey)
	if err != nil {
		return nil, fmt.Errorf("ledger pin %s: administrator's key: %v: %w", c.pin, err, blob.ErrCorrupt)
	}
	return v, nil
}

package ledger

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/store"
)

// Cosign is the witness protocol's one step. The witness w reads the log's
// newest checkpoint, checks the log key's signature, and checks with a
// consistency proof built from the stored tiles that the log extends prev,
// the checkpoint this witness co-signed last (zero for none). Only then does
// it add its signature and store the co-signed note in the repository. It
// returns the checkpoint and the co-signed note. A log shorter than prev is
// refused with an error wrapping ErrRollback, one that does not extend prev
// with one wrapping ErrFork.
func (l *Log) Cosign(ctx context.Context, w note.Signer, prev Checkpoint) (Checkpoint, []byte, error) {
	if prev.Origin != "" && prev.Origin != l.origin {
		return Checkpoint{}, nil, fmt.Errorf("the witness's last checkpoint is of log %q, not %q", prev.Origin, l.origin)
	}
	latest, msg, err := l.Check(ctx, prev)
	if err != nil {
		return Checkpoint{}, nil, fmt.Errorf("refusing to co-sign: %w", err)
	}
	if latest.N == 0 {
		return Checkpoint{}, nil, errors.New("the log has no checkpoint to co-sign yet")
	}
	n, err := note.Open(msg, note.VerifierList(l.verifier))
	if err != nil {
		return Checkpoint{}, nil, fmt.Errorf("checkpoint note: %w", err)
	}
	n.UnverifiedSigs = nil // carry only the log's verified signature
	cosigned, err := note.Sign(n, w)
	if err != nil {
		return Checkpoint{}, nil, fmt.Errorf("co-sign: %w", err)
	}
	h := store.Handle{Type: store.LedgerWitness, Name: fmt.Sprintf("%s.%08x", entryName(latest.N), w.KeyHash())}
	if err := l.st.Save(ctx, h, cosigned); err != nil && !errors.Is(err, store.ErrExists) {
		return Checkpoint{}, nil, fmt.Errorf("store co-signed checkpoint: %w", err)
	}
	return latest, cosigned, nil
}

// Check returns the log's newest valid checkpoint and its note after
// checking that the log extends seen (see CheckExtends): the checkpoint's
// tree, authenticated by the stored tiles, with the batches stored after
// it, since seen may be a checkpoint this client signed but could not
// store (see Append).
func (l *Log) Check(ctx context.Context, seen Checkpoint) (Checkpoint, []byte, error) {
	h, err := l.head(ctx)
	if err != nil {
		return Checkpoint{}, nil, err
	}
	root, err := tlog.TreeHash(h.n, h.hs)
	if err != nil {
		return Checkpoint{}, nil, fmt.Errorf("ledger tree hash: %w", err)
	}
	if err := CheckExtends(seen, h.n, root, h.hs); err != nil {
		return Checkpoint{}, nil, err
	}
	l.keep(h)
	return h.latest, h.msg, nil
}

// WitnessRun is what one run of Witness did.
type WitnessRun struct {
	Checkpoint Checkpoint // the checkpoint co-signed
	Cosigned   []byte     // its note with the witness's signature
	Previous   int64      // the size of the checkpoint co-signed before (0 for none)
	// Published is set when the log key was pinned from the repository's
	// own unauthenticated copy (trust on first use): the caller should say
	// so.
	Published string
}

// Witness is one step of a witness of the log of repository repoID in st,
// whose memory of that log is pin: it pins logKey (or, if empty, the key
// the repository publishes) on first use, refuses a logKey other than the
// pinned one, co-signs the newest checkpoint if the log extends the one it
// co-signed last (Cosign), and moves the pin forward to it. The pin never
// moves backwards, even when two runs overlap.
func Witness(ctx context.Context, st store.Store, repoID blob.ID, w note.Signer, pin PinFile, logKey string) (WitnessRun, error) {
	var run WitnessRun
	p, ok, err := pin.Load()
	if err != nil {
		return run, err
	}
	switch {
	case ok && logKey != "" && logKey != p.LogKey:
		return run, fmt.Errorf("the log key given differs from the key this witness pinned for the repository (%s)", p.LogKey)
	case !ok && logKey == "":
		if logKey, err = PublishedKey(ctx, st); err != nil {
			return run, err
		}
		run.Published = logKey
	case ok:
		logKey = p.LogKey
	}
	lg, err := OpenReadOnly(st, repoID, logKey)
	if err != nil {
		return run, err
	}
	var prev Checkpoint
	if p.Checkpoint != nil {
		if prev, _, err = OpenCheckpoint(p.Checkpoint, lg.Origin(), lg.Verifier()); err != nil {
			return run, fmt.Errorf("witness pin %s: %w", pin, err)
		}
	}
	run.Previous = prev.N
	if run.Checkpoint, run.Cosigned, err = lg.Cosign(ctx, w, prev); err != nil {
		return run, err
	}
	_, err = pin.Update(func(cur Pin, ok bool) (Pin, error) {
		if ok && cur.LogKey != logKey {
			return cur, fmt.Errorf("witness pin %s changed while co-signing: it now pins %s", pin, cur.LogKey)
		}
		if ok && cur.Checkpoint != nil {
			c, _, err := OpenCheckpoint(cur.Checkpoint, lg.Origin(), lg.Verifier())
			if err != nil {
				return cur, fmt.Errorf("witness pin %s: %w", pin, err)
			}
			if c.N >= run.Checkpoint.N {
				return cur, nil
			}
		}
		return Pin{LogKey: logKey, Checkpoint: run.Cosigned, AdminKey: cur.AdminKey}, nil
	})
	return run, err
}

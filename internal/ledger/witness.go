package ledger

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

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

package ledger

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/kalaja/kalaja/internal/atomicfile"
	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store"
)

// Client is a repository's log as one client host uses it from run to run:
// the Log, the client's pin of it (the log key pinned at first use and the
// newest checkpoint checked, in dir/ledger.json), and a cache of the
// snapshot and index IDs the log names (dir/logged), so that a backup need
// not read the whole log. dir holds one repository's state; several
// processes may share it.
type Client struct {
	Log  *Log
	pin  PinFile
	dir  string
	seen Checkpoint
}

// OpenClient opens the client state of log l kept in dir, pinning l's key
// there on first use. A log whose key is not the pinned one is refused with
// an error wrapping ErrSignature: the repository was replaced or its key
// tampered with.
func OpenClient(l *Log, dir string) (*Client, error) {
	c := &Client{Log: l, pin: PinFile(filepath.Join(dir, "ledger.json")), dir: dir}
	p, err := c.pin.Update(func(cur Pin, ok bool) (Pin, error) {
		if !ok {
			return Pin{LogKey: l.VerifierKey()}, nil
		}
		return cur, nil
	})
	if err != nil {
		return nil, err
	}
	if p.LogKey != l.VerifierKey() {
		return nil, fmt.Errorf("%w: the repository's ledger key is %s, but this client pinned %s (state in %s): the repository was replaced or its key tampered with",
			ErrSignature, l.VerifierKey(), p.LogKey, c.pin)
	}
	if p.Checkpoint != nil {
		if c.seen, _, err = OpenCheckpoint(p.Checkpoint, l.Origin(), l.Verifier()); err != nil {
			return nil, fmt.Errorf("ledger pin %s: %w", c.pin, err)
		}
	}
	return c, nil
}

// Seen returns the newest checkpoint this client has checked (the zero
// Checkpoint if none).
func (c *Client) Seen() Checkpoint { return c.seen }

// Check returns the log's newest valid checkpoint and its note after
// checking that the log extends the one this client saw; a rollback or a
// fork is an error wrapping ErrRollback or ErrFork (and blob.ErrTampered).
// It does not move the pin: see Remember.
func (c *Client) Check(ctx context.Context) (Checkpoint, []byte, error) {
	return c.Log.Check(ctx, c.seen)
}

// Remember pins cp, with its signed note, as the newest checkpoint this
// client has checked, unless the pin already holds one at least as new: the
// pin never moves backwards. When another process pinned a checkpoint newer
// than the one this client started from, cp is pinned only once the log is
// shown to extend both (so that two views of a forked log cannot replace
// each other). A nil note remembers nothing.
func (c *Client) Remember(ctx context.Context, cp Checkpoint, note []byte) error {
	if note == nil || cp.N <= c.seen.N {
		return nil
	}
	p, err := c.pin.Update(func(cur Pin, ok bool) (Pin, error) {
		if ok && cur.LogKey != c.Log.VerifierKey() {
			return cur, fmt.Errorf("%w: the log key is %s, but %s pins %s", ErrSignature, c.Log.VerifierKey(), c.pin, cur.LogKey)
		}
		if ok && cur.Checkpoint != nil {
			old, _, err := OpenCheckpoint(cur.Checkpoint, c.Log.Origin(), c.Log.Verifier())
			if err != nil {
				return cur, fmt.Errorf("ledger pin %s: %w", c.pin, err)
			}
			if old.N >= cp.N {
				return cur, nil
			}
			if old.N > c.seen.N {
				if _, _, err := c.Log.Check(ctx, old); err != nil {
					return cur, err
				}
				if _, _, err := c.Log.Check(ctx, cp); err != nil {
					return cur, err
				}
			}
		}
		return Pin{LogKey: c.Log.VerifierKey(), Checkpoint: note, AdminKey: cur.AdminKey}, nil
	})
	if err != nil {
		return err
	}
	seen, _, err := OpenCheckpoint(p.Checkpoint, c.Log.Origin(), c.Log.Verifier())
	if err != nil {
		return fmt.Errorf("ledger pin %s: %w", c.pin, err)
	}
	c.seen = seen
	return nil
}

// Append appends recs to the log as one batch (after checking that the
// log extends the checkpoint this client saw) and remembers the new
// checkpoint. Unlike Record it adopts nothing it was not given: forget and
// prune use it, since a snapshot nobody logged may be a thief's.
func (c *Client) Append(ctx context.Context, recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	cp, note, err := c.Log.Append(ctx, recs, c.seen)
	if err != nil {
		return fmt.Errorf("record in the ledger: %w", err)
	}
	return c.Remember(ctx, cp, note)
}

// Record appends recs (the objects a backup stored) to the log, together
// with a record, at time now for host, of every snapshot and index file in
// the store that the log does not name yet (left by a backup killed between
// storing and logging them), and remembers the new checkpoint. It returns
// that checkpoint (the one it saw if there was nothing to record).
func (c *Client) Record(ctx context.Context, recs []Record, host string, now time.Time) (Checkpoint, error) {
	logged, err := c.loggedIDs(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	for _, rec := range recs {
		if cachedKind(rec.Kind) {
			logged.ids[rec.ID] = true
		}
	}
	for _, t := range []store.FileType{store.Snapshots, store.Index} {
		err := c.Log.st.List(ctx, t, func(fi store.FileInfo) error {
			id, err := blob.ParseID(fi.Name)
			if err == nil && !logged.ids[id] {
				recs = append(recs, Record{Kind: KindOf(t), ID: id, Size: fi.Size, Time: now, Host: host})
				logged.ids[id] = true
			}
			return nil
		})
		if err != nil {
			return Checkpoint{}, fmt.Errorf("list %s: %w", t, err)
		}
	}
	if len(recs) == 0 {
		return c.seen, nil
	}
	cp, note, err := c.Log.Append(ctx, recs, c.seen)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("record in the ledger: %w", err)
	}
	// The batch just appended ends at cp.N, so that is where the next
	// catch-up starts.
	logged.n = cp.N
	if err := c.saveLogged(logged); err != nil {
		return cp, err
	}
	return cp, c.Remember(ctx, cp, note)
}

// loggedSet is the cache of the snapshot and index IDs the log names up to
// record n.
type loggedSet struct {
	n   int64
	ids map[blob.ID]bool
}

// loggedIDs returns the cached set, brought up to the end of the log. A
// cache that does not decode is ignored (the log is read from the start).
func (c *Client) loggedIDs(ctx context.Context) (loggedSet, error) {
	s := loggedSet{ids: map[blob.ID]bool{}}
	if b, err := os.ReadFile(c.loggedPath()); err == nil && len(b) >= 8 && (len(b)-8)%blob.IDSize == 0 {
		s.n = int64(binary.BigEndian.Uint64(b))
		for b = b[8:]; len(b) > 0; b = b[blob.IDSize:] {
			s.ids[blob.ID(b[:blob.IDSize])] = true
		}
	}
	recs, end, err := c.Log.RecordsFrom(ctx, s.n)
	if err != nil {
		return s, err
	}
	for _, r := range recs {
		if cachedKind(r.Kind) {
			s.ids[r.ID] = true
		}
	}
	s.n = end
	return s, nil
}

// cachedKind reports whether records of kind k go into the loggedSet: only
// the kinds Record looks for unlogged objects of.
func cachedKind(k string) bool { return k == KindSnapshot || k == KindIndex }

func (c *Client) loggedPath() string { return filepath.Join(c.dir, "logged") }

// saveLogged writes the cache: the record count (8 bytes, big endian), then
// the IDs.
func (c *Client) saveLogged(s loggedSet) error {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(s.ids)*blob.IDSize), uint64(s.n))
	for id := range s.ids {
		b = append(b, id[:]...)
	}
	if err := atomicfile.Write(c.loggedPath(), b, 0o600); err != nil {
		return fmt.Errorf("ledger client cache: %w", err)
	}
	return nil
}

// Verify runs Log.Verify with this client's own checkpoint and the one
// each of snaps recorded among the checkpoints the log must extend, and
// remembers the newest signed checkpoint when it finds no problem.
func (c *Client) Verify(ctx context.Context, opts VerifyOptions, snaps []*snapshot.Snapshot) (*Report, error) {
	opts.Seen = append(slices.Clip(opts.Seen), Seen{Source: "this client", Checkpoint: c.seen})
	for _, sn := range snaps {
		if sn.Ledger == nil || len(sn.Ledger.Root) != tlog.HashSize {
			continue
		}
		cp := Checkpoint{Origin: c.Log.Origin(), N: sn.Ledger.Size}
		copy(cp.Hash[:], sn.Ledger.Root)
		opts.Seen = append(opts.Seen, Seen{Source: "snapshot " + sn.ID.Short(), Checkpoint: cp})
	}
	rep, err := c.Log.Verify(ctx, opts)
	if err != nil {
		return nil, err
	}
	if len(rep.Problems) == 0 {
		if err := c.Remember(ctx, rep.Signed, rep.SignedNote); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// SaveRequest stores the administrator's signed request in the log's
// repository, as Log.SaveRequest does, for the removal records it
// authorises.
func (c *Client) SaveRequest(ctx context.Context, signed []byte) (blob.ID, error) {
	return c.Log.SaveRequest(ctx, signed)
}

// Proven is a snapshot record the log proves.
type Proven struct {
	Index  int64 // the record's index in the log
	Record Record
}

// ProvenSnapshots returns the snapshots the log proves, by ID: those with a
// record under the log's newest signed checkpoint, which Check has shown
// extends this client's pin, each record's inclusion proof checked against
// that checkpoint, and not followed by a removal record. It also returns
// the checkpoint. Records after the newest signed checkpoint (an append
// interrupted or still running) prove nothing yet. A log that contradicts
// the pin is an error wrapping blob.ErrTampered.
func (c *Client) ProvenSnapshots(ctx context.Context) (map[blob.ID]Proven, Checkpoint, error) {
	cp, _, err := c.Check(ctx)
	if err != nil {
		return nil, cp, err
	}
	all, err := c.Log.ReadAll(ctx)
	if err != nil {
		return nil, cp, err
	}
	if all.N() < cp.N {
		return nil, cp, fmt.Errorf("%w: the log holds %d records, its checkpoint says %d", ErrRollback, all.N(), cp.N)
	}
	out := map[blob.ID]Proven{}
	for i, rec := range all.Records[:cp.N] {
		switch rec.Kind {
		case KindSnapshot:
			proof, err := tlog.ProveRecord(cp.N, int64(i), all)
			if err != nil {
				return nil, cp, fmt.Errorf("proof of record %d: %w", i, err)
			}
			if err := tlog.CheckRecord(proof, cp.N, cp.Hash, int64(i), tlog.RecordHash(all.Raw[i])); err != nil {
				return nil, cp, fmt.Errorf("%w: record %d is not in the signed checkpoint %s: %v", ErrFork, i, cp, err)
			}
			out[rec.ID] = Proven{Index: int64(i), Record: rec}
		case KindSnapshotRemoved:
			delete(out, rec.ID)
		}
	}
	return out, cp, nil
}

package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/kalaja/kalaja/internal/atomicfile"
	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store"
)

// stateRoot is the directory where this client keeps what it must remember
// between runs: the newest ledger checkpoint it saw of each repository.
func (g *globalOptions) stateRoot() (string, error) {
	if d := env(g.stateDir, "KALAJA_STATE_DIR"); d != "" {
		return d, nil
	}
	if x := os.Getenv("XDG_STATE_HOME"); x != "" {
		return filepath.Join(x, "kalaja"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no state directory: set --state-dir or KALAJA_STATE_DIR (%v)", err)
	}
	return filepath.Join(home, ".local", "state", "kalaja"), nil
}

// seenState is the file a client keeps per repository: the log key it
// pinned at first use and the newest checkpoint it has checked.
type seenState struct {
	LogKey     string `json:"log_key"`
	Checkpoint string `json:"checkpoint,omitempty"` // signed note
}

// clientLedger is a repository's ledger as a client with the password uses
// it, together with what the client saw of it before.
type clientLedger struct {
	log  *ledger.Log
	path string
	seen ledger.Checkpoint
}

// openLedger opens r's ledger (creating its key on first use) and this
// client's memory of it. A log key other than the pinned one is an error.
func (g *globalOptions) openLedger(ctx context.Context, r *repo.Repository) (*clientLedger, error) {
	lg, err := ledger.Open(ctx, r.Store(), r.Config().ID, r.Keys())
	if err != nil {
		return nil, err
	}
	root, err := g.stateRoot()
	if err != nil {
		return nil, err
	}
	cl := &clientLedger{log: lg, path: filepath.Join(root, r.Config().ID.String(), "ledger.json")}
	b, err := os.ReadFile(cl.path)
	if errors.Is(err, fs.ErrNotExist) {
		return cl, cl.save(seenState{LogKey: lg.VerifierKey()})
	}
	if err != nil {
		return nil, fmt.Errorf("client state: %w", err)
	}
	var st seenState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("client state %s: %v", cl.path, err)
	}
	if st.LogKey != lg.VerifierKey() {
		return nil, fmt.Errorf("%w: the repository's ledger key is %s, but this client pinned %s (state in %s): the repository was replaced or its key tampered with",
			ledger.ErrSignature, lg.VerifierKey(), st.LogKey, cl.path)
	}
	if st.Checkpoint != "" {
		cl.seen, _, err = ledger.OpenCheckpoint([]byte(st.Checkpoint), lg.Origin(), lg.Verifier())
		if err != nil {
			return nil, fmt.Errorf("client state %s: %w", cl.path, err)
		}
	}
	return cl, nil
}

// openWithLedger opens the repository (without its blob index) and its
// ledger.
func (g *globalOptions) openWithLedger(ctx context.Context) (*repo.Repository, *clientLedger, error) {
	r, err := g.open(ctx, false)
	if err != nil {
		return nil, nil, err
	}
	cl, err := g.openLedger(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	return r, cl, nil
}

// remember records cp (with its signed note) as the newest checkpoint this
// client has checked, unless it already knows a newer one.
func (cl *clientLedger) remember(cp ledger.Checkpoint, note []byte) error {
	if cp.N < cl.seen.N || note == nil {
		return nil
	}
	cl.seen = cp
	return cl.save(seenState{LogKey: cl.log.VerifierKey(), Checkpoint: string(note)})
}

// save writes the state file atomically.
func (cl *clientLedger) save(st seenState) error {
	if err := writeJSONFile(cl.path, st); err != nil {
		return fmt.Errorf("client state: %w", err)
	}
	return nil
}

// writeJSONFile replaces path with v as JSON, atomically, so concurrent
// writers leave one whole file.
func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return replaceFile(path, append(b, '\n'))
}

// replaceFile replaces path with data atomically and durably, making its
// folder if needed.
func replaceFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600)
}

// ref returns a checkpoint as a snapshot records it.
func ref(cp ledger.Checkpoint) *snapshot.Checkpoint {
	if cp.N == 0 {
		return nil
	}
	return &snapshot.Checkpoint{Size: cp.N, Root: cp.Hash[:]}
}

// written returns the records of the objects r stored since the last call.
func written(r *repo.Repository, host string) []ledger.Record {
	now := time.Now()
	var recs []ledger.Record
	for _, o := range r.Written() {
		recs = append(recs, ledger.Record{Kind: ledger.KindOf(o.Type), ID: o.ID, Size: o.Size, Time: now, Host: host})
	}
	return recs
}

// append appends recs to the ledger and remembers the new checkpoint.
// Forget and prune use it: unlike a backup, they do not adopt snapshots
// nobody logged, which may be a thief's.
func (cl *clientLedger) append(ctx context.Context, recs []ledger.Record) error {
	if len(recs) == 0 {
		return nil
	}
	cp, note, err := cl.log.Append(ctx, recs, cl.seen)
	if err != nil {
		return fmt.Errorf("record in the ledger: %w", err)
	}
	return cl.remember(cp, note)
}

// record appends to the ledger the objects r stored, plus any snapshot or
// index file the log does not name yet (left by a backup killed between
// storing them and logging them), and remembers the new checkpoint.
func (cl *clientLedger) record(ctx context.Context, r *repo.Repository, host string) (ledger.Checkpoint, error) {
	now := time.Now()
	recs := written(r, host)
	logged, err := cl.loggedIDs(ctx)
	if err != nil {
		return ledger.Checkpoint{}, err
	}
	for _, rec := range recs {
		if cachedKind(rec.Kind) {
			logged.ids[rec.ID] = true
		}
	}
	for _, t := range []store.FileType{store.Snapshots, store.Index} {
		err := r.Store().List(ctx, t, func(fi store.FileInfo) error {
			id, err := blob.ParseID(fi.Name)
			if err == nil && !logged.ids[id] {
				recs = append(recs, ledger.Record{Kind: ledger.KindOf(t), ID: id, Size: fi.Size, Time: now, Host: host})
				logged.ids[id] = true
			}
			return nil
		})
		if err != nil {
			return ledger.Checkpoint{}, fmt.Errorf("list %s: %w", t, err)
		}
	}
	if len(recs) == 0 {
		return cl.seen, nil
	}
	cp, note, err := cl.log.Append(ctx, recs, cl.seen)
	if err != nil {
		return ledger.Checkpoint{}, fmt.Errorf("record in the ledger: %w", err)
	}
	// The batch just appended ends at cp.N, so that is where the next
	// catch-up starts.
	logged.n = cp.N
	if err := cl.saveLogged(logged); err != nil {
		return cp, err
	}
	return cp, cl.remember(cp, note)
}

// loggedSet is a client's cache of the snapshot and index IDs the log names
// up to record n, so that a backup does not read the whole log.
type loggedSet struct {
	n   int64
	ids map[blob.ID]bool
}

// loggedIDs returns the cached set, brought up to the end of the log.
func (cl *clientLedger) loggedIDs(ctx context.Context) (loggedSet, error) {
	s := loggedSet{ids: map[blob.ID]bool{}}
	if b, err := os.ReadFile(cl.loggedPath()); err == nil && len(b) >= 8 && (len(b)-8)%blob.IDSize == 0 {
		s.n = int64(binary.BigEndian.Uint64(b))
		for b = b[8:]; len(b) > 0; b = b[blob.IDSize:] {
			s.ids[blob.ID(b[:blob.IDSize])] = true
		}
	}
	recs, end, err := cl.log.RecordsFrom(ctx, s.n)
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
// the kinds a backup looks for unlogged objects of.
func cachedKind(k string) bool { return k == ledger.KindSnapshot || k == ledger.KindIndex }

func (cl *clientLedger) loggedPath() string { return filepath.Join(filepath.Dir(cl.path), "logged") }

// saveLogged writes the cache: the record count, then the IDs.
func (cl *clientLedger) saveLogged(s loggedSet) error {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(s.ids)*blob.IDSize), uint64(s.n))
	for id := range s.ids {
		b = append(b, id[:]...)
	}
	if err := replaceFile(cl.loggedPath(), b); err != nil {
		return fmt.Errorf("client state: %w", err)
	}
	return nil
}

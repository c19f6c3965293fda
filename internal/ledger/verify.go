package ledger

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/store"
)

// Problem kinds in a verify report.
const (
	ProblemMissing   = "missing-object"    // an object the log names is gone
	ProblemChanged   = "changed-object"    // an object's size or hash is not what the log says
	ProblemUnlogged  = "unlogged-snapshot" // a snapshot the log does not name
	ProblemRollback  = "rollback"          // the log is shorter than a checkpoint seen before
	ProblemFork      = "fork"              // the log does not extend a checkpoint seen before
	ProblemSignature = "signature"         // a checkpoint not signed by the log key
	ProblemLog       = "corrupt-log"       // unreadable entries, tiles or checkpoints
	ProblemWitness   = "witness"           // a required witness co-signature is missing or bad
)

// Problem is one thing verify found wrong.
type Problem struct {
	Kind    string `json:"kind"`
	Object  string `json:"object,omitempty"` // the object concerned, "type/name"
	Message string `json:"message"`
}

// Seen is a checkpoint seen before, and who saw it (for messages).
type Seen struct {
	Source     string
	Checkpoint Checkpoint
}

// VerifyOptions says what Verify checks beyond the log itself.
type VerifyOptions struct {
	// Seen are checkpoints seen before: the client's own state and those
	// recorded in snapshots. The log must extend each one.
	Seen []Seen
	// ReadData hashes every pack; otherwise packs are checked by size.
	ReadData bool
	// Witnesses must each have co-signed a checkpoint the log extends.
	Witnesses []note.Verifier
	// Admin is the administrator's key: a removal record counts only if
	// it names a stored request signed by it that deletes the object
	// (ProblemUnauthorised otherwise). Nil authorises no removal.
	Admin note.Verifier
}

// Report is the outcome of Verify.
type Report struct {
	Records   int64      `json:"records"`
	Signed    Checkpoint `json:"-"`
	SignedN   int64      `json:"signed"` // size of the newest valid checkpoint
	Snapshots int        `json:"snapshots"`
	Objects   int        `json:"objects"`
	// Removed counts logged objects that a later removal record, bound
	// to the administrator's signed request, says forget or prune deleted
	// (or asked to delete): their absence is not a problem.
	Removed  int       `json:"removed"`
	Problems []Problem `json:"problems"`
	Notes    []string  `json:"notes,omitempty"`
	// SignedNote is the newest valid checkpoint's signed note.
	SignedNote []byte `json:"-"`
}

// Tampered reports whether a problem shows the repository or its ledger was
// changed after it was written and signed (blob.ErrTampered): an object
// missing or changed, a rollback, a fork, a bad signature. An unlogged
// snapshot, an unreadable log or a missing witness co-signature can also
// come from an interrupted backup or a witness that lags, and do not count.
func (r *Report) Tampered() bool {
	for _, p := range r.Problems {
		switch p.Kind {
		case ProblemMissing, ProblemChanged, ProblemRollback, ProblemFork, ProblemSignature:
			return true
		}
	}
	return false
}

func (r *Report) problem(kind, object, format string, args ...any) {
	r.Problems = append(r.Problems, Problem{Kind: kind, Object: object, Message: fmt.Sprintf(format, args...)})
}

// Verify checks the log and the objects it names. It returns an error only
// when it cannot run at all (the store fails); everything it finds wrong is
// in the report.
func (l *Log) Verify(ctx context.Context, opts VerifyOptions) (*Report, error) {
	rep := &Report{Problems: []Problem{}}
	c, err := l.ReadAll(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		rep.problem(ProblemLog, "", "the log cannot be read past record %d: %v", c.N(), err)
	}
	rep.Records = c.N()
	if err := l.verifyEntries(ctx, c, rep); err != nil {
		return nil, err
	}
	checkpoints, err := l.verifyCheckpoints(ctx, c, rep)
	if err != nil {
		return nil, err
	}
	for _, s := range opts.Seen {
		checkSeen(c, checkpoints, s, rep)
	}
	if err := l.verifyTiles(ctx, c, rep); err != nil {
		return nil, err
	}
	if err := l.verifyObjects(ctx, c, rep, opts); err != nil {
		return nil, err
	}
	for _, w := range opts.Witnesses {
		if err := l.verifyWitness(ctx, c, w, rep); err != nil {
			return nil, err
		}
	}
	if c.N() > rep.SignedN {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d records after the newest signed checkpoint (an append was interrupted or is running; the next backup signs them)", c.N()-rep.SignedN))
	}
	return rep, nil
}

// verifyEntries reports entries objects that are not part of the chain
// ReadAll followed: left by a rewrite, or stranded by a removed batch.
func (l *Log) verifyEntries(ctx context.Context, c *Contents, rep *Report) error {
	return l.st.List(ctx, store.LedgerEntries, func(fi store.FileInfo) error {
		start, ok := parseIndexName(fi.Name)
		if !ok {
			rep.problem(ProblemLog, string(store.LedgerEntries)+"/"+fi.Name, "an entries object with a malformed name")
			return nil
		}
		if start >= c.N() {
			rep.problem(ProblemLog, string(store.LedgerEntries)+"/"+fi.Name,
				"entries starting at record %d, past the end of the readable log (%d records): a batch before it was removed or rewritten", start, c.N())
		}
		return nil
	})
}

// verifyCheckpoints checks every stored checkpoint against the records and
// returns the valid ones by size.
func (l *Log) verifyCheckpoints(ctx context.Context, c *Contents, rep *Report) (map[int64]Checkpoint, error) {
	var sizes []int64
	err := l.st.List(ctx, store.LedgerCheckpoints, func(fi store.FileInfo) error {
		n, ok := parseIndexName(fi.Name)
		if !ok {
			rep.problem(ProblemLog, string(store.LedgerCheckpoints)+"/"+fi.Name, "a checkpoint with a malformed name")
			return nil
		}
		sizes = append(sizes, n)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	slices.Sort(sizes)
	valid := map[int64]Checkpoint{}
	for _, n := range sizes {
		obj := string(store.LedgerCheckpoints) + "/" + entryName(n)
		cp, msg, err := l.checkpoint(ctx, n)
		switch {
		case errors.Is(err, ErrSignature):
			rep.problem(ProblemSignature, obj, "checkpoint of size %d is not signed by the log key %s", n, l.verifier.Name())
			continue
		case err != nil:
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			rep.problem(ProblemLog, obj, "%v", err)
			continue
		}
		if n > c.N() {
			rep.problem(ProblemRollback, obj, "checkpoint of size %d, but the log holds only %d records: records were removed", n, c.N())
			continue
		}
		root, err := c.Root(n)
		if err != nil || root != cp.Hash {
			rep.problem(ProblemFork, obj, "checkpoint of size %d does not match the log's first %d records: the log was rewritten", n, n)
			continue
		}
		valid[n] = cp
		rep.Signed, rep.SignedN, rep.SignedNote = cp, n, msg
	}
	return valid, nil
}

// checkSeen checks that the log extends a checkpoint seen before.
func checkSeen(c *Contents, stored map[int64]Checkpoint, s Seen, rep *Report) {
	cp := s.Checkpoint
	if cp.N == 0 {
		return
	}
	if cp.N > c.N() {
		rep.problem(ProblemRollback, "", "%s saw the log at %s, but it now holds only %d records (newest signed checkpoint: size %d): the repository was rolled back to an older state",
			s.Source, cp, c.N(), rep.SignedN)
		return
	}
	root, err := c.Root(cp.N)
	if err == nil && root == cp.Hash {
		return
	}
	if other, ok := stored[cp.N]; ok && other.Hash != cp.Hash {
		rep.problem(ProblemFork, "", "two checkpoints of size %d with different roots: the repository's (%s) and the one %s saw (%s)",
			cp.N, other, s.Source, cp)
		return
	}
	rep.problem(ProblemFork, "", "the log was rewritten: it does not extend the checkpoint %s saw (%s)", s.Source, cp)
}

// verifyTiles compares every stored tile with the recomputed hashes.
func (l *Log) verifyTiles(ctx context.Context, c *Contents, rep *Report) error {
	var names []string
	if err := l.st.List(ctx, store.LedgerTiles, func(fi store.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	}); err != nil {
		return fmt.Errorf("list ledger tiles: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		obj := string(store.LedgerTiles) + "/" + name
		t, ok := parseTileName(name)
		if !ok {
			rep.problem(ProblemLog, obj, "a tile with a malformed name")
			continue
		}
		// The last hash the tile covers must be in the log.
		last := tlog.StoredHashIndex(t.L*Height, t.N<<Height+int64(t.W)-1)
		if last >= tlog.StoredHashCount(c.N()) {
			rep.problem(ProblemRollback, obj, "tile covers hashes past the end of the log (%d records): records were removed", c.N())
			continue
		}
		want, err := tlog.ReadTileData(t, c)
		if err != nil {
			rep.problem(ProblemLog, obj, "%v", err)
			continue
		}
		got, err := l.st.Load(ctx, store.Handle{Type: store.LedgerTiles, Name: name})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			rep.problem(ProblemLog, obj, "%v", err)
			continue
		}
		if string(got) != string(want) {
			rep.problem(ProblemFork, obj, "tile does not match the log's records: the log was rewritten")
		}
	}
	return nil
}

// verifyObjects checks that every logged object exists with its logged
// size and hash, and that every snapshot is logged.
func (l *Log) verifyObjects(ctx context.Context, c *Contents, rep *Report, opts VerifyOptions) error {
	type logged struct {
		rec   Record
		index int64
	}
	byType := map[store.FileType]map[string]logged{}
	removed := map[store.Handle]int64{} // the last authorised removal record of each object
	auth := &authorisations{l: l, admin: opts.Admin, reqs: map[blob.ID]authorised{}}
	for i, r := range c.Records {
		t, removal, ok := TypeOf(r.Kind)
		if !ok {
			continue
		}
		if removal {
			h := store.Handle{Type: t, Name: r.ID.String()}
			why, err := auth.check(ctx, r, h)
			if err != nil {
				return err
			}
			if why != nil {
				rep.problem(ProblemUnauthorised, h.String(), "removal record %d (host %q) is not authorised: %v", i, r.Host, why)
				continue
			}
			removed[h] = int64(i)
			continue
		}
		if byType[t] == nil {
			byType[t] = map[string]logged{}
		}
		if _, dup := byType[t][r.ID.String()]; !dup {
			byType[t][r.ID.String()] = logged{r, int64(i)}
		}
	}
	for _, t := range []store.FileType{store.Snapshots, store.Index, store.Packs} {
		sizes := map[string]int64{}
		if err := l.st.List(ctx, t, func(fi store.FileInfo) error {
			sizes[fi.Name] = fi.Size
			return nil
		}); err != nil {
			return fmt.Errorf("list %s: %w", t, err)
		}
		names := make([]string, 0, len(byType[t]))
		for name := range byType[t] {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			lg := byType[t][name]
			obj := string(t) + "/" + name
			rep.Objects++
			if t == store.Snapshots {
				rep.Snapshots++
			}
			size, ok := sizes[name]
			if at, gone := removed[store.Handle{Type: t, Name: name}]; gone && at > lg.index {
				rep.Removed++
				if !ok {
					continue
				}
			}
			switch {
			case !ok:
				rep.problem(ProblemMissing, obj, "%s logged at record %d (%s, host %q) is missing", lg.rec.Kind, lg.index, lg.rec.Time.Format("2006-01-02 15:04:05"), lg.rec.Host)
				continue
			case size != lg.rec.Size:
				rep.problem(ProblemChanged, obj, "%s is %d bytes, the log (record %d) says %d", lg.rec.Kind, size, lg.index, lg.rec.Size)
				continue
			}
			if t == store.Packs && !opts.ReadData {
				continue
			}
			sum, err := l.hashObject(ctx, store.Handle{Type: t, Name: name})
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				rep.problem(ProblemChanged, obj, "cannot read: %v", err)
				continue
			}
			if sum != lg.rec.ID {
				rep.problem(ProblemChanged, obj, "%s content does not hash to its logged ID (record %d): it was replaced", lg.rec.Kind, lg.index)
			}
		}
		if t != store.Snapshots {
			continue
		}
		var unlogged []string
		for name := range sizes {
			if lg, ok := byType[t][name]; !ok || lg.index >= rep.SignedN {
				if ok {
					rep.Notes = append(rep.Notes, fmt.Sprintf("snapshot %s is logged at record %d, after the newest signed checkpoint", name[:8], lg.index))
					continue
				}
				unlogged = append(unlogged, name)
			}
		}
		sort.Strings(unlogged)
		for _, name := range unlogged {
			rep.problem(ProblemUnlogged, string(t)+"/"+name, "snapshot is not in the ledger")
		}
	}
	return nil
}

// hashObject returns the SHA-256 of a stored object's bytes.
func (l *Log) hashObject(ctx context.Context, h store.Handle) (blob.ID, error) {
	b, err := l.st.Load(ctx, h)
	if err != nil {
		return blob.ID{}, err
	}
	return sha256.Sum256(b), nil
}

// verifyWitness checks that witness w co-signed a checkpoint the log
// extends.
func (l *Log) verifyWitness(ctx context.Context, c *Contents, w note.Verifier, rep *Report) error {
	suffix := fmt.Sprintf(".%08x", w.KeyHash())
	var best int64 = -1
	var bestCP Checkpoint
	err := l.st.List(ctx, store.LedgerWitness, func(fi store.FileInfo) error {
		name, ok := strings.CutSuffix(fi.Name, suffix)
		if !ok {
			return nil
		}
		n, ok := parseIndexName(name)
		if !ok || n <= best {
			return nil
		}
		msg, err := l.st.Load(ctx, store.Handle{Type: store.LedgerWitness, Name: fi.Name})
		if err != nil {
			return err
		}
		cp, nt, err := OpenCheckpoint(msg, l.origin, l.verifier, w)
		if err != nil || !signedBy(nt, w) || cp.N != n {
			rep.problem(ProblemWitness, string(store.LedgerWitness)+"/"+fi.Name, "co-signed checkpoint does not verify with the log key and witness %s", w.Name())
			return nil
		}
		best, bestCP = n, cp
		return nil
	})
	if err != nil {
		return fmt.Errorf("list witness checkpoints: %w", err)
	}
	if best < 0 {
		rep.problem(ProblemWitness, "", "no checkpoint co-signed by witness %s", w.Name())
		return nil
	}
	checkSeen(c, nil, Seen{Source: "witness " + w.Name(), Checkpoint: bestCP}, rep)
	if behind := rep.SignedN - best; behind > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("witness %s has co-signed up to record %d; %d newer records await its signature", w.Name(), best, behind))
	}
	return nil
}

// parseTileName is the inverse of tileName.
func parseTileName(name string) (tlog.Tile, bool) {
	t := tlog.Tile{H: Height, W: 1 << Height}
	base, width, partial := strings.Cut(name, ".p")
	l, n, ok := strings.Cut(base, "-")
	if !ok {
		return t, false
	}
	var err error
	if t.L, err = strconv.Atoi(l); err != nil || t.L < 0 || t.L > 8 {
		return t, false
	}
	// The tile's first record, N<<(Height*(L+1)), must be an int64.
	if t.N, err = strconv.ParseInt(n, 10, 64); err != nil || t.N < 0 || t.N > math.MaxInt64>>(Height*(t.L+1)) {
		return t, false
	}
	if partial {
		if t.W, err = strconv.Atoi(width); err != nil || t.W < 1 || t.W >= 1<<Height {
			return t, false
		}
	}
	return t, tileName(t) == name
}

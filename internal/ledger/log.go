package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/store"
)

// Errors that verify and append report when the log contradicts what a
// client or witness saw before. Each also matches blob.ErrTampered.
var (
	// ErrRollback: the log is shorter than a checkpoint seen before.
	ErrRollback error = tamperError("rollback")
	// ErrFork: the log does not extend a checkpoint seen before, or two
	// checkpoints of one size have different roots.
	ErrFork error = tamperError("log rewritten")
)

// tamperError is a sentinel of this package that errors.Is also matches
// with blob.ErrTampered, so that callers map every kind of tampering to one
// exit code without listing the kinds.
type tamperError string

func (e tamperError) Error() string { return string(e) }

// Is reports whether target is blob.ErrTampered.
func (e tamperError) Is(target error) bool { return target == blob.ErrTampered }

// Keyring seals and opens the log's signing key; *crypto.Keys is one. The
// key is sealed for the repository's full keys; a write-only key cannot
// open it and carries its plaintext instead (LogSigner; docs/design.md 3.1).
type Keyring interface {
	SealObject(typ string, plaintext []byte) ([]byte, error)
	OpenObject(typ string, sealed []byte) ([]byte, error)
	// CarriedSigner returns the plaintext of the signing key a write-only
	// keyring carries, nil for a full one.
	CarriedSigner() []byte
}

const signerType = "ledger-signer"

var (
	signerHandle   = store.Handle{Type: store.LedgerKeys, Name: "signer"}
	verifierHandle = store.Handle{Type: store.LedgerKeys, Name: "verifier"}
)

// Log is a repository's ledger. It is safe for concurrent use by several
// processes and hosts: appends coordinate through exclusive creation of
// entries objects only, with no lock.
type Log struct {
	st       store.Store
	origin   string
	vkey     string
	verifier note.Verifier
	signer   note.Signer // nil when opened read-only

	mu   sync.Mutex
	last *logHead // what the last Check or Append read, for the next Append
	free int64    // where the last AppendUnsigned's batch ended (0: not yet)
}

// logHead is the log as one reader saw it: the newest valid checkpoint
// then, its signed note, and the hashes of the whole log of n records.
type logHead struct {
	latest Checkpoint
	msg    []byte
	hs     *hashStore
	n      int64
}

// Open opens the log of repository repoID for appending, creating its
// signing key on first use.
//
// With a write-only keyring the log is signed with the key it carries; the
// stored verifier key must then be that key's (else an error wrapping
// blob.ErrCorrupt: the write-only key was made for another log key).
func Open(ctx context.Context, st store.Store, repoID blob.ID, kr Keyring) (*Log, error) {
	plain := kr.CarriedSigner()
	if plain == nil {
		var err error
		if plain, err = SignerKey(ctx, st, repoID, kr); err != nil {
			return nil, err
		}
	}
	skey, vkey, _ := strings.Cut(strings.TrimSuffix(string(plain), "\n"), "\n")
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("ledger signing key: %v: %w", err, blob.ErrCorrupt)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil || verifier.KeyHash() != signer.KeyHash() || verifier.Name() != KeyName(repoID) {
		return nil, fmt.Errorf("ledger signing key: public and private halves do not match: %w", blob.ErrCorrupt)
	}
	if kr.CarriedSigner() != nil {
		stored, err := PublishedKey(ctx, st)
		if err != nil && !errors.Is(err, blob.ErrNotFound) {
			return nil, fmt.Errorf("ledger public key: %w", err)
		}
		if err == nil && stored != vkey {
			return nil, fmt.Errorf("ledger signing key: the write-only key carries another log key than the repository's: %w", blob.ErrCorrupt)
		}
	}
	if err := publish(ctx, st, vkey); err != nil {
		return nil, fmt.Errorf("ledger public key: %w", err)
	}
	return &Log{st: st, origin: Origin(repoID), vkey: vkey, verifier: verifier, signer: signer}, nil
}

// SignerKey returns the plaintext of the log's signing key (13.1: signer
// key, "\n", verifier key, "\n"), creating and storing the key on first
// use; a write-only key (Keys.WriteOnly) carries this plaintext. It needs
// a keyring that reads (an error wrapping crypto.ErrWriteOnly otherwise).
func SignerKey(ctx context.Context, st store.Store, repoID blob.ID, kr Keyring) ([]byte, error) {
	sealed, err := st.Load(ctx, signerHandle)
	if errors.Is(err, blob.ErrNotFound) {
		sealed, err = createSigner(ctx, st, repoID, kr)
	}
	if err != nil {
		return nil, fmt.Errorf("ledger signing key: %w", err)
	}
	plain, err := kr.OpenObject(signerType, sealed)
	if err != nil {
		return nil, fmt.Errorf("ledger signing key: %w", err)
	}
	return plain, nil
}

// createSigner makes and stores the log's key pair; if another client
// stored one first, that one is returned.
func createSigner(ctx context.Context, st store.Store, repoID blob.ID, kr Keyring) ([]byte, error) {
	skey, vkey, err := GenerateKey(KeyName(repoID))
	if err != nil {
		return nil, err
	}
	sealed, err := kr.SealObject(signerType, []byte(skey+"\n"+vkey+"\n"))
	if err != nil {
		return nil, err
	}
	err = st.Save(ctx, signerHandle, sealed)
	if errors.Is(err, store.ErrExists) {
		return st.Load(ctx, signerHandle)
	}
	return sealed, err
}

// publish stores the log's public key for readers without the password,
// unless it is stored already (every backup opens the log: a read is
// cheaper than a synced write refused).
func publish(ctx context.Context, st store.Store, vkey string) error {
	b, err := st.Load(ctx, verifierHandle)
	if err == nil && strings.TrimSpace(string(b)) == vkey {
		return nil
	}
	if err := st.Save(ctx, verifierHandle, []byte(vkey+"\n")); err != nil && !errors.Is(err, store.ErrExists) {
		return err
	}
	return nil
}

// OpenReadOnly opens the log of repository repoID to read and verify it
// with the log's public key vkey, which the caller must get from a source it
// trusts (a pinned copy, the repository owner), not from the repository.
func OpenReadOnly(st store.Store, repoID blob.ID, vkey string) (*Log, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("log key %q: %v", vkey, err)
	}
	return &Log{st: st, origin: Origin(repoID), vkey: vkey, verifier: v}, nil
}

// PublishedKey returns the public key stored in the repository for readers
// without the password. It is not authenticated: pin it on first use.
func PublishedKey(ctx context.Context, st store.Loader) (string, error) {
	b, err := st.Load(ctx, verifierHandle)
	if err != nil {
		return "", fmt.Errorf("ledger public key: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// VerifierKey returns the log's public key in note's text encoding.
func (l *Log) VerifierKey() string {
	return l.vkey
}

// Origin returns the log's origin line.
func (l *Log) Origin() string { return l.origin }

// Verifier returns the log's checkpoint verifier.
func (l *Log) Verifier() note.Verifier { return l.verifier }

// Latest returns the newest valid checkpoint stored and its signed note.
// An empty log has the zero checkpoint and a nil note. Checkpoints that do
// not verify (not signed by the log key, malformed, or naming another size)
// are passed over: anyone with write access to the storage can plant one,
// and it must not stop appends; verify reports each. If checkpoints are
// stored but none verifies (a log key that is not the log's), the error of
// the newest, wrapping ErrSignature or blob.ErrCorrupt, is returned.
func (l *Log) Latest(ctx context.Context) (Checkpoint, []byte, error) {
	c, msg, invalid, err := l.newestValid(ctx)
	if err == nil && msg == nil && invalid != nil {
		err = invalid
	}
	return c, msg, err
}

// newestValid is Latest, returning the zero checkpoint when none verifies
// and the error of the newest that did not verify, if any, as invalid.
func (l *Log) newestValid(ctx context.Context) (c Checkpoint, msg []byte, invalid, err error) {
	var sizes []int64
	err = l.st.List(ctx, store.LedgerCheckpoints, func(fi store.FileInfo) error {
		if n, ok := parseIndexName(fi.Name); ok {
			sizes = append(sizes, n)
		}
		return nil
	})
	if err != nil {
		return Checkpoint{}, nil, nil, fmt.Errorf("list checkpoints: %w", err)
	}
	slices.Sort(sizes)
	for i := len(sizes) - 1; i >= 0; i-- {
		c, msg, err := l.checkpoint(ctx, sizes[i])
		if err == nil {
			return c, msg, invalid, nil
		}
		if ctx.Err() != nil || !errors.Is(err, ErrSignature) && !errors.Is(err, blob.ErrCorrupt) {
			return Checkpoint{}, nil, nil, err
		}
		if invalid == nil {
			invalid = err
		}
	}
	return Checkpoint{Origin: l.origin}, nil, invalid, nil
}

// head returns the newest valid checkpoint (the zero one if none
// verifies) and the hashes of the whole log: the checkpoint's tree,
// authenticated by its tiles, and every batch stored after it (by appends
// that are running, or were interrupted before signing, or whose
// checkpoint name was squatted), hashed from its records.
func (l *Log) head(ctx context.Context) (*logHead, error) {
	latest, msg, _, err := l.newestValid(ctx)
	if err != nil {
		return nil, err
	}
	h := &logHead{latest: latest, msg: msg, hs: newHashStore(ctx, l.st, latest)}
	h.n, err = l.catchUp(ctx, h.hs, latest.N)
	if err != nil {
		return nil, err
	}
	return h, nil
}

// keep remembers h for the next Append of this Log.
func (l *Log) keep(h *logHead) {
	l.mu.Lock()
	l.last = h
	l.mu.Unlock()
}

// resume returns the head the last Check or Append of this Log read,
// brought up to the end of the log, or reads it afresh if there is none.
// Batches are immutable and hashed as they are read, so catching up from a
// head checked before is as safe as reading it again, and a backup's
// append does not repeat the reads of the check that began it.
func (l *Log) resume(ctx context.Context) (*logHead, error) {
	l.mu.Lock()
	h := l.last
	l.last = nil
	l.mu.Unlock()
	if h == nil {
		return l.head(ctx)
	}
	var err error
	if h.n, err = l.catchUp(ctx, h.hs, h.n); err != nil {
		return nil, err
	}
	return h, nil
}

// catchUp adds to hs the batches stored from log index n on, and returns
// the index after the last.
func (l *Log) catchUp(ctx context.Context, hs *hashStore, n int64) (int64, error) {
	for {
		b, err := loadBatch(ctx, l.st, n)
		if errors.Is(err, blob.ErrNotFound) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if err := hs.add(n, b.records); err != nil {
			return n, err
		}
		n += int64(len(b.records))
	}
}

// checkpoint loads and verifies the stored checkpoint of size n.
func (l *Log) checkpoint(ctx context.Context, n int64) (Checkpoint, []byte, error) {
	h := store.Handle{Type: store.LedgerCheckpoints, Name: entryName(n)}
	msg, err := l.st.Load(ctx, h)
	if err != nil {
		return Checkpoint{}, nil, fmt.Errorf("checkpoint %d: %w", n, err)
	}
	c, _, err := OpenCheckpoint(msg, l.origin, l.verifier)
	if err != nil {
		return Checkpoint{}, nil, fmt.Errorf("checkpoint %s: %w", h, err)
	}
	if c.N != n {
		return Checkpoint{}, nil, fmt.Errorf("checkpoint %s says size %d: %w", h, c.N, blob.ErrCorrupt)
	}
	return c, msg, nil
}

// Append adds recs to the log as one batch, stores the tiles and a signed
// checkpoint covering them, and returns that checkpoint and its note.
// Before signing it checks that the log extends seen, a checkpoint this
// client saw before (the zero Checkpoint for none): a log that is shorter
// is an error wrapping ErrRollback, one that is not an extension of it an
// error wrapping ErrFork. An empty recs, or a record ParseRecord would not
// return (no kind, a negative size, an encoding over 4096 bytes, a time
// outside the years 0 to 9999 in UTC), is an error and stores nothing.
func (l *Log) Append(ctx context.Context, recs []Record, seen Checkpoint) (Checkpoint, []byte, error) {
	if l.signer == nil {
		return Checkpoint{}, nil, errors.New("append to ledger: opened read-only")
	}
	data, err := encodeBatch(recs)
	if err != nil {
		return Checkpoint{}, nil, err
	}
	head, err := l.resume(ctx)
	if err != nil {
		return Checkpoint{}, nil, err
	}
	hs, n := head.hs, head.n
	for {
		h := store.Handle{Type: store.LedgerEntries, Name: entryName(n)}
		err := l.st.Save(ctx, h, batch{start: n, records: data}.encode())
		if errors.Is(err, store.ErrExists) {
			// Another client appended at n first: read its batch (and
			// any after it) and try after them.
			if n, err = l.catchUp(ctx, hs, n); err != nil {
				return Checkpoint{}, nil, err
			}
			continue
		}
		if err != nil {
			return Checkpoint{}, nil, fmt.Errorf("store ledger entries: %w", err)
		}
		break
	}
	if err := hs.add(n, data); err != nil {
		return Checkpoint{}, nil, err
	}
	n += int64(len(data))
	root, err := tlog.TreeHash(n, hs)
	if err != nil {
		return Checkpoint{}, nil, fmt.Errorf("ledger tree hash: %w", err)
	}
	if err := CheckExtends(seen, n, root, hs); err != nil {
		return Checkpoint{}, nil, err
	}
	if err := l.saveTiles(ctx, head.latest.N, n, hs); err != nil {
		return Checkpoint{}, nil, err
	}
	head.n = n
	l.keep(head)
	cp := Checkpoint{Origin: l.origin, N: n, Hash: root}
	msg, err := signText(cp, l.signer)
	if err != nil {
		return Checkpoint{}, nil, fmt.Errorf("sign checkpoint: %w", err)
	}
	h := store.Handle{Type: store.LedgerCheckpoints, Name: entryName(n)}
	if err := l.st.Save(ctx, h, msg); errors.Is(err, store.ErrExists) {
		// The same records give the same root: another client signed the
		// same checkpoint. A different root at this size is a fork. A
		// checkpoint that does not verify was planted to squat the name:
		// the log goes on without a stored checkpoint at this size (the
		// next append signs a larger one), and verify names the squatter.
		other, _, err := l.checkpoint(ctx, n)
		if errors.Is(err, ErrSignature) || errors.Is(err, blob.ErrCorrupt) {
			return cp, msg, nil
		}
		if err != nil {
			return Checkpoint{}, nil, err
		}
		if other.Hash != root {
			return Checkpoint{}, nil, fmt.Errorf("%w: %s holds root %s, the log's records give %s", ErrFork, h, other, cp)
		}
	} else if err != nil {
		return Checkpoint{}, nil, fmt.Errorf("store checkpoint: %w", err)
	}
	return cp, msg, nil
}

// encodeBatch encodes the records of one batch, refusing what readers
// would refuse: a batch they cannot parse could never be read past or
// replaced.
func encodeBatch(recs []Record) ([][]byte, error) {
	if len(recs) == 0 {
		return nil, errors.New("append to ledger: no records")
	}
	data := make([][]byte, len(recs))
	for i, r := range recs {
		b, err := r.encode()
		if err == nil {
			_, err = ParseRecord(b)
		}
		if err != nil {
			return nil, fmt.Errorf("append to ledger: record %d: %w", i, err)
		}
		data[i] = b
	}
	return data, nil
}

// AppendUnsigned adds recs to the log as one batch at the next free index
// and returns the index of its first record. It signs nothing and stores
// no tiles: the next Append by a holder of the log key hashes the batch
// from its records and signs a checkpoint covering it, and until then
// verify notes it as records after the newest signed checkpoint. It is
// for the vault (kalaja serve), which holds the log's public key but not
// its signing key; l may be opened with OpenReadOnly or Open.
//
// The next free index is found as Append finds it: the newest valid
// checkpoint's size, then past every batch stored after it (batches are
// immutable, so a Log resumes from the end its last AppendUnsigned
// reached). The batch is created exclusively; if another writer created
// that name first, the batch there is read and the append tried after it.
// An empty recs, or a record ParseRecord would not return, is an error and
// stores nothing; so is a batch after the checkpoint that does not parse
// (wrapping blob.ErrCorrupt), which no writer can append past. It is safe
// for concurrent use, with other Logs and processes appending too.
func (l *Log) AppendUnsigned(ctx context.Context, recs []Record) (int64, error) {
	data, err := encodeBatch(recs)
	if err != nil {
		return 0, err
	}
	l.mu.Lock()
	n := l.free
	l.mu.Unlock()
	if n == 0 {
		latest, _, _, err := l.newestValid(ctx)
		if err != nil {
			return 0, err
		}
		n = latest.N
	}
	for {
		if n, err = l.skipBatches(ctx, n); err != nil {
			return 0, err
		}
		h := store.Handle{Type: store.LedgerEntries, Name: entryName(n)}
		err := l.st.Save(ctx, h, batch{start: n, records: data}.encode())
		if errors.Is(err, store.ErrExists) {
			continue // another writer appended at n first: go past it
		}
		if err != nil {
			return 0, fmt.Errorf("store ledger entries: %w", err)
		}
		break
	}
	l.mu.Lock()
	l.free = max(l.free, n+int64(len(data)))
	l.mu.Unlock()
	return n, nil
}

// skipBatches returns the index after the last batch stored from log
// index n on, checking that each parses.
func (l *Log) skipBatches(ctx context.Context, n int64) (int64, error) {
	for {
		b, err := loadBatch(ctx, l.st, n)
		if errors.Is(err, blob.ErrNotFound) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n += int64(len(b.records))
	}
}

// CheckExtends checks that the tree of size n and root, whose hashes hr
// reads, extends seen (the zero Checkpoint is extended by every tree).
func CheckExtends(seen Checkpoint, n int64, root tlog.Hash, hr tlog.HashReader) error {
	if seen.N == 0 {
		return nil
	}
	if seen.N > n {
		return fmt.Errorf("%w: a checkpoint of size %d was seen before, but the log now holds only %d records", ErrRollback, seen.N, n)
	}
	proof, err := tlog.ProveTree(n, seen.N, hr)
	if err != nil {
		return fmt.Errorf("consistency proof from size %d to %d: %w", seen.N, n, err)
	}
	if err := tlog.CheckTree(proof, n, root, seen.N, seen.Hash); err != nil {
		return fmt.Errorf("%w: the log of %d records does not extend the checkpoint seen before (%s)", ErrFork, n, seen)
	}
	return nil
}

// saveTiles stores the hash tiles that change when the tree grows from
// oldN to newN. A tile already stored must hold the same bytes.
func (l *Log) saveTiles(ctx context.Context, oldN, newN int64, hr tlog.HashReader) error {
	for _, t := range tlog.NewTiles(Height, oldN, newN) {
		data, err := tlog.ReadTileData(t, hr)
		if err != nil {
			return fmt.Errorf("ledger tile %s: %w", tileName(t), err)
		}
		h := store.Handle{Type: store.LedgerTiles, Name: tileName(t)}
		err = l.st.Save(ctx, h, data)
		if errors.Is(err, store.ErrExists) {
			old, err := l.st.Load(ctx, h)
			if err != nil {
				return fmt.Errorf("ledger tile %s: %w", tileName(t), err)
			}
			if !bytes.Equal(old, data) {
				return fmt.Errorf("%w: stored tile %s differs from the log's records", ErrFork, h)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("store ledger tile: %w", err)
		}
	}
	return nil
}

// loadBatch reads the entries object starting at log index n.
func loadBatch(ctx context.Context, st store.Loader, n int64) (batch, error) {
	h := store.Handle{Type: store.LedgerEntries, Name: entryName(n)}
	data, err := st.Load(ctx, h)
	if err != nil {
		return batch{}, fmt.Errorf("ledger entries %s: %w", h, err)
	}
	b, err := parseBatch(data, n)
	if err != nil {
		return batch{}, fmt.Errorf("ledger entries %s: %w", h, err)
	}
	return b, nil
}

// tileName is the object name of a hash tile: "L-N" for a full tile,
// "L-N.pW" for a partial one of width W. The height is always Height.
func tileName(t tlog.Tile) string {
	if t.W == 1<<Height {
		return fmt.Sprintf("%d-%d", t.L, t.N)
	}
	return fmt.Sprintf("%d-%d.p%d", t.L, t.N, t.W)
}

// hashStore reads the log's stored hashes: those of the tree a checkpoint
// signed come from tiles authenticated against it, later ones from memory.
type hashStore struct {
	tiles tlog.HashReader // nil when base == 0
	base  int64           // stored hashes the tiles hold
	extra []tlog.Hash     // stored hashes base, base+1, ...
}

func newHashStore(ctx context.Context, st store.Loader, c Checkpoint) *hashStore {
	hs := &hashStore{base: tlog.StoredHashCount(c.N)}
	if c.N > 0 {
		hs.tiles = tlog.TileHashReader(c.Tree(), tileReader{ctx: ctx, st: st})
	}
	return hs
}

// ReadHashes implements tlog.HashReader.
func (hs *hashStore) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	var fromTiles []int64
	var at []int
	for i, x := range idx {
		switch {
		case x < hs.base:
			fromTiles = append(fromTiles, x)
			at = append(at, i)
		case x-hs.base < int64(len(hs.extra)):
			out[i] = hs.extra[x-hs.base]
		default:
			return nil, fmt.Errorf("ledger hash %d is not stored yet", x)
		}
	}
	if len(fromTiles) > 0 {
		got, err := hs.tiles.ReadHashes(fromTiles)
		if err != nil {
			return nil, err
		}
		for j, i := range at {
			out[i] = got[j]
		}
	}
	return out, nil
}

// add computes and keeps the stored hashes of records n, n+1, ...
func (hs *hashStore) add(n int64, records [][]byte) error {
	for i, r := range records {
		idx := n + int64(i)
		if tlog.StoredHashIndex(0, idx) != hs.base+int64(len(hs.extra)) {
			return fmt.Errorf("ledger record %d added out of order", idx)
		}
		h, err := tlog.StoredHashes(idx, r, hs)
		if err != nil {
			return fmt.Errorf("ledger record %d: %w", idx, err)
		}
		hs.extra = append(hs.extra, h...)
	}
	return nil
}

// tileReader reads hash tiles from the store for tlog.TileHashReader,
// which authenticates them against a signed tree.
type tileReader struct {
	ctx context.Context
	st  store.Loader
}

func (tileReader) Height() int { return Height }

func (t tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, tile := range tiles {
		h := store.Handle{Type: store.LedgerTiles, Name: tileName(tile)}
		b, err := t.st.Load(t.ctx, h)
		if err != nil {
			return nil, fmt.Errorf("ledger tile %s: %w", h, err)
		}
		out[i] = b
	}
	return out, nil
}

func (tileReader) SaveTiles([]tlog.Tile, [][]byte) {}

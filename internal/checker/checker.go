// Package checker verifies a repository: every index file decodes, every
// indexed pack exists with the right size and header, every snapshot decodes
// and every tree and content blob it needs is present (and, when asked,
// readable: ReadData decrypts and hashes every blob). Problems are reported
// with the snapshots and file paths they damage, so an operator knows what
// is lost and what still restores.
//
// The checker reads through Source, which *repo.Repository implements.
package checker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path"
	"runtime"
	"slices"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/index"
	"github.com/kalaja/kalaja/internal/pack"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store"
)

// Source is what a check reads: index files, the list of stored packs, pack
// headers and whole packs, snapshots and trees. Its methods are called from
// several goroutines at once and must be safe for concurrent use.
type Source interface {
	// LoadIndex reads every index file into Index. Files that cannot be
	// used are *repo.IndexError values joined in the error; any other
	// error ends the check.
	LoadIndex(ctx context.Context) error
	// Index returns the blob index LoadIndex filled.
	Index() *index.Index
	// EachIndexFile calls fn with each index file's name and packs, one
	// file at a time, in any order. Files that cannot be used are
	// *repo.IndexError values joined in the error; an error from fn, or
	// any other error, ends the reading and is returned.
	EachIndexFile(ctx context.Context, fn func(name string, packs []index.Pack) error) error
	// ListPacks calls fn for every stored pack, indexed or not.
	ListPacks(ctx context.Context, fn func(store.FileInfo) error) error
	// ReadPackHeader reads and decrypts the header of pack id, stored
	// with size bytes.
	ReadPackHeader(ctx context.Context, id blob.ID, size int64) (index.Pack, error)
	// LoadPack returns all of pack id as stored, unverified.
	LoadPack(ctx context.Context, id blob.ID) ([]byte, error)
	// Keys returns the keys that open the header of a pack read with
	// LoadPack.
	Keys() *crypto.Keys
	// OpenBlob decrypts and verifies the ciphertext of the blob at loc,
	// which it may overwrite, appending the plaintext to buf[:0].
	OpenBlob(loc index.Location, ciphertext, buf []byte) ([]byte, error)
	// Snapshots loads every snapshot. Snapshots that cannot be used are
	// *repo.SnapshotError values joined in the error; any other error
	// ends the check.
	Snapshots(ctx context.Context) ([]*snapshot.Snapshot, error)
	// LoadTree loads, verifies and decodes a tree blob.
	LoadTree(ctx context.Context, id blob.ID) (*snapshot.Tree, error)
}

var _ Source = (*repo.Repository)(nil)

// Options selects how deep to check.
type Options struct {
	// ReadData reads every pack in full and verifies every blob.
	ReadData bool
	// OnPack is called after each pack is checked (for progress); may be nil.
	OnPack func()
}

// Damage is one file or directory of one snapshot that cannot be restored
// in full.
type Damage struct {
	Snapshot string `json:"snapshot"`
	Path     string `json:"path"`
	Blob     string `json:"blob"`
	Reason   string `json:"reason"`
}

// Report is the outcome of a check.
type Report struct {
	Snapshots int      `json:"snapshots"`
	Packs     int      `json:"packs"`
	Blobs     int      `json:"blobs"`
	Errors    []string `json:"errors"`  // problems with repository objects
	Notes     []string `json:"notes"`   // harmless findings (e.g. unindexed packs)
	Damaged   []Damage `json:"damaged"` // what the errors cost
	// Tampered says that an error is evidence that objects changed after
	// they were written (blob.ErrTampered): an indexed pack missing or of
	// the wrong size, an object whose bytes do not match its name, a pack
	// header that is not the one indexed, a blob that fails authentication.
	// A crash or an interrupted backup leaves none of these (writes are
	// atomic and ordered, docs/design.md section 8); storage that corrupts
	// bytes does.
	Tampered bool `json:"tampered"`
}

// OK reports whether the check found no error.
func (r *Report) OK() bool { return len(r.Errors) == 0 && len(r.Damaged) == 0 }

type checker struct {
	src  Source
	opts Options
	rep  *Report
	mu   sync.Mutex
	bad  map[blob.Handle]string // blob -> why it cannot be read
	// clean are the trees with no damage below them, by ordinal
	// (index.Index.Ordinal); memo holds the damage below the others
	// (paths relative).
	clean index.Bitmap
	memo  map[blob.ID][]Damage
}

func (c *checker) errorf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rep.Errors = append(c.rep.Errors, fmt.Sprintf(format, args...))
}

// errorIs reports err, as tampering if it wraps blob.ErrCorrupt (bytes
// that do not decrypt, or do not match their name).
func (c *checker) errorIs(err error) {
	if errors.Is(err, blob.ErrCorrupt) {
		c.tamperf("%v", err)
		return
	}
	c.errorf("%v", err)
}

// tamperf is errorf for an error that is evidence of tampering
// (Report.Tampered).
func (c *checker) tamperf(format string, args ...any) {
	c.errorf(format, args...)
	c.mu.Lock()
	c.rep.Tampered = true
	c.mu.Unlock()
}

func (c *checker) markBad(h blob.Handle, why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.bad[h]; !ok {
		c.bad[h] = why
	}
}

// Check checks src (whose index must not be loaded yet) and returns a
// report. The error is for failures of the check itself, such as a store
// that cannot be listed; what is wrong with the repository is in the report.
//
// Memory, beyond the index src keeps: the index files are compared with
// the packs one at a time (Source.EachIndexFile), holding 40 bytes per
// stored pack, and the trees walked are a bit per indexed blob; only
// damage (bad blobs, damaged trees) is kept by ID.
func Check(ctx context.Context, src Source, opts Options) (*Report, error) {
	c := &checker{src: src, opts: opts, rep: &Report{}, bad: map[blob.Handle]string{}, memo: map[blob.ID][]Damage{}}
	reported := map[string]bool{} // index files found unusable
	if err := c.indexErrors(src.LoadIndex(ctx), reported); err != nil {
		return nil, err
	}
	c.clean = index.NewBitmap(src.Index().Len())
	if err := c.checkPacks(ctx, reported); err != nil {
		return nil, err
	}
	snaps, err := src.Snapshots(ctx)
	if err != nil {
		var se *repo.SnapshotError
		for _, e := range unjoin(err) {
			if !errors.As(e, &se) {
				return nil, err
			}
			c.errorIs(e)
		}
	}
	c.rep.Snapshots = len(snaps)
	for _, sn := range snaps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for _, d := range c.tree(ctx, sn.Tree) {
			d.Snapshot = sn.ID.String()
			c.rep.Damaged = append(c.rep.Damaged, d)
		}
	}
	c.rep.Blobs = src.Index().Len()
	sort.Strings(c.rep.Errors)
	return c.rep, nil
}

// indexErrors reports each *repo.IndexError joined in err whose file
// reported does not hold yet, and adds it. Any other error is returned.
func (c *checker) indexErrors(err error, reported map[string]bool) error {
	if err == nil {
		return nil
	}
	var ie *repo.IndexError
	for _, e := range unjoin(err) {
		if !errors.As(e, &ie) {
			return err
		}
		if !reported[ie.Name] {
			reported[ie.Name] = true
			c.errorIs(e)
		}
	}
	return nil
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// storedPack is a pack in the store.
type storedPack struct {
	id   blob.ID
	size int64
}

// checkPacks compares the packs in the store with the index files, read
// one at a time, and checks each indexed pack's header (or, with
// ReadData, all of it) once, whichever index files list it. Index files
// unusable now that reported does not name are reported too.
func (c *checker) checkPacks(ctx context.Context, reported map[string]bool) error {
	r := c.src
	var stored []storedPack
	if err := r.ListPacks(ctx, func(fi store.FileInfo) error {
		id, err := blob.ParseID(fi.Name)
		if err != nil {
			c.errorf("pack file %q: name is not an ID", fi.Name)
			return nil
		}
		stored = append(stored, storedPack{id, fi.Size})
		return nil
	}); err != nil {
		return fmt.Errorf("list packs: %w", err)
	}
	slices.SortFunc(stored, func(a, b storedPack) int { return bytes.Compare(a.id[:], b.id[:]) })
	stored = slices.CompactFunc(stored, func(a, b storedPack) bool { return a.id == b.id })
	c.rep.Packs = len(stored)
	indexed := index.NewBitmap(len(stored))
	missing := map[blob.ID]bool{} // indexed, not stored
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0) + 2)
	err := r.EachIndexFile(gctx, func(_ string, packs []index.Pack) error {
		for _, p := range packs {
			i, ok := slices.BinarySearchFunc(stored, p.ID, func(s storedPack, id blob.ID) int { return bytes.Compare(s.id[:], id[:]) })
			var size int64 = -1
			switch {
			case ok && indexed.Has(uint64(i)), !ok && missing[p.ID]:
				continue
			case ok:
				indexed.Set(uint64(i))
				size = stored[i].size
			default:
				missing[p.ID] = true
			}
			g.Go(func() error { return c.checkPack(gctx, p, size) })
		}
		return nil
	})
	if err != nil {
		if err = c.indexErrors(err, reported); err != nil {
			if werr := g.Wait(); werr != nil {
				return werr
			}
			return err
		}
	}
	for i, sp := range stored {
		if indexed.Has(uint64(i)) {
			continue
		}
		id := sp.id
		if !c.opts.ReadData {
			c.mu.Lock()
			c.rep.Notes = append(c.rep.Notes, fmt.Sprintf("pack %s is not in any index (left by an interrupted backup, or its index file is lost); the next backup indexes it again", id.Short()))
			c.mu.Unlock()
			continue
		}
		// With --read-data an unindexed pack is read too: one stored
		// under another pack's name (which S3 accepts) is an error.
		g.Go(func() error {
			b, err := r.LoadPack(gctx, id)
			switch {
			case gctx.Err() != nil:
				return gctx.Err()
			case err != nil:
				c.errorf("pack %s, which no index lists: %v", id.Short(), err)
			case blob.Hash(b) != id:
				c.tamperf("pack %s, which no index lists, does not hash to its name: planted under another name or altered; the next backup will not index it", id.Short())
			default:
				c.mu.Lock()
				c.rep.Notes = append(c.rep.Notes, fmt.Sprintf("pack %s is not in any index (left by an interrupted backup, or its index file is lost); the next backup indexes it again", id.Short()))
				c.mu.Unlock()
			}
			return nil
		})
	}
	return g.Wait()
}

// checkPack checks indexed pack p, stored with size bytes (-1: not
// stored), and marks its blobs bad if it has a problem.
func (c *checker) checkPack(ctx context.Context, p index.Pack, size int64) error {
	defer func() {
		if c.opts.OnPack != nil {
			c.opts.OnPack()
		}
	}()
	id := p.ID
	want := packSize(p)
	var problem error
	tampered := true // unless the problem is the store's
	switch {
	case size < 0:
		problem = fmt.Errorf("pack %s is missing", id.Short())
	case c.opts.ReadData:
		if size != want {
			c.tamperf("pack %s has %d bytes, the index says %d (truncated or altered)", id.Short(), size, want)
		}
		problem = c.readPack(ctx, p)
		tampered = errors.Is(problem, blob.ErrCorrupt)
	case size != want:
		problem = fmt.Errorf("pack %s has %d bytes, the index says %d (truncated or altered)", id.Short(), size, want)
	default:
		hdr, err := c.src.ReadPackHeader(ctx, id, size)
		switch {
		case err != nil:
			problem, tampered = err, errors.Is(err, blob.ErrCorrupt)
		case !sameEntries(hdr.Entries, p.Entries):
			problem = fmt.Errorf("pack %s: header does not match the index", id.Short())
		}
	}
	if problem != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if tampered {
			c.tamperf("%v", problem)
		} else {
			c.errorf("%v", problem)
		}
		for _, e := range p.Entries {
			c.markBad(e.Handle(), problem.Error())
		}
	}
	return nil
}

// packSize is the size a pack with p's entries must have.
func packSize(p index.Pack) int64 {
	var data int64
	for _, e := range p.Entries {
		data += int64(e.Length)
	}
	return data + int64(len(p.Entries))*pack.EntrySize + crypto.Overhead + pack.TrailerSize
}

func sameEntries(a, b []pack.Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// readPack reads a whole pack, checks its name and every blob. Blobs that
// fail (or lie beyond the end of a truncated pack) are marked bad and counted
// in one report error; the other blobs of the pack stay good. The returned
// error is for a pack that cannot be read at all.
func (c *checker) readPack(ctx context.Context, p index.Pack) error {
	r := c.src
	data, err := r.LoadPack(ctx, p.ID)
	if err != nil {
		return fmt.Errorf("pack %s: %w", p.ID.Short(), err)
	}
	if sha256.Sum256(data) != p.ID {
		// Name mismatch: go on to find which blobs are still readable.
		c.tamperf("pack %s: content does not match its name", p.ID.Short())
	}
	hdr, err := pack.ReadHeader(r.Keys(), bytes.NewReader(data), int64(len(data)))
	switch {
	case err != nil:
		c.tamperf("pack %s: header: %v", p.ID.Short(), err)
	case !sameEntries(hdr.Entries, p.Entries):
		c.tamperf("pack %s: header does not match the index", p.ID.Short())
	}
	var failed int
	var buf []byte
	for _, e := range p.Entries {
		loc := index.Location{Pack: p.ID, Ephemeral: p.Ephemeral, Entry: e}
		end := int64(e.Offset) + int64(e.Length)
		if end > int64(len(data)) {
			c.markBad(e.Handle(), "beyond the end of its pack")
			failed++
			continue
		}
		// Decrypting in place is safe: blobs do not overlap, and the pack's
		// hash and header were checked above.
		if buf, err = r.OpenBlob(loc, data[e.Offset:end], buf); err != nil {
			c.markBad(e.Handle(), err.Error())
			failed++
		}
	}
	if failed > 0 {
		c.tamperf("pack %s: %d of %d blobs are damaged", p.ID.Short(), failed, len(p.Entries))
	}
	return nil
}

// tree returns the damage below tree id, memoised across snapshots.
func (c *checker) tree(ctx context.Context, id blob.ID) []Damage {
	h := blob.Handle{Type: blob.Tree, ID: id}
	ord, indexed := c.src.Index().Ordinal(h)
	if indexed && c.clean.Has(ord) {
		return nil
	}
	if d, ok := c.memo[id]; ok {
		return d
	}
	var out []Damage
	t, err := c.loadTree(ctx, h)
	if err != nil {
		c.errorf("%v", err)
		out = []Damage{{Path: "/", Blob: id.String(), Reason: err.Error()}}
		c.memo[id] = out
		return out
	}
	for _, n := range t.Nodes {
		name := string(n.Name)
		switch n.Kind {
		case snapshot.Dir:
			for _, d := range c.tree(ctx, *n.Subtree) {
				d.Path = path.Join("/", name, d.Path)
				out = append(out, d)
			}
		case snapshot.File:
			for _, b := range n.Content {
				if why, bad := c.blobProblem(blob.Handle{Type: blob.Data, ID: b}); bad {
					out = append(out, Damage{Path: "/" + name, Blob: b.String(), Reason: why})
					break
				}
			}
		}
	}
	if indexed && len(out) == 0 {
		c.clean.Set(ord)
	} else {
		c.memo[id] = out
	}
	return out
}

func (c *checker) blobProblem(h blob.Handle) (string, bool) {
	if why, ok := c.bad[h]; ok {
		return why, true
	}
	if !c.src.Index().Has(h) {
		return "not in any index", true
	}
	return "", false
}

func (c *checker) loadTree(ctx context.Context, h blob.Handle) (*snapshot.Tree, error) {
	if why, bad := c.blobProblem(h); bad {
		return nil, fmt.Errorf("tree %s: %s", h.ID.Short(), why)
	}
	return c.src.LoadTree(ctx, h.ID)
}

// Command indexgen writes a repository whose index holds N million data
// blobs, for measuring commands at that scale (bench/index.sh, issue 21)
// without backing up tens of terabytes.
//
//	KALAJA_PASSWORD=... indexgen -dir DIR -n 100        # a new repository of 100 million chunks
//	KALAJA_PASSWORD=... indexgen -dir DIR -bait         # add a few packs for prune to copy and delete
//
// What it writes is a valid repository, through the same encoders as a
// backup (repo.Init, pack.SealTail, repo.SaveIndex, repo.Packer for trees,
// repo.SaveSnapshot, ledger.Log.Append), except for the content of the
// synthetic data blobs:
//
//   - Data packs of about repo.PackSize: each is a sparse file whose blob
//     region is a hole, followed by its real encrypted header and trailer,
//     so the file has the right size and its header opens and matches the
//     index. Blob IDs, lengths and raw lengths are random (stored lengths
//     uniform around -avg); pack names are random, not the SHA-256 of the
//     bytes. So 'check' without --read-data passes; --read-data, restore
//     and anything else that reads these blobs fail.
//   - Index files listing -packs-per-index packs each (32, as a backup
//     writes them), sealed by repo.SaveIndex.
//   - One snapshot (host "indexgen", path /synthetic) whose trees list every
//     synthetic blob: file nodes of -per-file chunks, -files-per-dir files
//     per directory, directories of at most 256 entries above them. Trees
//     are real blobs in real packs, so check and prune walk them.
//   - A ledger record of every pack, index file and snapshot.
//
// -bait opens an existing repository and adds what 'prune' has to work on:
// -bait-packs packs of random data (real blobs) of which a new snapshot
// (host "indexgen", path /bait, one file) uses every other blob, so prune
// copies their used half and deletes them, and as many unused hole packs,
// which prune deletes; it reads no index. bench/index.sh runs it before
// each prune it measures.
//
// Memory is bounded by the pipeline (a few packs per worker, one
// directory's file nodes, the ledger records of -ledger-batch objects), not
// by N. The password comes from KALAJA_PASSWORD.
package main

import (
	"context"
	crand "crypto/rand"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/index"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/pack"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/local"
)

// host is the host name of everything indexgen records.
const host = "indexgen"

type options struct {
	dir           string
	millions      float64
	avg           int // average stored length of a synthetic blob, bytes
	packsPerIndex int
	perFile       int
	filesPerDir   int
	bait          bool
	baitPacks     int
	workers       int
	ledgerBatch   int
}

func main() {
	var o options
	flag.StringVar(&o.dir, "dir", "", "the repository `directory` (created; with -bait, existing)")
	flag.Float64Var(&o.millions, "n", 1, "millions of synthetic data blobs (chunks)")
	avgKiB := flag.Int("avg", 200, "average stored size of a synthetic blob in `KiB` (200: 20 TiB of small files at 100 million; 512: the default chunk size)")
	flag.IntVar(&o.packsPerIndex, "packs-per-index", 32, "packs listed per index file (a backup writes 32, prune 512)")
	flag.IntVar(&o.perFile, "per-file", 1000, "chunks listed by each synthetic file node")
	flag.IntVar(&o.filesPerDir, "files-per-dir", 16, "file nodes per synthetic directory tree")
	flag.BoolVar(&o.bait, "bait", false, "add packs for prune to an existing repository, nothing else")
	flag.IntVar(&o.baitPacks, "bait-packs", 4, "with -bait: packs of real data, half used, and as many unused hole packs")
	flag.IntVar(&o.workers, "workers", runtime.GOMAXPROCS(0), "goroutines sealing pack headers")
	flag.IntVar(&o.ledgerBatch, "ledger-batch", 100000, "objects per ledger append")
	flag.Parse()
	o.avg = *avgKiB << 10
	if o.dir == "" || o.millions < 0 || o.avg < 2*crypto.Overhead || o.packsPerIndex < 1 || o.perFile < 1 || o.filesPerDir < 1 || o.workers < 1 || o.ledgerBatch < 1 {
		flag.Usage()
		os.Exit(2)
	}
	pw := os.Getenv("KALAJA_PASSWORD")
	if pw == "" {
		log.Fatal("set KALAJA_PASSWORD")
	}
	ctx := context.Background()
	var err error
	if o.bait {
		err = bait(ctx, o, []byte(pw))
	} else {
		err = generate(ctx, o, []byte(pw))
	}
	if err != nil {
		log.Fatal(err)
	}
}

// generate creates the repository with its synthetic index and snapshot.
func generate(ctx context.Context, o options, pw []byte) error {
	start := time.Now()
	st, err := local.Create(o.dir)
	if err != nil {
		return err
	}
	kdf, err := crypto.DefaultKDF()
	if err != nil {
		return err
	}
	r, err := repo.Init(ctx, st, pw, kdf)
	if err != nil {
		return err
	}
	lg, err := newLedger(ctx, st, r)
	if err != nil {
		return err
	}
	r.StartWrites(ctx)
	tb := newTreeBuilder(ctx, r.NewPacker(), o)
	total := int64(o.millions * 1e6)
	stats, err := writePacks(ctx, r, lg, o, total, tb.feed)
	if err != nil {
		return err
	}
	top, err := tb.finish()
	if err != nil {
		return err
	}
	if err := r.FinishWrites(); err != nil {
		return err
	}
	sn, err := saveSnapshot(ctx, r, "synthetic", snapshot.Node{Name: "synthetic", Kind: snapshot.Dir, Mode: 0o755, MTime: mtime, Subtree: &top})
	if err != nil {
		return err
	}
	if err := lg.append(ctx, r.Written()); err != nil {
		return err
	}
	log.Printf("%s: %d data blobs in %d packs (%.1f GiB as if full), %d index files, %d trees, snapshot %s, in %s",
		o.dir, stats.blobs, stats.packs, float64(stats.bytes)/(1<<30), stats.indexFiles, tb.trees, sn.Short(), time.Since(start).Round(time.Second))
	return nil
}

// ledgerWriter appends records of the objects written to the repository's
// ledger, chaining each append's checkpoint to the next as a client does.
type ledgerWriter struct {
	mu   sync.Mutex
	lg   *ledger.Log
	seen ledger.Checkpoint
}

func newLedger(ctx context.Context, st store.Store, r *repo.Repository) (*ledgerWriter, error) {
	lg, err := ledger.Open(ctx, st, r.Config().ID, r.Keys())
	if err != nil {
		return nil, err
	}
	w := &ledgerWriter{lg: lg}
	if w.seen, _, err = lg.Latest(ctx); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *ledgerWriter) append(ctx context.Context, objs []store.Object) error {
	if len(objs) == 0 {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	cp, _, err := w.lg.Append(ctx, ledger.Records(objs, host, time.Now()), w.seen)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	w.seen = cp
	return nil
}

type packStats struct {
	blobs, packs, bytes int64
	indexFiles          int
}

// writePacks writes hole packs holding total synthetic data blobs, and the
// index files listing them, with o.workers goroutines sealing headers and
// writing packs and as many writing index files; feed gets every pack's
// blob IDs, from one goroutine.
func writePacks(ctx context.Context, r *repo.Repository, lg *ledgerWriter, o options, total int64, feed func([]blob.ID) error) (packStats, error) {
	var stats packStats
	var reserved atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	packs := make(chan index.Pack, 4*o.workers)
	var made sync.WaitGroup
	for range o.workers {
		made.Add(1)
		g.Go(func() error {
			defer made.Done()
			rng := newRand()
			for ctx.Err() == nil {
				entries := randomEntries(rng, o.avg, repo.PackSize)
				n := int64(len(entries))
				after := reserved.Add(n)
				if after-n >= total {
					return nil
				}
				if after > total {
					entries = entries[:total-(after-n)]
				}
				p, err := writeHolePack(r, o.dir, entries)
				if err != nil {
					return err
				}
				select {
				case packs <- p:
				case <-ctx.Done():
				}
			}
			return ctx.Err()
		})
	}
	go func() {
		made.Wait()
		close(packs)
	}()
	batches := make(chan []index.Pack, o.workers)
	var saved sync.WaitGroup
	for range o.workers {
		saved.Add(1)
		g.Go(func() error {
			defer saved.Done()
			for b := range batches {
				if _, err := r.SaveIndex(ctx, b); err != nil {
					return err
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(batches)
		var batch []index.Pack
		var objs []store.Object
		flush := func() error {
			if len(batch) > 0 {
				select {
				case batches <- batch:
				case <-ctx.Done():
					return ctx.Err()
				}
				stats.indexFiles++
				batch = nil
			}
			return nil
		}
		last := time.Now()
		for p := range packs {
			ids := make([]blob.ID, len(p.Entries))
			size := packBytes(p.Entries)
			for i, e := range p.Entries {
				ids[i] = e.ID
			}
			if err := feed(ids); err != nil {
				return err
			}
			stats.blobs += int64(len(ids))
			stats.packs++
			stats.bytes += size
			objs = append(objs, store.Object{Type: store.Packs, ID: p.ID, Size: size})
			// Entries are not needed past the index file.
			batch = append(batch, p)
			if len(batch) == o.packsPerIndex {
				if err := flush(); err != nil {
					return err
				}
			}
			if len(objs) >= o.ledgerBatch {
				// The index files of these packs may still be in
				// flight; the ledger records them with the next batch.
				if err := lg.append(ctx, append(objs, r.Written()...)); err != nil {
					return err
				}
				objs = nil
			}
			if time.Since(last) > 10*time.Second {
				last = time.Now()
				log.Printf("%d/%d blobs, %d packs", stats.blobs, total, stats.packs)
			}
		}
		if err := flush(); err != nil {
			return err
		}
		return lg.append(ctx, objs)
	})
	// Index files still being saved when the collector ends are waited
	// for by g.Wait; their records go with the caller's final append.
	err := g.Wait()
	saved.Wait()
	return stats, err
}

// newRand returns a fast generator seeded from the system's random source.
func newRand() *rand.Rand {
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // never fails on Linux (crypto/rand's contract)
	return rand.New(rand.NewChaCha8(seed))
}

// randomEntries returns entries of data blobs with random IDs and stored
// lengths uniform in [avg/8, 15*avg/8], about half of them compressed
// (raw length 1 to 3 times the stored one), until they fill packSize, as
// the packer fills a pack.
func randomEntries(rng *rand.Rand, avg, packSize int) []pack.Entry {
	lo, span := max(avg/8, crypto.Overhead), max(avg*7/4, 1)
	var entries []pack.Entry
	off := 0
	for off < packSize {
		e := pack.Entry{Type: blob.Data, Offset: uint32(off), Length: uint32(lo + rng.IntN(span))}
		for i := 0; i < blob.IDSize; i += 8 {
			v := rng.Uint64()
			for j := range 8 {
				e.ID[i+j] = byte(v >> (8 * j))
			}
		}
		if rng.IntN(2) == 0 {
			e.RawLength = e.Length + uint32(rng.IntN(2*int(e.Length)))
		}
		off += int(e.Length)
		entries = append(entries, e)
	}
	// The last blob ends on a 4 KiB boundary, so that the header and
	// trailer take one file system block instead of two.
	entries[len(entries)-1].Length += uint32(-off & 4095)
	return entries
}

// packBytes is the size of a pack holding entries.
func packBytes(entries []pack.Entry) int64 {
	var n int64
	for _, e := range entries {
		n += int64(e.Length)
	}
	return n + int64(len(entries))*pack.EntrySize + crypto.Overhead + pack.TrailerSize
}

// writeHolePack writes a pack of entries whose blob region is a hole, under
// a random name, straight into the local store's layout.
func writeHolePack(r *repo.Repository, dir string, entries []pack.Entry) (index.Pack, error) {
	key, eph, err := r.Keys().NewPackKey()
	if err != nil {
		return index.Pack{}, err
	}
	p := index.Pack{Ephemeral: eph, Entries: entries}
	_, _ = crand.Read(p.ID[:])
	tail := pack.SealTail(key, eph, entries)
	var dataLen int64
	for _, e := range entries {
		dataLen += int64(e.Length)
	}
	name := p.ID.String()
	f, err := os.OpenFile(filepath.Join(dir, string(store.Packs), name[:2], name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return p, err
	}
	if _, err := f.WriteAt(tail, dataLen); err != nil {
		_ = f.Close() // the write failed: that is the error
		return p, fmt.Errorf("write pack %s: %w", p.ID.Short(), err)
	}
	return p, f.Close()
}

// treeBuilder turns the stream of synthetic blob IDs into trees: file nodes
// of perFile chunks, directories of filesPerDir files, and directories of
// up to fanout directories above them. It is used from one goroutine.
type treeBuilder struct {
	ctx    context.Context
	packer *repo.Packer
	o      options
	ids    []blob.ID
	files  []snapshot.Node
	levels [][]blob.ID // levels[0]: the IDs of directories of files
	nfiles int
	trees  int
}

const fanout = 256

func newTreeBuilder(ctx context.Context, p *repo.Packer, o options) *treeBuilder {
	return &treeBuilder{ctx: ctx, packer: p, o: o}
}

func (b *treeBuilder) feed(ids []blob.ID) error {
	for _, id := range ids {
		b.ids = append(b.ids, id)
		if len(b.ids) == b.o.perFile {
			if err := b.file(); err != nil {
				return err
			}
		}
	}
	return nil
}

var mtime = snapshot.Time{Sec: 1764547200} // 2025-12-01

// file ends the current file node.
func (b *treeBuilder) file() error {
	b.files = append(b.files, snapshot.Node{
		Name: snapshot.Name(fmt.Sprintf("f%06d.bin", len(b.files))), Kind: snapshot.File, Mode: 0o644,
		Size: uint64(len(b.ids)) * uint64(b.o.avg), MTime: mtime, CTime: &mtime, Inode: uint64(b.nfiles + 1), Links: 1,
		Content: b.ids,
	})
	b.nfiles++
	b.ids = nil
	if len(b.files) == b.o.filesPerDir {
		return b.dirOfFiles()
	}
	return nil
}

// dirOfFiles saves the current directory of files.
func (b *treeBuilder) dirOfFiles() error {
	id, err := b.save(snapshot.Tree{Nodes: b.files})
	if err != nil {
		return err
	}
	b.files = b.files[:0]
	return b.push(0, id)
}

// push adds directory id at level l, saving the level's directory when
// it is full.
func (b *treeBuilder) push(l int, id blob.ID) error {
	if l == len(b.levels) {
		b.levels = append(b.levels, nil)
	}
	b.levels[l] = append(b.levels[l], id)
	if len(b.levels[l]) < fanout {
		return nil
	}
	return b.up(l)
}

// up saves the directories of level l as one directory at level l+1.
func (b *treeBuilder) up(l int) error {
	t := snapshot.Tree{}
	for i, id := range b.levels[l] {
		t.Nodes = append(t.Nodes, snapshot.Node{Name: snapshot.Name(fmt.Sprintf("d%03d", i)), Kind: snapshot.Dir, Mode: 0o755, MTime: mtime, Subtree: &id})
	}
	b.levels[l] = b.levels[l][:0]
	id, err := b.save(t)
	if err != nil {
		return err
	}
	return b.push(l+1, id)
}

func (b *treeBuilder) save(t snapshot.Tree) (blob.ID, error) {
	data, err := t.Encode()
	if err != nil {
		return blob.ID{}, err
	}
	id, _, err := b.packer.Save(b.ctx, blob.Tree, data)
	b.trees++
	return id, err
}

// finish saves what is left and returns the ID of the top directory, the
// one the snapshot calls "synthetic"; it closes the packer.
func (b *treeBuilder) finish() (blob.ID, error) {
	top, err := b.top()
	if cerr := b.packer.Close(b.ctx); err == nil {
		err = cerr
	}
	return top, err
}

func (b *treeBuilder) top() (blob.ID, error) {
	if len(b.ids) > 0 {
		if err := b.file(); err != nil {
			return blob.ID{}, err
		}
	}
	if len(b.files) > 0 {
		if err := b.dirOfFiles(); err != nil {
			return blob.ID{}, err
		}
	}
	for l := 0; l < len(b.levels); l++ {
		if l == len(b.levels)-1 && len(b.levels[l]) == 1 {
			return b.levels[l][0], nil
		}
		if len(b.levels[l]) > 0 {
			if err := b.up(l); err != nil {
				return blob.ID{}, err
			}
		}
	}
	return b.save(snapshot.Tree{})
}

// saveSnapshot saves a snapshot of host "indexgen" of path /name whose
// root holds node, during a write session of its own for the root tree.
func saveSnapshot(ctx context.Context, r *repo.Repository, name string, node snapshot.Node) (blob.ID, error) {
	root := snapshot.Tree{Nodes: []snapshot.Node{node}}
	data, err := root.Encode()
	if err != nil {
		return blob.ID{}, err
	}
	r.StartWrites(ctx)
	p := r.NewPacker()
	id, _, err := p.Save(ctx, blob.Tree, data)
	if cerr := p.Close(ctx); err == nil {
		err = cerr
	}
	if ferr := r.FinishWrites(); err == nil {
		err = ferr
	}
	if err != nil {
		return blob.ID{}, err
	}
	now := time.Now()
	sn := &snapshot.Snapshot{Time: now, Tree: id, Paths: []string{"/" + name}, Hostname: host, ProgramVersion: host,
		Summary: &snapshot.Summary{Start: now, End: now}}
	return r.SaveSnapshot(ctx, sn)
}

// bait adds to the repository in o.dir what prune works on: o.baitPacks
// packs of real random data and a snapshot that uses every other blob of
// them, and as many hole packs no snapshot uses, listed in an index file.
func bait(ctx context.Context, o options, pw []byte) error {
	st, err := local.Open(o.dir)
	if err != nil {
		return err
	}
	r, err := repo.Open(ctx, st, pw)
	if err != nil {
		return err
	}
	lg, err := newLedger(ctx, st, r)
	if err != nil {
		return err
	}
	rng := newRand()
	r.StartWrites(ctx)
	p := r.NewPacker()
	const blobSize = 256 << 10
	data := make([]byte, blobSize)
	var used []blob.ID
	for i := range o.baitPacks * repo.PackSize / blobSize {
		for j := 0; j < len(data); j += 8 {
			v := rng.Uint64()
			for k := range 8 {
				data[j+k] = byte(v >> (8 * k))
			}
		}
		id, _, err := p.Save(ctx, blob.Data, data)
		if err != nil {
			return err
		}
		if i%2 == 0 {
			used = append(used, id)
		}
	}
	err = p.Close(ctx)
	if ferr := r.FinishWrites(); err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	var holes []index.Pack
	var objs []store.Object
	for range o.baitPacks {
		hp, err := writeHolePack(r, o.dir, randomEntries(rng, 200<<10, repo.PackSize))
		if err != nil {
			return err
		}
		holes = append(holes, hp)
		objs = append(objs, store.Object{Type: store.Packs, ID: hp.ID, Size: packBytes(hp.Entries)})
	}
	if _, err := r.SaveIndex(ctx, holes); err != nil {
		return err
	}
	node := snapshot.Node{Name: "bait.bin", Kind: snapshot.File, Mode: 0o644, Size: uint64(len(used)) * blobSize,
		MTime: mtime, CTime: &mtime, Links: 1, Content: used}
	sn, err := saveSnapshot(ctx, r, "bait", node)
	if err != nil {
		return err
	}
	if err := lg.append(ctx, append(objs, r.Written()...)); err != nil {
		return err
	}
	log.Printf("%s: bait of %d packs half used and %d unused packs, snapshot %s", o.dir, o.baitPacks, o.baitPacks, sn.Short())
	return nil
}

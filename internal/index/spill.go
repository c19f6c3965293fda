package index

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/blob"
)

// SpillRecords is how many entries of persisted packs (see Persisted) the
// part of an index in memory holds at most before they are spilled into
// a run: with about 300 bytes an entry in a backup's heap (the map's, the
// packs kept to write the run, and the collector's slack), some 150 MiB,
// and as much again while the run is written.
var SpillRecords = 1 << 19

// persistedFile is an index file that stores packs of the delta.
type persistedFile struct {
	name  string
	packs []Pack
}

// SetSpill lets Persisted spill (on) or not (off, the default). A spill
// renumbers the Ordinals of the handles held only in memory, so an index
// whose ordinals a caller keeps (prune, check) must not spill.
func (x *Index) SetSpill(on bool) {
	x.spillMu.Lock()
	defer x.spillMu.Unlock()
	x.spill = on
}

// Persisted notes that the index file name, now stored, lists packs,
// which were added with Add. An index of a cache with spilling on
// (SetSpill) spills once such packs hold SpillRecords entries or more:
// their entries are written into a run in the cache, which lookups
// use from then on, and leave memory. So a backup that adds more blobs
// than memory holds (a first backup of ten million files) keeps a bounded
// part in memory. The run is listed in the cache's manifest, covering the
// index files, if the cache's runs are those this index opened (and those
// it spilled before); otherwise the next OpenCache reads the index files.
// A spill that fails (a full disk) leaves the entries in memory, where
// lookups find them, turns spilling off and is reported by SpillErr.
func (x *Index) Persisted(name string, packs []Pack) {
	x.spillMu.Lock()
	defer x.spillMu.Unlock()
	if !x.spill || x.dir == "" {
		return
	}
	x.persisted = append(x.persisted, persistedFile{name, packs})
	for _, p := range packs {
		x.spillable += len(p.Entries)
	}
	if x.spillable < SpillRecords {
		return
	}
	files := x.persisted
	x.persisted, x.spillable = nil, 0
	if err := x.spillFiles(files); err != nil {
		x.spill, x.spillErr = false, fmt.Errorf("index cache %s: spill: %w", x.dir, err)
	}
}

// SpillErr returns the first problem of the spills, or nil: why spilling
// stopped, or why a spilled run is not listed in the cache's manifest.
func (x *Index) SpillErr() error {
	x.spillMu.Lock()
	defer x.spillMu.Unlock()
	return x.spillErr
}

// spillFiles writes the packs of files as a run, publishes it and drops
// them from memory. Called with spillMu held.
func (x *Index) spillFiles(files []persistedFile) error {
	rs := x.rs.Load()
	var bt batch
	spilled := map[blob.ID]bool{}
	for _, f := range files {
		for _, p := range f.packs {
			bt.add(p)
			spilled[p.ID] = true
		}
	}
	name, err := bt.write(x.dir, rs.runs)
	if err != nil {
		return err
	}
	r, err := openRun(filepath.Join(x.dir, name))
	if err != nil {
		_ = os.Remove(filepath.Join(x.dir, name)) // unlisted: removed anyway by the next OpenCache
		return err
	}
	next := rs.with(r, name)
	if err := x.listRun(rs, next, files); err != nil && x.spillErr == nil {
		// The run serves this index all the same; the cache reads the
		// index files again at the next open.
		x.spillErr = fmt.Errorf("index cache %s: a spilled run is not listed: %w", x.dir, err)
	}
	// Published before the entries leave memory: a lookup that misses
	// them there finds them in the runs (see Lookup, Has, Ordinal).
	x.rs.Store(next)
	x.mu.Lock()
	defer x.mu.Unlock()
	x.dropPacks(spilled)
	x.runLen = next.n
	return nil
}

// listRun adds the run that next has after rs to the cache's manifest,
// covering the index files of files, if the manifest lists the runs of rs
// and none of those files. It takes the cache's lock.
func (x *Index) listRun(rs, next *runSet, files []persistedFile) error {
	lock, err := os.OpenFile(filepath.Join(x.dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer func() { _ = lock.Close() }() // closing drops the lock; nothing written
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	c := &cacheUpdate{dir: x.dir}
	m := c.loadManifest()
	if len(m.runs) != len(rs.names) {
		return nil // another process changed the cache
	}
	for i, mr := range m.runs {
		if mr.name != rs.names[i] {
			return nil
		}
	}
	for _, f := range files {
		if _, ok := m.files[f.name]; ok {
			return nil
		}
	}
	c.runs, c.names = next.runs, next.names
	c.files = make([][]string, len(next.runs))
	for name, i := range m.files {
		c.files[i] = append(c.files[i], name)
	}
	for _, f := range files {
		c.files[len(next.runs)-1] = append(c.files[len(next.runs)-1], f.name)
	}
	return c.saveManifest()
}

// dropPacks removes the packs spilled from memory, and renumbers what
// stays. Called with mu held.
func (x *Index) dropPacks(spilled map[blob.ID]bool) {
	renum := make([]int64, len(x.packs))
	var packs []packInfo
	byPack := map[blob.ID]uint32{}
	for i, p := range x.packs {
		renum[i] = -1
		if !spilled[p.id] {
			renum[i] = int64(len(packs))
			byPack[p.id] = uint32(len(packs))
			packs = append(packs, p)
		}
	}
	blobs := map[blob.Handle]entry{}
	for h, e := range x.blobs {
		if n := renum[e.pack]; n >= 0 {
			e.pack, e.ord = uint32(n), uint32(len(blobs))
			blobs[h] = e
		}
	}
	dups := map[blob.Handle][]entry{}
	for h, es := range x.dups {
		es = slices.DeleteFunc(es, func(e entry) bool { return renum[e.pack] < 0 })
		for i := range es {
			es[i].pack = uint32(renum[es[i].pack])
		}
		if len(es) > 0 {
			dups[h] = es
		}
	}
	x.packs, x.byPack, x.blobs, x.dups = packs, byPack, blobs, dups
}

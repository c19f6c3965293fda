package index

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/atomicfile"
)

// ReadFunc reads the index files names and calls fn with the packs of each
// one it could read, one call at a time, in any order. A file that cannot
// be read is skipped and reported in the returned error; the read as a
// whole fails only if ctx is done or fn fails.
type ReadFunc func(ctx context.Context, names []string, fn func(name string, packs []Pack) error) error

const (
	manifestName = "manifest"
	lockName     = "lock"
	// tierRatio: a run is merged with all newer runs once they hold more
	// than a tierRatio-th of its records, so that a record is rewritten
	// about log_tierRatio(N) times in all and runs stay few.
	tierRatio = 4
	// maxRuns bounds the runs a lookup may probe.
	maxRuns = 16
)

// batchRecords bounds the records read into memory before they are
// sorted and written as a run (about 56 bytes each in memory).
var batchRecords = 1 << 20

// OpenCache opens the index cache in dir (created 0700 if missing) for a
// repository whose store holds the index files present, brings it up to
// date and returns an index over it, with the names of the index files it
// covers. Index files not yet in the cache are read with read, in batches
// of bounded memory, into a new run; runs covering an index file that is
// no longer present are dropped and their other index files read again; a
// manifest or run that is damaged, torn by a crash or of another version is
// discarded the same way. Runs are merged when too many (tierRatio). A
// process holds dir's lock (flock) while it updates the cache, so
// processes sharing a cache wait for each other.
//
// An error with a nil Index means the cache could not be used (the caller
// may fall back to New and reading every file); an error with an Index
// lists index files that could not be read (they are not covered, and are
// tried again at the next open). The Index must be closed.
func OpenCache(ctx context.Context, dir string, present []string, read ReadFunc) (*Index, []string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("index cache: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("index cache: %w", err)
	}
	defer func() { _ = lock.Close() }() // closing drops the lock; nothing written
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return nil, nil, fmt.Errorf("index cache: lock: %w", err)
	}
	c := &cacheUpdate{dir: dir}
	x, covered, readErr, err := c.update(ctx, present, read)
	if err != nil {
		c.closeRuns()
		return nil, nil, fmt.Errorf("index cache %s: %w", dir, err)
	}
	return x, covered, readErr
}

// cacheUpdate is one OpenCache's work on the cache directory.
type cacheUpdate struct {
	dir   string
	runs  []*run   // oldest first
	names []string // file names of runs
	files [][]string
}

func (c *cacheUpdate) closeRuns() {
	for _, r := range c.runs {
		r.close()
	}
	c.runs = nil
}

func (c *cacheUpdate) update(ctx context.Context, present []string, read ReadFunc) (*Index, []string, error, error) {
	m := c.loadManifest()
	isPresent := make(map[string]bool, len(present))
	for _, name := range present {
		isPresent[name] = true
	}
	// Keep the runs that open cleanly and whose index files are all present,
	// up to the first that does not: the runs after it may hold in their
	// extra sections further locations of handles whose main record it
	// held, so they are read again with it.
	perRun := make([][]string, len(m.runs))
	for name, i := range m.files {
		perRun[i] = append(perRun[i], name)
	}
	covered := map[string]bool{}
	changed := false
	for i, mr := range m.runs {
		keep := !changed
		for _, name := range perRun[i] {
			keep = keep && isPresent[name]
		}
		var r *run
		if keep {
			var err error
			r, err = openRun(filepath.Join(c.dir, mr.name))
			keep = err == nil && crc(r.b[:60]) == mr.headerCRC
			if !keep && r != nil {
				r.close()
			}
		}
		if !keep {
			changed = true
			continue
		}
		c.runs = append(c.runs, r)
		c.names = append(c.names, mr.name)
		c.files = append(c.files, perRun[i])
		for _, name := range perRun[i] {
			covered[name] = true
		}
	}
	var missing []string
	for _, name := range present {
		if !covered[name] {
			missing = append(missing, name)
		}
	}
	var readErr error
	if len(missing) > 0 {
		r, name, files, rerr, err := c.build(ctx, missing, read)
		if err != nil {
			return nil, nil, nil, err
		}
		readErr = rerr
		if r != nil {
			c.runs, c.names, c.files = append(c.runs, r), append(c.names, name), append(c.files, files)
			changed = true
		}
	}
	for {
		from := compactFrom(c.runs)
		if from < 0 {
			break
		}
		if err := c.mergeFrom(from); err != nil {
			return nil, nil, nil, err
		}
		changed = true
	}
	if changed {
		if err := c.saveManifest(); err != nil {
			return nil, nil, nil, err
		}
	}
	c.removeStale()
	var names []string
	for _, f := range c.files {
		names = append(names, f...)
	}
	x := newWithRuns(c.runs, c.names, c.dir)
	c.runs = nil
	return x, names, readErr, nil
}

// loadManifest reads the manifest; a missing or damaged one is empty.
func (c *cacheUpdate) loadManifest() *manifest {
	b, err := os.ReadFile(filepath.Join(c.dir, manifestName))
	if err == nil {
		if m, err := decodeManifest(b); err == nil {
			return m
		}
	}
	return &manifest{files: map[string]int{}}
}

func (c *cacheUpdate) saveManifest() error {
	m := &manifest{files: map[string]int{}}
	for i, r := range c.runs {
		m.runs = append(m.runs, manifestRun{c.names[i], crc(r.b[:60])})
		for _, name := range c.files[i] {
			m.files[name] = i
		}
	}
	if err := atomicfile.Write(filepath.Join(c.dir, manifestName), m.encode(), 0o600); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// removeStale deletes the files of dir that the manifest does not name:
// runs dropped or merged, and what a crash left behind.
func (c *cacheUpdate) removeStale() {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if n := e.Name(); n != manifestName && n != lockName && !slices.Contains(c.names, n) {
			_ = os.Remove(filepath.Join(c.dir, n)) // best effort: tried again next time
		}
	}
}

// build reads the index files names into batch runs and merges those into
// one. It returns the run (nil if no file could be read), its file name,
// the index files it covers and the read errors of the others.
func (c *cacheUpdate) build(ctx context.Context, names []string, read ReadFunc) (*run, string, []string, error, error) {
	var bt batch
	var runs []*run
	var runNames, files []string
	defer func() {
		for i, r := range runs {
			r.close()
			_ = os.Remove(filepath.Join(c.dir, runNames[i]))
		}
	}()
	flush := func() error {
		if len(bt.recs) == 0 && len(bt.packs) == 0 {
			return nil
		}
		name, err := bt.write(c.dir, c.runs)
		if err != nil {
			return err
		}
		runNames = append(runNames, name)
		r, err := openRun(filepath.Join(c.dir, name))
		if err != nil {
			return err
		}
		runs = append(runs, r)
		bt.packs, bt.recs = bt.packs[:0], bt.recs[:0]
		if testHookRunWritten != nil {
			testHookRunWritten()
		}
		return nil
	}
	bt.recs = make([]record, 0, batchRecords)
	readErr := read(ctx, names, func(name string, packs []Pack) error {
		n := 0
		for _, p := range packs {
			n += len(p.Entries)
		}
		if len(bt.recs) > 0 && len(bt.recs)+n > batchRecords {
			if err := flush(); err != nil {
				return err
			}
		}
		for _, p := range packs {
			bt.add(p)
		}
		files = append(files, name)
		return nil
	})
	if err := ctx.Err(); err != nil {
		return nil, "", nil, nil, err
	}
	if err := flush(); err != nil {
		return nil, "", nil, nil, err
	}
	if len(files) == 0 {
		return nil, "", nil, readErr, nil
	}
	if len(runs) == 0 {
		// Index files that list nothing still need a run to be covered.
		name, err := bt.write(c.dir, nil)
		if err != nil {
			return nil, "", nil, nil, err
		}
		runNames = append(runNames, name)
		r, err := openRun(filepath.Join(c.dir, name))
		if err != nil {
			return nil, "", nil, nil, err
		}
		runs = append(runs, r)
	}
	if len(runs) == 1 {
		r, name := runs[0], runNames[0]
		runs, runNames = nil, nil
		return r, name, files, readErr, nil
	}
	name, err := mergeRuns(c.dir, runs)
	if err != nil {
		return nil, "", nil, nil, err
	}
	r, err := openRun(filepath.Join(c.dir, name))
	if err != nil {
		return nil, "", nil, nil, err
	}
	return r, name, files, readErr, nil
}

// testHookRunWritten, if set, is called after each batch run is written
// (the crash test kills its process there).
var testHookRunWritten func()

// compactFrom returns the first of the runs to merge with all newer ones,
// or -1: the oldest run that holds fewer than tierRatio times the records
// of all newer runs, or enough of the newest to leave maxRuns.
func compactFrom(runs []*run) int {
	newer := uint64(0)
	from := -1
	for i := len(runs) - 1; i >= 0; i-- {
		n := uint64(runs[i].main + runs[i].extra)
		if i < len(runs)-1 && n < tierRatio*newer {
			from = i
		}
		newer += n
	}
	if len(runs) > maxRuns && (from < 0 || from > len(runs)-maxRuns) {
		from = len(runs) - maxRuns
	}
	return from
}

// mergeFrom merges runs[from:] into one.
func (c *cacheUpdate) mergeFrom(from int) error {
	name, err := mergeRuns(c.dir, c.runs[from:])
	if err != nil {
		return err
	}
	r, err := openRun(filepath.Join(c.dir, name))
	if err != nil {
		return err
	}
	var files []string
	for i := from; i < len(c.runs); i++ {
		c.runs[i].close()
		files = append(files, c.files[i]...)
	}
	c.runs = append(c.runs[:from], r)
	c.names = append(c.names[:from], name)
	c.files = append(c.files[:from], files)
	return nil
}

// openRun maps the run file at path read-only and checks it (parseRun).
// The run keeps the file open for its lookups' reads.
func openRun(path string) (*run, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	if fi.Size() < runHeaderSize+fanoutSize || fi.Size() > 1<<46 {
		_ = f.Close()
		return nil, fmt.Errorf("run %s: size %d: %w", filepath.Base(path), fi.Size(), fs.ErrInvalid)
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("map run %s: %w", filepath.Base(path), err)
	}
	r, err := parseRun(b)
	if err != nil {
		_ = unix.Munmap(b)
		_ = f.Close()
		return nil, fmt.Errorf("run %s: %w", filepath.Base(path), err)
	}
	r.mapped, r.file = true, f
	r.dropPages()                         // parseRun read the fan-out and filter through
	_ = unix.Madvise(b, unix.MADV_RANDOM) // filter probes: no read-ahead
	return r, nil
}

// close unmaps r and closes its file.
func (r *run) close() {
	if r.mapped {
		_ = unix.Munmap(r.b)
		r.mapped = false
	}
	if r.file != nil {
		_ = r.file.Close()
		r.file = nil
	}
}

// dropPages gives back r's pages to the kernel: they are clean and read
// again from the page cache when needed, so the process's resident set
// stays bounded however many records it reads.
func (r *run) dropPages() {
	if r.mapped {
		_ = unix.Madvise(r.b, unix.MADV_DONTNEED)
	}
}

// Package archiver makes snapshots. It walks the given paths in one
// goroutine, reusing the parent snapshot's content for files whose size,
// mtime, ctime and inode are unchanged; file workers read and chunk the rest;
// blob workers hash, deduplicate, compress, encrypt and pack every chunk and
// tree. Each directory's tree is finished by its own goroutine as soon as its
// children are, so the walk does not wait for a directory to drain, unless
// a bounded number of walked directories are still waiting for theirs:
// memory is bounded by the directories in progress, not by the snapshot.
//
// Every file read is fingerprinted from its first block (Node.Format,
// Node.High; unchanged files keep their parent's), and every finished
// directory is compared with the parent's by internal/health, which gives
// the snapshot its health at the end.
package archiver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/chunker"
	"github.com/kalaja/kalaja/internal/health"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/snapshot"
)

// Options configures one backup.
type Options struct {
	Parent   *snapshot.Snapshot // previous snapshot of the same paths, or nil
	Hostname string
	Tags     []string
	Version  string               // program version recorded in the snapshot
	Ledger   *snapshot.Checkpoint // the ledger checkpoint the client checked, recorded in the snapshot
	// OnError is called (from any goroutine, serialised) for every file or
	// directory that cannot be read; the backup goes on without it.
	OnError  func(path string, err error)
	Progress *Progress // may be nil
	// Entries named snapshot.QuarantineName are always left out. Exclude,
	// if set, is asked about every path below the given ones
	// (absolute); what it reports true for is left out, and a folder with
	// everything in it. The watcher's protective snapshot uses it to skip
	// files already damaged.
	Exclude func(path string) bool
	// ReadAll reads every file, even those the parent says are unchanged;
	// the parent is still what the snapshot's health is judged against.
	ReadAll bool
	// TrustParent takes an unchanged file's content from Parent without
	// looking its blobs up in the index: the caller knows that no pack
	// was deleted since Parent was stored whole (see backup.Run). The
	// backup then fails if a prune stores a request while it runs
	// (repo.ReuseTrusted). Without it, a file whose blobs are not all
	// indexed is read and stored again.
	TrustParent bool
	// Baseline holds the health records of the host's earlier clean
	// snapshots of the same paths (the newest 10 or fewer), against which
	// the new snapshot's health is judged (see internal/health).
	Baseline []*snapshot.Health
	// LoadTree, if set, loads the parent's trees in place of the
	// repository: a write-only host, which cannot read its trees back,
	// gives its cache (internal/parentcache). A tree it cannot give is
	// backed up in full, as an unreadable one is.
	LoadTree health.TreeLoader
	// SavedTree, if set, is called with every tree of the new snapshot,
	// its ID and encoding, as it is saved; calls are serialised, and the
	// callee may keep data.
	SavedTree func(id blob.ID, data []byte)

	// noHealth leaves out fingerprints and health, to measure their cost.
	noHealth bool
	// pendingDirs, if not 0, replaces maxPendingDirs, for tests.
	pendingDirs int
}

// Progress counts work as it happens; read it from any goroutine.
type Progress struct {
	Files, Bytes atomic.Int64
}

// fileWorkers read and chunk files; blob work is spread over all CPUs.
const fileWorkers = 2

// maxPendingDirs is how many directories may be walked without their
// trees being saved yet: the walker waits for one of them to finish before
// it hands over another. An incremental backup of unchanged files walks
// faster than trees are encoded and saved; without the bound it would hold
// the nodes and parent trees of every directory of the snapshot.
const maxPendingDirs = 1024

// readAhead is how much of each queued file the kernel is asked to read
// before a worker gets to it.
const readAhead = 8 << 20

type archiver struct {
	repo     *repo.Repository
	loadTree health.TreeLoader // the parent's trees: Options.LoadTree or the repository's
	opts     Options
	params   chunker.Params
	prog     *Progress

	files  chan fileJob
	chunks chan blobJob
	// trees packs the tree blobs apart from file content, so that the trees
	// of a snapshot lie together in few packs: the next backup and a
	// restore read them all, one by one, before or while anything else.
	trees  *repo.Packer
	treeMu sync.Mutex // serialises finishDir's use of trees
	// bufs holds the chunk buffers not in use: one per file worker and one
	// per blob worker, so a file worker waits for a free one rather than
	// allocating. Each grows to the largest chunk it has held (the
	// repository's largest chunk size in a disk image's runs of zeros) and
	// keeps its size. More buffers, or a sync.Pool, are no faster and cost
	// peak memory (docs/measurements.md, "Chunk buffers").
	bufs chan *[]byte

	links map[[2]uint64]*fileResult // hard links seen, walker goroutine only
	// dirSlots bounds the directories walked whose trees are not yet
	// saved (see walkDir), and so the nodes and parent trees held.
	dirSlots chan struct{}

	health *health.Accumulator // nil with Options.noHealth

	errMu sync.Mutex
	err   error // first fatal error

	filesNew, filesChanged, filesUnchanged, dirs, unreadable, blobsAdded atomic.Int64
	bytesAdded, bytesRead, totalBytes, totalFiles                        atomic.Int64
}

// blobJob is a chunk of file content for a blob worker to save.
type blobJob struct {
	data []byte
	buf  *[]byte // the buffer holding data, returned to bufs once saved
	out  *blob.ID
	wg   *sync.WaitGroup
}

type fileJob struct {
	path string
	f    *os.File // opened by the walker, read ahead by the kernel
	res  *fileResult
}

// fileResult is the future content of one file.
type fileResult struct {
	read   chan struct{}  // closed when every chunk has been submitted
	wg     sync.WaitGroup // chunks not yet saved
	ids    []*blob.ID
	size   uint64
	format string // fingerprint of the first block (see health.Fingerprint)
	high   bool
	err    error
}

// dirResult is the future tree of one directory.
type dirResult struct {
	done chan struct{}
	id   blob.ID
}

// Backup saves a snapshot of paths (made absolute and cleaned) and returns
// it. Files that cannot be read are left out and reported to opts.OnError;
// the returned snapshot's Summary.Errors counts them. Any repository error
// aborts the backup without writing a snapshot.
func Backup(ctx context.Context, r *repo.Repository, paths []string, opts Options) (*snapshot.Snapshot, error) {
	start := time.Now()
	abs, err := CleanPaths(paths)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a := &archiver{
		repo: r, opts: opts, params: r.Config().ChunkerParams(), prog: opts.Progress,
		files:    make(chan fileJob, 64), // also bounds the files held open
		chunks:   make(chan blobJob, runtime.GOMAXPROCS(0)),
		links:    map[[2]uint64]*fileResult{},
		dirSlots: make(chan struct{}, cmp.Or(opts.pendingDirs, maxPendingDirs)),
		loadTree: opts.LoadTree,
	}
	if a.loadTree == nil {
		a.loadTree = r.LoadTree
	}
	if a.prog == nil {
		a.prog = &Progress{}
	}
	a.bufs = make(chan *[]byte, runtime.GOMAXPROCS(0)+fileWorkers)
	for range cap(a.bufs) {
		a.bufs <- new([]byte)
	}

	r.StartWrites(ctx)
	if opts.TrustParent && opts.Parent != nil && !opts.ReadAll {
		r.ReuseTrusted()
	}
	var fileWG, blobWG sync.WaitGroup
	a.trees = r.NewPacker()
	packers := make([]*repo.Packer, runtime.GOMAXPROCS(0))
	for i := range packers {
		packers[i] = r.NewPacker()
		blobWG.Add(1)
		go func() { defer blobWG.Done(); a.blobWorker(ctx, packers[i]) }()
	}
	for range fileWorkers {
		fileWG.Add(1)
		go func() { defer fileWG.Done(); a.fileWorker(ctx) }()
	}

	var parentTree *snapshot.Tree
	if opts.Parent != nil {
		if parentTree, err = a.loadTree(ctx, opts.Parent.Tree); err != nil {
			parentTree = nil // back up everything rather than fail
		}
	}
	if !opts.noHealth {
		a.health = health.New(parentTree != nil, a.loadTree)
	}
	wctx, stopWarm := context.WithCancel(ctx)
	warmed := make(chan struct{})
	go func() { warm(wctx, abs); close(warmed) }()
	root := a.walkDir(ctx, "/", parentTree, rootSelection(abs))
	stopWarm()
	<-warmed
	<-root.done
	close(a.files)
	fileWG.Wait()
	close(a.chunks)
	blobWG.Wait()
	for _, p := range append(packers, a.trees) {
		if err := p.Close(ctx); err != nil {
			a.fail(err)
		}
	}
	if err := r.FinishWrites(); err != nil {
		a.fail(err)
	}
	if err := a.failed(); err != nil {
		return nil, err
	}

	var h *snapshot.Health
	if a.health != nil {
		h = a.health.Finish(opts.Baseline)
	}
	sn := &snapshot.Snapshot{
		Time: start.UTC(), Tree: root.id, Paths: abs, Hostname: opts.Hostname,
		UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), Tags: opts.Tags, ProgramVersion: opts.Version, Ledger: opts.Ledger,
		Summary: &snapshot.Summary{
			Start: start.UTC(), End: time.Now().UTC(),
			FilesNew: int(a.filesNew.Load()), FilesChanged: int(a.filesChanged.Load()), FilesUnchanged: int(a.filesUnchanged.Load()),
			Dirs: int(a.dirs.Load()), Errors: int(a.unreadable.Load()), BlobsAdded: int(a.blobsAdded.Load()),
			BytesAdded: a.bytesAdded.Load(), BytesRead: a.bytesRead.Load(),
			TotalBytes: a.totalBytes.Load(), TotalFiles: int(a.totalFiles.Load()),
		},
		Health: h,
	}
	if u, err := user.Current(); err == nil {
		sn.Username = u.Username
	}
	if opts.Parent != nil {
		sn.Parent = &opts.Parent.ID
	}
	if _, err := r.SaveSnapshot(ctx, sn); err != nil {
		return nil, err
	}
	return sn, nil
}

// CleanPaths makes paths absolute and clean, sorts them and drops any that
// lie inside another.
func CleanPaths(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, errors.New("no path to back up")
	}
	var abs []string
	for _, p := range paths {
		a, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("path %q: %w", p, err)
		}
		if _, err := os.Lstat(a); err != nil {
			return nil, fmt.Errorf("cannot back up %s: %w", p, err)
		}
		abs = append(abs, a)
	}
	slices.Sort(abs)
	abs = slices.Compact(abs)
	out := abs[:0]
	for _, p := range abs {
		if len(out) > 0 {
			last := out[len(out)-1]
			if last == "/" || strings.HasPrefix(p, last+"/") {
				continue
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// selection names the entries of a directory to back up: nil means all;
// otherwise each name maps to the selection below it.
type selection map[string]selection

// rootSelection builds the selection from "/" that reaches exactly paths.
func rootSelection(paths []string) selection {
	if len(paths) == 1 && paths[0] == "/" {
		return nil
	}
	root := selection{}
	for _, p := range paths {
		cur := root
		parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
		for i, part := range parts {
			if i == len(parts)-1 {
				cur[part] = nil
				break
			}
			next, ok := cur[part]
			if !ok {
				next = selection{}
				cur[part] = next
			}
			cur = next
		}
	}
	return root
}

func (a *archiver) fail(err error) {
	a.errMu.Lock()
	defer a.errMu.Unlock()
	if a.err == nil {
		a.err = err
	}
}

func (a *archiver) failed() error {
	a.errMu.Lock()
	defer a.errMu.Unlock()
	return a.err
}

// report passes an unreadable path to OnError.
func (a *archiver) report(path string, err error) {
	a.unreadable.Add(1)
	if a.opts.OnError != nil {
		a.errMu.Lock()
		defer a.errMu.Unlock()
		a.opts.OnError(path, err)
	}
}

func (a *archiver) blobWorker(ctx context.Context, p *repo.Packer) {
	for j := range a.chunks {
		*j.out = a.save(ctx, p, blob.Data, j.data)
		a.bufs <- j.buf
		j.wg.Done()
	}
}

// save stores data with p unless the backup has failed, and counts what it
// added.
func (a *archiver) save(ctx context.Context, p *repo.Packer, t blob.Type, data []byte) blob.ID {
	if a.failed() != nil {
		return blob.ID{}
	}
	id, n, err := p.Save(ctx, t, data)
	if err != nil {
		a.fail(err)
	}
	if n > 0 {
		a.blobsAdded.Add(1)
		a.bytesAdded.Add(int64(n))
	}
	return id
}

func (a *archiver) fileWorker(ctx context.Context) {
	c := chunker.New(nil, a.repo.Keys().Chunker, a.params)
	for j := range a.files {
		a.readFile(ctx, c, j)
	}
}

// readFile chunks one file and submits its chunks; it never blocks forever
// once ctx is done.
func (a *archiver) readFile(ctx context.Context, c *chunker.Chunker, j fileJob) {
	res := j.res
	defer close(res.read)
	f := j.f
	defer func() { _ = f.Close() }() // read only
	c.Reset(f)
	for {
		var bp *[]byte
		select {
		case bp = <-a.bufs:
		case <-ctx.Done():
			res.err = ctx.Err()
			return
		}
		data, err := c.Next((*bp)[:0])
		if err == io.EOF {
			a.bufs <- bp
			if len(res.ids) == 0 && a.health != nil {
				res.format, res.high = health.Fingerprint(0, nil)
			}
			return
		}
		if err != nil {
			a.bufs <- bp
			res.err = fmt.Errorf("read %s: %w", j.path, err)
			return
		}
		*bp = data
		if len(res.ids) == 0 && a.health != nil {
			// The first chunk begins with the first block: judging it
			// costs no I/O.
			res.format, res.high = health.Fingerprint(int64(len(data)), data)
		}
		id := new(blob.ID)
		res.ids = append(res.ids, id)
		res.size += uint64(len(data))
		a.bytesRead.Add(int64(len(data)))
		a.prog.Bytes.Add(int64(len(data)))
		res.wg.Add(1)
		select {
		case a.chunks <- blobJob{data, bp, id, &res.wg}:
		case <-ctx.Done():
			res.wg.Done()
			a.bufs <- bp
			res.err = ctx.Err()
			return
		}
	}
}

// pending is a node whose content or subtree is still being saved.
type pending struct {
	i    int // index in the directory's nodes
	path string
	file *fileResult
	dir  *dirResult
}

// walkDir records directory path (with sel choosing entries, nil for all),
// schedules its files and subdirectories, and returns the future of its
// tree. parent is the same directory's tree in the parent snapshot, or nil.
func (a *archiver) walkDir(ctx context.Context, path string, parent *snapshot.Tree, sel selection) *dirResult {
	a.dirs.Add(1)
	var names []string
	hd := health.Dir{Path: path, Parent: parent}
	if sel == nil {
		var err error
		if names, err = readDirNames(path); err != nil {
			a.report(path, err)
			hd.Partial = true
		}
	} else {
		for name := range sel {
			names = append(names, name)
		}
		sort.Strings(names)
		hd.Partial = true // a folder above the paths: what else it holds is not backed up, not deleted
	}
	// Entries are looked up in the folder, not by their paths: in a tree
	// of millions of files every component of a path costs a lookup in
	// the kernel's caches.
	dir := openDir(path)
	if dir != unix.AT_FDCWD {
		defer func() { _ = unix.Close(dir) }() // O_PATH, nothing to flush
	}
	var nodes []snapshot.Node
	var waits []pending
	var st unix.Stat_t
	for _, name := range names {
		if ctx.Err() != nil {
			break
		}
		p := filepath.Join(path, name)
		if name == snapshot.QuarantineName || a.opts.Exclude != nil && a.opts.Exclude(p) {
			hd.Skipped = append(hd.Skipped, name)
			continue
		}
		var n snapshot.Node
		err := lstatAt(dir, name, p, &st)
		if err == nil {
			n, err = nodeFromStat(name, &st)
		}
		var pn *snapshot.Node
		if parent != nil {
			pn = parent.Find(name)
		}
		if err == nil {
			// A file whose ctime is unchanged has its extended attributes
			// unchanged: setting one changes the ctime.
			if !a.opts.ReadAll && sameFile(&n, pn) {
				n.Xattrs = pn.Xattrs
			} else {
				n.Xattrs, err = readXattrs(p)
			}
		}
		if err != nil {
			a.report(p, err)
			hd.Skipped = append(hd.Skipped, name)
			continue
		}
		switch n.Kind {
		case snapshot.Symlink:
			t, err := os.Readlink(p)
			if err != nil {
				a.report(p, err)
				hd.Skipped = append(hd.Skipped, name)
				continue
			}
			n.Target = snapshot.Name(t)
		case snapshot.File:
			if res := a.scheduleFile(ctx, p, &n, pn); res != nil {
				waits = append(waits, pending{i: len(nodes), path: p, file: res})
			}
		case snapshot.Dir:
			var sub *snapshot.Tree
			if pn != nil && pn.Kind == snapshot.Dir && pn.Subtree != nil {
				sub, _ = a.loadTree(ctx, *pn.Subtree) // unreadable parent tree: back up in full
			}
			var childSel selection
			if sel != nil {
				childSel = sel[name]
			}
			waits = append(waits, pending{i: len(nodes), path: p, dir: a.walkDir(ctx, p, sub, childSel)})
		}
		nodes = append(nodes, n)
	}
	res := &dirResult{done: make(chan struct{})}
	// Every directory holding a slot has all its children walked, so it
	// finishes without the walker: waiting here cannot deadlock.
	slot := false
	select {
	case a.dirSlots <- struct{}{}:
		slot = true
	case <-ctx.Done():
	}
	go func() {
		a.finishDir(ctx, res, nodes, waits, hd)
		if slot {
			<-a.dirSlots
		}
	}()
	return res
}

// sameFile reports whether n, a file as lstat describes it now, is pn of
// the parent snapshot unchanged: same size, times and inode. The change
// time cannot be set from user space and moves with every write, chmod,
// chown, rename into place and extended attribute change.
func sameFile(n, pn *snapshot.Node) bool {
	return pn != nil && n.Kind == snapshot.File && pn.Kind == snapshot.File && pn.Size == n.Size &&
		pn.MTime == n.MTime && pn.CTime != nil && n.CTime != nil && *pn.CTime == *n.CTime && pn.Inode == n.Inode
}

// openDir opens folder path for looking its entries up (O_PATH), or
// returns AT_FDCWD if it cannot: lstatAt then uses whole paths.
func openDir(path string) int {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return unix.AT_FDCWD
	}
	return fd
}

// lstatAt lstats entry name of folder dir (openDir), whose path is p.
func lstatAt(dir int, name, p string, st *unix.Stat_t) error {
	if dir == unix.AT_FDCWD {
		name = p
	}
	for {
		err := unix.Fstatat(dir, name, st, unix.AT_SYMLINK_NOFOLLOW)
		if err != unix.EINTR {
			if err != nil {
				return &os.PathError{Op: "lstat", Path: p, Err: err}
			}
			return nil
		}
	}
}

func readDirNames(path string) ([]string, error) {
	d, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = d.Close() }() // a folder, read only
	names, err := d.Readdirnames(-1)
	sort.Strings(names)
	return names, err
}

// scheduleFile fills n's content from the parent snapshot when the file is
// unchanged, or submits it for reading and returns its future.
func (a *archiver) scheduleFile(ctx context.Context, path string, n *snapshot.Node, pn *snapshot.Node) *fileResult {
	a.totalFiles.Add(1)
	if !a.opts.ReadAll && sameFile(n, pn) && (a.opts.TrustParent || a.repo.Reuse(blob.Data, pn.Content)) {
		n.Content = pn.Content
		if a.health != nil {
			n.Format, n.High = pn.Format, pn.High
		}
		a.filesUnchanged.Add(1)
		a.totalBytes.Add(int64(n.Size))
		a.prog.Files.Add(1)
		a.prog.Bytes.Add(int64(n.Size))
		return nil
	}
	if pn != nil {
		a.filesChanged.Add(1)
	} else {
		a.filesNew.Add(1)
	}
	key := [2]uint64{n.Device, n.Inode}
	if n.Links > 1 {
		if res, ok := a.links[key]; ok {
			return res
		}
	}
	res := &fileResult{read: make(chan struct{})}
	if n.Links > 1 {
		a.links[key] = res
	}
	// Opening the file here and asking the kernel to read its start ahead
	// turns the queue of files into a read-ahead window: disk reads of the
	// next files overlap the hashing and compression of the current ones.
	f, err := openFile(path)
	if err != nil {
		res.err = err
		close(res.read)
		return res
	}
	unix.Fadvise(int(f.Fd()), 0, readAhead, unix.FADV_WILLNEED)
	select {
	case a.files <- fileJob{path, f, res}:
	case <-ctx.Done():
		_ = f.Close() // read only, and never read
		res.err = ctx.Err()
		close(res.read)
	}
	return res
}

// finishDir waits for a directory's children, then saves its tree and
// reports it to the health accumulator (hd, filled in but for the nodes).
func (a *archiver) finishDir(ctx context.Context, res *dirResult, nodes []snapshot.Node, waits []pending, hd health.Dir) {
	defer close(res.done)
	drop := map[int]bool{}
	for _, w := range waits {
		switch {
		case w.file != nil:
			<-w.file.read
			w.file.wg.Wait()
			if w.file.err != nil {
				if ctx.Err() == nil {
					a.report(w.path, w.file.err)
				}
				drop[w.i] = true
				hd.Skipped = append(hd.Skipped, string(nodes[w.i].Name))
				continue
			}
			n := &nodes[w.i]
			n.Size = w.file.size
			n.Format, n.High = w.file.format, w.file.high
			n.Content = make([]blob.ID, len(w.file.ids))
			for i, id := range w.file.ids {
				n.Content[i] = *id
			}
			a.totalBytes.Add(int64(n.Size))
			a.prog.Files.Add(1)
		case w.dir != nil:
			<-w.dir.done
			id := w.dir.id
			nodes[w.i].Subtree = &id
		}
	}
	tree := &snapshot.Tree{Nodes: make([]snapshot.Node, 0, len(nodes))}
	for i, n := range nodes {
		if !drop[i] {
			tree.Nodes = append(tree.Nodes, n)
		}
	}
	tree.Sort()
	if a.health != nil {
		hd.Nodes = tree.Nodes
		a.health.Add(ctx, hd)
	}
	data, err := tree.Encode()
	if err != nil {
		a.fail(err)
		return
	}
	a.treeMu.Lock()
	res.id = a.save(ctx, a.trees, blob.Tree, data)
	if a.opts.SavedTree != nil {
		a.opts.SavedTree(res.id, data)
	}
	a.treeMu.Unlock()
}

package recovery

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/fswatch"
	"github.com/kalaja/kalaja/internal/restorer"
	"github.com/kalaja/kalaja/internal/snapshot"
)

// Source is what a repair reads: what a restore reads, and the function
// that names blobs, with which live files and written files are compared
// to the snapshot. Its methods are called from many goroutines at once.
type Source interface {
	restorer.Source
	// NewIDHasher returns a hasher of the repository's blob IDs, for one
	// goroutine.
	NewIDHasher() *crypto.IDHasher
}

// RepairOptions configures a repair.
type RepairOptions struct {
	// Paths are the paths to repair, absolute and clean, as the snapshot
	// names them; a path may name a folder or a single entry. A path that
	// lies inside another is repaired with it.
	Paths []string
	// Root, if set (absolute, clean), is the folder the live tree is
	// under: snapshot path /a/b is repaired at Root/a/b, and Root is made
	// if missing. Empty means "/": the live tree is the one the snapshot
	// was taken of. A restore into a new folder is a repair with Root.
	Root string
	// Quarantine is the folder (absolute, clean) that receives every live
	// entry the repair takes away, under its live path. It is made (0700)
	// when first needed; no element of its path may be a symlink. It may
	// lie under one of Paths only inside a folder named snapshot.QuarantineName. A
	// dry run does not make it.
	Quarantine string
	// DryRun plans: the report counts and lists what would be done, and
	// nothing is changed. Live files are still read to compare them.
	DryRun bool
	// OnError is called, serialised, with the live path of every entry
	// that could not be repaired or verified; the repair goes on.
	OnError func(path string, err error)
	// Progress, if not nil, counts the regular files done (left as they
	// were, repaired, or written in full) and their bytes.
	Progress *restorer.Progress
}

// Repair makes the live tree under each of o.Paths what snapshot sn holds
// there. For a path the snapshot holds, the live entry is made to match it:
// a regular file whose size, mtime, ctime, inode and device are the
// node's is left alone unread; one of the same size is read in the
// snapshot's blob boundaries and compared blob ID by blob ID; one that
// differs is moved into the quarantine and restored; one whose content is
// right gets its metadata fixed. Symlinks, special files and folders are
// compared by kind, target and metadata; hard links are restored as links.
// Everything in the live tree that the snapshot lacks, and a path the
// snapshot lacks, is moved into the quarantine; nothing is deleted. A
// file is moved away only when its replacement can be written (every blob
// of it is indexed). Every entry written is read back and verified; a
// mismatch is reported (wrapping ErrVerify) and counted in VerifyFailed.
// Entries named snapshot.QuarantineName are left alone at every level.
//
// The live tree is read and changed through open folders, one name at a
// time, never following a symlink: a symlink, FIFO or other entry planted
// where the snapshot has something else is itself moved into the
// quarantine. An ancestor of a path that is not a folder is reported, and
// the path left alone.
//
// Repair returns an error, with the report so far, if the options are
// invalid, the snapshot's root tree cannot be read, the quarantine cannot
// be made, or ctx ends. Otherwise problems are reported to o.OnError,
// counted in the report's Errors, and the repair goes on. A repair cut
// short by ctx leaves every entry it reached repaired, except the files
// whose content was being written (in place, incomplete, with mode 0600,
// their earlier versions in the quarantine) and the metadata of the
// folders it was in; repairing again finishes the work.
func Repair(ctx context.Context, src Source, sn *snapshot.Snapshot, o RepairOptions) (*Report, error) {
	start := time.Now()
	paths, err := cleanPaths(o.Paths)
	if err != nil {
		return nil, err
	}
	base := "/"
	if o.Root != "" {
		if !filepath.IsAbs(o.Root) || filepath.Clean(o.Root) != o.Root {
			return nil, fmt.Errorf("repair: root %q is not an absolute, clean path", o.Root)
		}
		base = o.Root
	}
	live := make([]string, len(paths))
	for i, p := range paths {
		live[i] = filepath.Join(base, p)
	}
	if err := checkQuarantine(o.Quarantine, live); err != nil {
		return nil, err
	}
	rep := &Report{Snapshot: sn.ID, Paths: paths, Quarantine: o.Quarantine, DryRun: o.DryRun}
	defer func() { rep.Seconds = time.Since(start).Seconds() }()
	r := &repair{ctx: ctx, src: src, o: o, rep: rep, isRoot: os.Geteuid() == 0, prog: o.Progress,
		links: map[[2]uint64]link{}, ids: src.NewIDHasher(), qroot: -1}
	r.pool.New = func() any { return &hashBuf{ids: src.NewIDHasher()} }
	if r.prog == nil {
		r.prog = &restorer.Progress{}
	}
	rootTree, err := src.LoadTree(ctx, sn.Tree)
	if err != nil {
		return rep, fmt.Errorf("load the snapshot's root tree: %w", err)
	}
	if base != "/" && !o.DryRun {
		if err := os.MkdirAll(base, 0o700); err != nil {
			return rep, fmt.Errorf("repair root: %w", err)
		}
	}
	root, err := openDir(unix.AT_FDCWD, base)
	if err != nil && !(o.DryRun && errors.Is(err, fs.ErrNotExist)) {
		return rep, fmt.Errorf("open %s: %w", base, err)
	}
	rd := newDir(root, base, nil)
	defer rd.release()
	if err := probeNoFollow(o.Quarantine); err != nil {
		return rep, fmt.Errorf("quarantine: %w", err)
	}
	defer func() {
		if rd.q >= 0 && rd.q != r.qroot {
			unix.Close(rd.q)
		}
		if r.qroot >= 0 {
			unix.Close(r.qroot)
		}
	}()
	if !o.DryRun {
		if slices.ContainsFunc(live, func(p string) bool { return fswatch.Under(o.Quarantine, p) }) {
			// Made now, the quarantine changes its folder's times before
			// the walk comes in, which then puts them back.
			if _, err := r.qdir(rd); err != nil {
				return rep, err
			}
		}
		r.w = restorer.NewWriter(ctx, src, r.prog, r.report)
	}
	for _, p := range paths {
		if err = r.path(rd, rootTree, p); err != nil {
			break
		}
	}
	if r.w != nil {
		r.w.Wait()
	}
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("repair cancelled: the entries reached were repaired, except the files being written, "+
			"which are left incomplete (mode 0600) with their earlier versions in the quarantine %s; repair again to finish: %w", o.Quarantine, err)
	}
	return rep, err
}

// cleanPaths checks that paths are absolute and clean, sorts them and
// drops those inside another.
func cleanPaths(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("repair: no path given")
	}
	var out []string
	for _, p := range slices.Sorted(slices.Values(paths)) {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p {
			return nil, fmt.Errorf("repair %q: not an absolute, clean path", p)
		}
		if len(out) > 0 && fswatch.Under(p, out[len(out)-1]) {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// repair is the state of one Repair. The walk runs in one goroutine;
// verification runs in the restorer's workers and touches only what mu
// guards and the pool.
type repair struct {
	ctx    context.Context
	src    Source
	o      RepairOptions
	isRoot bool
	prog   *restorer.Progress
	w      *restorer.Writer // nil in a dry run
	qroot  int              // the quarantine folder, -1 until something is moved there
	links  map[[2]uint64]link
	ids    *crypto.IDHasher // the walk's
	buf    []byte           // the walk's
	pool   sync.Pool        // of *hashBuf, for verification

	mu  sync.Mutex // guards the report's Errors, Problems, Verified and VerifyFailed, and OnError
	rep *Report
}

// link is where the first name of a hard-linked file was restored or kept.
type link struct {
	dir, name string
	dev, ino  uint64 // 0 in a dry run where it would be written
}

type hashBuf struct {
	ids *crypto.IDHasher
	buf []byte
}

// dir is an open live folder. The walk holds a reference while in it,
// every file being written in it another (for its verification); the
// descriptor is closed with the last.
type dir struct {
	f      *os.File // nil for a folder a dry run would make
	fd     int      // f's descriptor, -1 without f
	path   string   // live, absolute
	parent *dir
	q      int // its folder in the quarantine, -1 until needed (walk only)
	refs   atomic.Int32
	// metaOK says its metadata was the snapshot's when the walk came in;
	// changed that the repair has since added or moved entries in it
	// (which changes its times). Walk only.
	metaOK, changed bool
}

func newDir(f *os.File, path string, parent *dir) *dir {
	d := &dir{f: f, fd: -1, path: path, parent: parent, q: -1}
	if f != nil {
		d.fd = int(f.Fd())
	}
	d.refs.Store(1)
	return d
}

func (d *dir) release() {
	if d.refs.Add(-1) == 0 && d.f != nil {
		_ = d.f.Close() // a folder, read only
	}
}

// leave ends the walk's use of d.
func (d *dir) leave() {
	if d.q >= 0 && d.parent != nil {
		unix.Close(d.q)
	}
	d.release()
}

func (d *dir) child(name string) string { return filepath.Join(d.path, name) }

// openDir opens folder name in dirfd without following a symlink or, where
// the process may, updating its access time.
func openDir(dirfd int, name string) (*os.File, error) {
	fd, err := openAt(dirfd, name, dirFlags|unix.O_NOATIME, 0)
	if err == unix.EPERM {
		fd, err = openAt(dirfd, name, dirFlags, 0)
	}
	if err != nil {
		return nil, os.NewSyscallError("open", err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// qdir returns the descriptor of d's folder in the quarantine, making it
// and its parents as needed.
func (r *repair) qdir(d *dir) (int, error) {
	if d.q >= 0 {
		return d.q, nil
	}
	if d.parent == nil { // the root: the quarantine itself, made when first needed
		var err error
		if r.qroot, err = openNoFollow(r.o.Quarantine, true); err != nil {
			return -1, fmt.Errorf("quarantine: %w", err)
		}
		d.q = r.qroot
		// Under a Root other than "/", entries keep their live path there.
		for name := range strings.SplitSeq(strings.Trim(d.path, "/"), "/") {
			if name == "" {
				continue
			}
			q, err := quarantineDir(d.q, name)
			if err != nil {
				return -1, err
			}
			if d.q != r.qroot {
				unix.Close(d.q)
			}
			d.q = q
		}
		return d.q, nil
	}
	pq, err := r.qdir(d.parent)
	if err != nil {
		return -1, err
	}
	d.q, err = quarantineDir(pq, filepath.Base(d.path))
	return d.q, err
}

func (r *repair) report(path string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rep.Errors++
	if len(r.rep.Problems) < MaxListed {
		r.rep.Problems = append(r.rep.Problems, Problem{path, err.Error()})
	}
	if r.o.OnError != nil {
		r.o.OnError(path, err)
	}
}

// verified counts an entry read back after writing: err nil if it matches.
func (r *repair) verified(path string, err error) {
	if err != nil {
		r.report(path, fmt.Errorf("%w: %w", ErrVerify, err))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.rep.VerifyFailed++
	} else {
		r.rep.Verified++
	}
}

func (r *repair) act(path, do, reason string) {
	if len(r.rep.Actions) < MaxListed {
		r.rep.Actions = append(r.rep.Actions, Action{path, do, reason})
	} else {
		r.rep.ActionsOmitted++
	}
}

// path repairs live path p (not "/" unless alone), which root's tree
// reaches from rootTree. A missing ancestor folder the snapshot has is
// made; one that is not a folder leaves p alone.
func (r *repair) path(root *dir, rootTree *snapshot.Tree, p string) error {
	if p == "/" {
		return r.walk(root, rootTree, false)
	}
	names := strings.Split(p[1:], "/")
	if slices.Contains(names, snapshot.QuarantineName) {
		r.report(p, fmt.Errorf("lies in a quarantine folder (%s), which a repair leaves alone", snapshot.QuarantineName))
		return nil
	}
	// The snapshot's nodes along p; fewer than names if it lacks p.
	var nodes []*snapshot.Node
	for tree := rootTree; len(nodes) < len(names); {
		n := tree.Find(names[len(nodes)])
		if n == nil {
			break
		}
		if n.Kind == snapshot.Dir && n.Subtree == nil {
			// A Source that keeps DecodeTree's promise never gets here.
			r.report(p, fmt.Errorf("the snapshot's folder %q has no tree: %w", n.Name, blob.ErrCorrupt))
			return nil
		}
		nodes = append(nodes, n)
		if len(nodes) == len(names) {
			break
		}
		if n.Kind != snapshot.Dir {
			break
		}
		t, err := r.src.LoadTree(r.ctx, *n.Subtree)
		if err != nil {
			if r.ctx.Err() != nil {
				return r.ctx.Err()
			}
			r.report(p, err)
			return nil
		}
		tree = t
	}
	var node *snapshot.Node
	if len(nodes) == len(names) {
		node = nodes[len(nodes)-1]
	}
	d := root
	type made struct {
		d *dir
		n *snapshot.Node
	}
	var mades []made // ancestors this repair makes
	defer func() {
		for _, m := range slices.Backward(mades) {
			if r.ctx.Err() == nil {
				r.dirMeta(m.d, m.n, true)
			}
		}
		for ; d != root; d = d.parent {
			d.leave()
		}
	}()
	for i, name := range names[:len(names)-1] {
		var st *unix.Stat_t
		if d.fd >= 0 {
			var err error
			if st, err = lstatAt(d.fd, name); err != nil {
				r.report(d.child(name), os.NewSyscallError("lstat", err))
				return nil
			}
		}
		switch {
		case st == nil && node == nil:
			return nil // neither has p
		case st == nil: // the snapshot has p, so every folder above it
			var f *os.File
			if !r.o.DryRun {
				if err := unix.Mkdirat(d.fd, name, 0o700); err != nil {
					r.report(d.child(name), os.NewSyscallError("mkdir", err))
					return nil
				}
				var err error
				if f, err = openDir(d.fd, name); err != nil {
					r.report(d.child(name), err)
					return nil
				}
			}
			r.act(d.child(name), DoRestore, Missing)
			r.rep.DirsCreated++
			d = newDir(f, d.child(name), d)
			mades = append(mades, made{d, nodes[i]})
		case st.Mode&unix.S_IFMT != unix.S_IFDIR:
			r.report(p, fmt.Errorf("%s is a %s, not a folder; it lies outside the paths to repair and is not followed", d.child(name), kindOf(st.Mode)))
			return nil
		default:
			f, err := openDir(d.fd, name)
			if err != nil {
				r.report(d.child(name), err)
				return nil
			}
			d = newDir(f, d.child(name), d)
		}
	}
	last := names[len(names)-1]
	var st *unix.Stat_t
	if d.fd >= 0 {
		var err error
		if st, err = lstatAt(d.fd, last); err != nil {
			r.report(p, os.NewSyscallError("lstat", err))
			return nil
		}
	}
	return r.entry(d, last, node, st, nil)
}

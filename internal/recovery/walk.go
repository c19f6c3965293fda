package recovery

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/snapshot"
)

// walk repairs the entries of live folder d after tree. made says the
// repair has just made d, so it holds nothing yet. It returns only ctx's
// error.
func (r *repair) walk(d *dir, tree *snapshot.Tree, made bool) error {
	var names []string
	if !made && d.fd >= 0 {
		var err error
		if names, err = readNames(d.fd, d.path); err != nil {
			r.report(d.path, fmt.Errorf("list: %w", err)) // the snapshot's entries are still repaired
		}
	}
	nodes := tree.Nodes
	subs := make([]*subtree, len(nodes))
	sa := startStatAhead(d.fd, names)
	defer sa.stop()
	defer func() {
		for _, s := range subs {
			if s != nil {
				<-s.done
			}
		}
	}()
	next := 0 // the first node whose subtree is not yet being loaded
	for i, j := 0, 0; i < len(nodes) || j < len(names); {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		for ; next < len(nodes) && next < i+ahead; next++ {
			if nodes[next].Kind == snapshot.Dir && validNode(nodes, next) {
				subs[next] = r.load(*nodes[next].Subtree)
			}
		}
		var n *snapshot.Node
		var name string
		listed := -1 // the index in names of name, if it was listed
		switch {
		case j == len(names) || i < len(nodes) && string(nodes[i].Name) < names[j]:
			n, name = &nodes[i], string(nodes[i].Name)
			i++
		case i == len(nodes) || names[j] < string(nodes[i].Name):
			name, listed = names[j], j
			j++
		default:
			n, name, listed = &nodes[i], names[j], j
			i++
			j++
		}
		if name == snapshot.QuarantineName {
			continue
		}
		var sub *subtree
		if n != nil {
			if !validNode(nodes, i-1) {
				// A Source that keeps DecodeTree's promise never gets here.
				r.report(d.child(name), fmt.Errorf("the snapshot's node %q is not a single, unique name, or a folder without a tree: %w", name, blob.ErrCorrupt))
				continue
			}
			sub = subs[i-1]
		}
		var st *unix.Stat_t
		if d.fd >= 0 && !made {
			var err error
			if listed >= 0 {
				st, err = sa.get(listed)
			} else {
				st, err = lstatAt(d.fd, name)
			}
			if err != nil {
				r.report(d.child(name), os.NewSyscallError("lstat", err))
				continue
			}
		}
		if err := r.entry(d, name, n, st, sub); err != nil {
			return err
		}
	}
	return nil
}

// statters is how many goroutines lstat the entries of one live folder
// ahead of the walk, and statWindow how far ahead of it they may be: the
// results waiting for the walk are bounded, however large the folder.
const (
	statters   = 4
	statWindow = 64
)

// statAhead lstats the entries of a live folder from several goroutines,
// in the order the walk takes them, so that the inodes of a cold tree are
// read from the disk several at a time instead of one after another. A
// result may be older than the walk's turn at its entry, as any lstat is
// by the time the walk acts on it: every action names the entry through
// the folder's descriptor without following symlinks, and a content check
// opens the file and compares it with the lstat.
type statAhead struct {
	mu       sync.Mutex
	cond     sync.Cond
	next     int // the first index not yet claimed by a goroutine
	consumed int // every index below is taken or passed over by the walk
	stopped  bool
	ring     [statWindow]statResult
	wg       sync.WaitGroup
}

type statResult struct {
	j   int // the index in names of the result, -1 for none
	st  *unix.Stat_t
	err error
}

// startStatAhead starts lstatting names in the folder open as fd. Its stop
// must be called before fd is closed.
func startStatAhead(fd int, names []string) *statAhead {
	sa := &statAhead{}
	sa.cond.L = &sa.mu
	for i := range sa.ring {
		sa.ring[i].j = -1
	}
	for range min(statters, len(names)) {
		sa.wg.Go(func() {
			for {
				sa.mu.Lock()
				for !sa.stopped && sa.next < len(names) && sa.next >= sa.consumed+statWindow {
					sa.cond.Wait()
				}
				sa.next = max(sa.next, sa.consumed) // what the walk passed over is not needed
				if sa.stopped || sa.next >= len(names) {
					sa.mu.Unlock()
					return
				}
				j := sa.next
				sa.next++
				sa.mu.Unlock()
				st, err := lstatAt(fd, names[j])
				sa.mu.Lock()
				if j >= sa.consumed { // else passed over, and its slot may be another's
					sa.ring[j%statWindow] = statResult{j, st, err}
					sa.cond.Broadcast()
				}
				sa.mu.Unlock()
			}
		})
	}
	return sa
}

// get returns the lstat of names[j] (nil if it no longer exists). Calls
// must come in increasing j, each index at most once, and not after stop;
// indexes not asked for are passed over.
func (sa *statAhead) get(j int) (*unix.Stat_t, error) {
	sa.mu.Lock()
	defer sa.mu.Unlock()
	if j > sa.consumed { // pass over what comes before, so j is in the window
		sa.consumed = j
		sa.cond.Broadcast()
	}
	r := &sa.ring[j%statWindow]
	for r.j != j {
		sa.cond.Wait()
	}
	st, err := r.st, r.err
	*r = statResult{j: -1}
	sa.consumed = j + 1
	sa.cond.Broadcast()
	return st, err
}

// stop ends the goroutines and waits for them.
func (sa *statAhead) stop() {
	sa.mu.Lock()
	sa.stopped = true
	sa.cond.Broadcast()
	sa.mu.Unlock()
	sa.wg.Wait()
}

// ahead is how many entries ahead of itself a walk starts loading the
// trees of folders, so that decoding trees overlaps the walk's system
// calls: at most ahead loads per level of the walk run at once.
const ahead = 4

// subtree is a folder's tree being loaded.
type subtree struct {
	done chan struct{}
	tree *snapshot.Tree
	err  error
}

// load starts loading tree id; its result is ready when done is closed.
func (r *repair) load(id blob.ID) *subtree {
	s := &subtree{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.tree, s.err = r.src.LoadTree(r.ctx, id)
	}()
	return s
}

// validNode reports whether nodes[i] has a name that is one path element
// and greater than the name before it (a repeated name could otherwise
// act twice on one entry), and a subtree if it is a folder.
func validNode(nodes []snapshot.Node, i int) bool {
	name := string(nodes[i].Name)
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return false
	}
	if nodes[i].Kind == snapshot.Dir && nodes[i].Subtree == nil {
		return false
	}
	return i == 0 || nodes[i-1].Name < nodes[i].Name
}

// entry makes the live entry name in d, whose lstat is st (nil if there is
// none), what node n (nil if the snapshot has none) says; sub, if not nil,
// is n's subtree being loaded. It returns only ctx's error.
func (r *repair) entry(d *dir, name string, n *snapshot.Node, st *unix.Stat_t, sub *subtree) error {
	switch {
	case n == nil:
		if st != nil {
			r.quarantine(d, name, st, DoQuarantine, NotInSnapshot)
		}
	case n.Kind == snapshot.Dir:
		return r.dirEntry(d, name, n, st, sub)
	case n.Kind == snapshot.File:
		r.file(d, name, n, st)
	default:
		r.special(d, name, n, st)
	}
	return r.ctx.Err()
}

// quarantine moves the live entry name in d, whose lstat is st, into the
// quarantine; do is DoQuarantine (the action is listed) or DoReplace (the
// caller lists it). It reports whether the entry is gone.
func (r *repair) quarantine(d *dir, name string, st *unix.Stat_t, do, reason string) bool {
	p := d.child(name)
	d.changed = true
	files, bytes := measure(d.fd, name, st)
	if !r.o.DryRun {
		qfd, err := r.qdir(d)
		if err == nil {
			_, err = move(d.fd, name, qfd)
		}
		if err != nil {
			r.report(p, err)
			return false
		}
	}
	r.rep.Quarantined++
	r.rep.QuarantinedFiles += files
	r.rep.QuarantinedBytes += bytes
	if do == DoQuarantine {
		r.act(p, do, reason)
	}
	return true
}

// measure counts the regular files and their bytes in the entry name in
// dirfd, whose lstat is st, and below it. What cannot be read is not
// counted.
func measure(dirfd int, name string, st *unix.Stat_t) (int, int64) {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return 1, st.Size
	case unix.S_IFDIR:
	default:
		return 0, 0
	}
	f, err := openDir(dirfd, name)
	if err != nil {
		return 0, 0
	}
	defer func() { _ = f.Close() }() // a folder, read only
	fd := int(f.Fd())
	names, _ := readNames(fd, name)
	files, bytes := 0, int64(0)
	for _, n := range names {
		if st, err := lstatAt(fd, n); err == nil && st != nil {
			f, b := measure(fd, n, st)
			files += f
			bytes += b
		}
	}
	return files, bytes
}

// replace moves the live entry name in d away, for reason, and reports
// whether it is gone; the action is listed.
func (r *repair) replace(d *dir, name string, st *unix.Stat_t, reason string) bool {
	if st == nil {
		r.act(d.child(name), DoRestore, reason)
		return true
	}
	if !r.quarantine(d, name, st, DoReplace, reason) {
		return false
	}
	r.act(d.child(name), DoReplace, reason)
	return true
}

// file repairs a regular file.
func (r *repair) file(d *dir, name string, n *snapshot.Node, st *unix.Stat_t) {
	key := [2]uint64{n.Device, n.Inode}
	grouped := n.Links > 1
	if grouped {
		if l, ok := r.links[key]; ok {
			r.linkTo(d, name, st, l)
			return
		}
	}
	keep := func(st *unix.Stat_t) {
		if grouped {
			r.links[key] = link{d.path, name, st.Dev, st.Ino}
		}
	}
	reason := Missing
	if st != nil {
		var f *os.File
		var err error
		reason, f, err = r.compare(d, name, n, st)
		if err != nil {
			r.report(d.child(name), err)
			return
		}
		switch reason {
		case "":
			r.unchanged(n)
			keep(st)
			return
		case MetadataDiffers:
			r.fixFile(f, n)
			keep(st)
			return
		}
	}
	if !r.restorable(d.child(name), n) || !r.replace(d, name, st, reason) {
		return
	}
	r.rep.FilesRestored++
	r.rep.BytesRestored += int64(n.Size)
	var made unix.Stat_t // zero in a dry run: no live name is a link to it
	if !r.o.DryRun && !r.restoreFile(d, name, n, &made) {
		return
	}
	keep(&made)
}

func (r *repair) unchanged(n *snapshot.Node) {
	r.rep.Unchanged++
	if n.Kind == snapshot.File {
		r.rep.UnchangedBytes += int64(n.Size)
		r.prog.Files.Add(1)
		r.prog.Bytes.Add(int64(n.Size))
	}
}

// compare tells how the live regular file name in d, whose lstat is st,
// differs from n: "" if it does not, MetadataDiffers with the file open
// for the fix if only in metadata, or the reason to replace it. An error
// means it could not be compared (it is then left alone).
func (r *repair) compare(d *dir, name string, n *snapshot.Node, st *unix.Stat_t) (string, *os.File, error) {
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return KindDiffers, nil, nil
	case st.Size != int64(n.Size):
		return ContentDiffers, nil, nil
	case n.CTime != nil && st.Ctim == timespec(*n.CTime) && st.Mtim == timespec(n.MTime) && st.Ino == n.Inode && st.Dev == n.Device:
		return "", nil, nil // untouched since the backup
	}
	fd, err := openRead(d.fd, name)
	if err != nil {
		return "", nil, os.NewSyscallError("open", err)
	}
	// f is read only: the closes below cannot lose data.
	f := os.NewFile(uintptr(fd), d.child(name))
	var now unix.Stat_t
	if err := unix.Fstat(fd, &now); err != nil {
		_ = f.Close()
		return "", nil, os.NewSyscallError("fstat", err)
	}
	if now.Ino != st.Ino || now.Dev != st.Dev || now.Mode&unix.S_IFMT != unix.S_IFREG || now.Size != st.Size {
		_ = f.Close()
		return ContentDiffers, nil, nil // changed since the lstat
	}
	r.rep.ContentChecked++
	same, err := r.sameContent(f, n, r.ids, &r.buf)
	if err != nil || !same {
		_ = f.Close()
		return ContentDiffers, nil, err
	}
	live, err := fdXattrs(fd)
	if err != nil {
		_ = f.Close()
		return "", nil, err
	}
	if metaSame(&now, live, n, r.isRoot) {
		_ = f.Close()
		return "", nil, nil
	}
	return MetadataDiffers, f, nil
}

// fixFile sets n's metadata on the live file f, whose content is n's, and
// closes it.
func (r *repair) fixFile(f *os.File, n *snapshot.Node) {
	defer func() { _ = f.Close() }() // opened read only; the metadata calls report their own errors
	r.rep.MetadataRepaired++
	r.act(f.Name(), DoMetadata, MetadataDiffers)
	r.prog.Files.Add(1)
	r.prog.Bytes.Add(int64(n.Size))
	if r.o.DryRun {
		return
	}
	if err := setMeta(f, n); err != nil {
		r.report(f.Name(), err)
	}
	var st unix.Stat_t
	err := unix.Fstat(int(f.Fd()), &st)
	if err == nil {
		err = r.metaCheck(&st, n)
	}
	r.verified(f.Name(), err)
}

// metaCheck compares what fstat or lstat says of an entry just written or
// fixed with n: kind, size of a file, mode, owner (as root) and mtime.
func (r *repair) metaCheck(st *unix.Stat_t, n *snapshot.Node) error {
	switch {
	case kindOf(st.Mode) != n.Kind:
		return fmt.Errorf("is a %s", kindOf(st.Mode))
	case n.Kind == snapshot.File && st.Size != int64(n.Size):
		return fmt.Errorf("%d bytes, want %d", st.Size, n.Size)
	case n.Kind != snapshot.Symlink && st.Mode&0o7777 != n.Mode:
		return fmt.Errorf("mode %#o, want %#o", st.Mode&0o7777, n.Mode)
	case r.isRoot && (st.Uid != n.UID || st.Gid != n.GID):
		return fmt.Errorf("owner %d:%d, want %d:%d", st.Uid, st.Gid, n.UID, n.GID)
	case st.Mtim != timespec(n.MTime):
		return fmt.Errorf("mtime %d.%09d, want %d.%09d", st.Mtim.Sec, st.Mtim.Nsec, n.MTime.Sec, n.MTime.Nsec)
	}
	return nil
}

// restorable reports whether every content blob of n is indexed, so that
// the file can be written; if not, it reports why.
func (r *repair) restorable(p string, n *snapshot.Node) bool {
	for _, id := range n.Content {
		if _, ok := r.src.Lookup(blob.Handle{Type: blob.Data, ID: id}); !ok {
			r.report(p, fmt.Errorf("cannot be restored, left as it is: content blob %s: %w", id.Short(), blob.ErrNotFound))
			return false
		}
	}
	return true
}

// create makes the entry name in d with mk; if something took the name
// since it was moved away (or checked missing), that is moved into the
// quarantine and mk tried once more.
func (r *repair) create(d *dir, name string, mk func() error) error {
	d.changed = true
	err := mk()
	if !errors.Is(err, unix.EEXIST) {
		return err
	}
	st, serr := lstatAt(d.fd, name)
	if serr != nil || st == nil || !r.quarantine(d, name, st, DoQuarantine, NotInSnapshot) {
		return err
	}
	return mk()
}

// restoreFile creates the file name in d at n's size, hands it to the
// content pipeline, and fills made with its lstat; the file is verified
// once written. It reports whether the file was made.
func (r *repair) restoreFile(d *dir, name string, n *snapshot.Node, made *unix.Stat_t) bool {
	p := d.child(name)
	var fd int
	err := r.create(d, name, func() (err error) {
		fd, err = openAt(d.fd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		return err
	})
	if err != nil {
		r.report(p, os.NewSyscallError("create", err))
		return false
	}
	f := os.NewFile(uintptr(fd), p)
	if err := unix.Ftruncate(fd, int64(n.Size)); err != nil {
		_ = f.Close() // nothing written; the truncate error is the one to report
		r.report(p, os.NewSyscallError("truncate", err))
		return false
	}
	if err := unix.Fstat(fd, made); err != nil {
		_ = f.Close() // nothing written; the fstat error is the one to report
		r.report(p, os.NewSyscallError("fstat", err))
		return false
	}
	dev, ino := made.Dev, made.Ino
	d.refs.Add(1)
	err = r.w.Add(r.ctx, p, *n, f, func(ok bool) {
		if ok {
			r.verifyFile(d, name, n, dev, ino)
		}
		d.release()
	})
	return err == nil
}

// linkTo makes the live entry name in d, whose lstat is st, a hard link to
// the file l.
func (r *repair) linkTo(d *dir, name string, st *unix.Stat_t, l link) {
	if st != nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Dev == l.dev && st.Ino == l.ino && l.ino != 0 {
		r.rep.Unchanged++
		return
	}
	reason := LinkDiffers
	if st == nil {
		reason = Missing
	}
	if !r.replace(d, name, st, reason) {
		return
	}
	r.rep.LinksRestored++
	if r.o.DryRun {
		return
	}
	p := d.child(name)
	src := d.fd
	if l.dir != d.path {
		fd, err := openNoFollow(l.dir, false)
		if err != nil {
			r.report(p, fmt.Errorf("hard link to %s: %w", l.dir, err))
			return
		}
		defer unix.Close(fd)
		src = fd
	}
	if err := r.create(d, name, func() error { return unix.Linkat(src, l.name, d.fd, name, 0) }); err != nil {
		r.report(p, os.NewSyscallError("link", err))
		return
	}
	now, err := lstatAt(d.fd, name)
	if err == nil && (now == nil || now.Dev != l.dev || now.Ino != l.ino) {
		err = fmt.Errorf("not a link to %s", l.name)
	}
	r.verified(p, err)
}

// special repairs a symlink, FIFO, socket or device.
func (r *repair) special(d *dir, name string, n *snapshot.Node, st *unix.Stat_t) {
	p := d.child(name)
	reason := Missing
	if st != nil {
		reason = r.compareSpecial(d, name, n, st)
		switch reason {
		case "":
			r.unchanged(n)
			return
		case MetadataDiffers:
			r.rep.MetadataRepaired++
			r.act(p, DoMetadata, reason)
			if !r.o.DryRun {
				r.setSpecial(d, name, n)
			}
			return
		}
	}
	if !r.replace(d, name, st, reason) {
		return
	}
	r.rep.OtherRestored++
	if r.o.DryRun {
		return
	}
	mode := modeOf(n.Kind) | 0o600
	err := r.create(d, name, func() error {
		if n.Kind == snapshot.Symlink {
			return unix.Symlinkat(string(n.Target), d.fd, name)
		}
		return unix.Mknodat(d.fd, name, mode, int(n.Rdev))
	})
	if err != nil {
		r.report(p, os.NewSyscallError("create", err))
		return
	}
	r.setSpecial(d, name, n)
}

// compareSpecial tells how the live entry differs from the symlink,
// FIFO, socket or device n: "", MetadataDiffers, or the reason to replace
// it.
func (r *repair) compareSpecial(d *dir, name string, n *snapshot.Node, st *unix.Stat_t) string {
	if kindOf(st.Mode) != n.Kind {
		return KindDiffers
	}
	switch n.Kind {
	case snapshot.Symlink:
		if t, err := readlinkAt(d.fd, name); err != nil || t != string(n.Target) {
			return TargetDiffers
		}
	case snapshot.Dev, snapshot.CharDev:
		if st.Rdev != n.Rdev {
			return TargetDiffers
		}
	}
	live, err := specialXattrs(d.fd, name, n.Kind)
	if err != nil {
		return KindDiffers // it changed since the lstat
	}
	if metaSame(st, live, n, r.isRoot) {
		return ""
	}
	return MetadataDiffers
}

// setSpecial sets n's metadata on the special entry name in d and checks
// it.
func (r *repair) setSpecial(d *dir, name string, n *snapshot.Node) {
	p := d.child(name)
	if err := setSpecialMeta(d.fd, name, n, r.isRoot); err != nil {
		r.report(p, err)
	}
	st, err := lstatAt(d.fd, name)
	if err == nil && st == nil {
		err = unix.ENOENT
	}
	if err == nil {
		err = r.metaCheck(st, n)
	}
	r.verified(p, err)
}

// dirEntry repairs folder n, whose live entry is st, and everything below;
// sub, if not nil, is its tree being loaded.
func (r *repair) dirEntry(d *dir, name string, n *snapshot.Node, st *unix.Stat_t, sub *subtree) error {
	p := d.child(name)
	made := st == nil || st.Mode&unix.S_IFMT != unix.S_IFDIR
	if sub == nil {
		sub = r.load(*n.Subtree)
	}
	<-sub.done
	tree, err := sub.tree, sub.err
	if err != nil {
		if r.ctx.Err() != nil {
			return r.ctx.Err()
		}
		r.report(p, err)
		if !made {
			return nil // what belongs in it is unknown: leave it alone
		}
		tree = &snapshot.Tree{}
	}
	var f *os.File
	if made {
		reason := Missing
		if st != nil {
			reason = KindDiffers
		}
		if !r.replace(d, name, st, reason) {
			return nil
		}
		r.rep.DirsCreated++
		if !r.o.DryRun {
			if err := r.create(d, name, func() error { return unix.Mkdirat(d.fd, name, 0o700) }); err != nil {
				r.report(p, os.NewSyscallError("mkdir", err))
				return nil
			}
		}
	}
	if d.fd >= 0 && (!made || !r.o.DryRun) {
		if f, err = openDir(d.fd, name); err != nil {
			r.report(p, err)
			return nil
		}
	}
	c := newDir(f, p, d)
	defer c.leave()
	if !made && c.fd >= 0 {
		var now unix.Stat_t
		if err := unix.Fstat(c.fd, &now); err != nil {
			r.report(p, os.NewSyscallError("fstat", err))
			return nil
		}
		live, err := fdXattrs(c.fd)
		c.metaOK = err == nil && metaSame(&now, live, n, r.isRoot)
		if !r.o.DryRun && !r.isRoot && now.Mode&0o700 != 0o700 {
			// Entries are moved out and made in it; its own mode is set last.
			// If it fails, the moves that need it fail and are reported.
			_ = unix.Fchmod(c.fd, now.Mode&0o7777|0o700)
		}
	}
	if err := r.walk(c, tree, made); err != nil {
		return err
	}
	r.dirMeta(c, n, made)
	return nil
}

// dirMeta gives folder d, whose entries are repaired, n's metadata. made
// says the repair made it.
func (r *repair) dirMeta(d *dir, n *snapshot.Node, made bool) {
	if d.fd < 0 {
		return // a dry run's folder
	}
	switch {
	case made:
	case d.metaOK && !d.changed:
		r.rep.Unchanged++
		return
	case d.metaOK:
		// Only this repair changed it: its times are put back, uncounted.
	default:
		r.rep.MetadataRepaired++
		r.act(d.path, DoMetadata, MetadataDiffers)
	}
	if r.o.DryRun {
		return
	}
	if err := setMeta(d.f, n); err != nil {
		r.report(d.path, err)
	}
	var st unix.Stat_t
	err := unix.Fstat(d.fd, &st)
	if err == nil {
		err = r.metaCheck(&st, n)
	}
	r.verified(d.path, err)
}

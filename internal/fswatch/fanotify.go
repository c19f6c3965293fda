package fswatch

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// fanMask is what the filesystem marks ask for.
const fanMask = unix.FAN_MODIFY | unix.FAN_CLOSE_WRITE | unix.FAN_CREATE | unix.FAN_DELETE |
	unix.FAN_RENAME | unix.FAN_ONDIR

// maxDirCache bounds the directory handle -> path cache.
const maxDirCache = 1 << 16

// fanotify is the fanotify Source.
type fanotify struct {
	f     *os.File
	roots []string
	guard []string // Options.Guard
	exec  string   // Options.Exec
	// execs are the inodes (device, inode) of s.exec marked for
	// FAN_OPEN_EXEC; execChecked is when s.exec was last looked at.
	execs       map[[2]uint64]bool
	execChecked time.Time
	log         *slog.Logger
	mounts      map[[8]byte]int   // fsid -> descriptor for open_by_handle_at
	dirs        map[string]string // fsid+handle -> folder path
	devFS       [8]byte           // fsid of /dev
	marked      map[string]bool   // block devices marked
	allDevs     bool              // mark block devices created later
	loops       *loops            // which loop devices count
	buf         []byte
	key         []byte // path's buffer for folder cache keys
	loop        loop
}

func openFanotify(roots []string, opts Options, l loop) (_ *fanotify, err error) {
	l.kind = "fanotify"
	log := l.log
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK|unix.FAN_REPORT_DFID_NAME|unix.FAN_UNLIMITED_QUEUE,
		unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("%w: fanotify_init: %v (needs Linux 5.17+ and CAP_SYS_ADMIN)", ErrUnsupported, err)
	}
	s := &fanotify{
		loop: l, f: os.NewFile(uintptr(fd), "fanotify"), roots: roots, guard: opts.Guard, exec: opts.Exec, execs: map[[2]uint64]bool{}, log: log,
		mounts: map[[8]byte]int{}, dirs: map[string]string{}, marked: map[string]bool{}, loops: newLoops(roots),
		buf: make([]byte, 256<<10),
	}
	s.loop.mute = s.mute
	defer func() {
		if err != nil {
			_ = s.Close() // err is the failure to report
		}
	}()
	for _, r := range roots {
		id, err := s.markFS(fd, r, fanMask)
		if err != nil {
			return nil, err
		}
		s.walkDirs(r, id)
	}
	// The file systems mounted below a protected folder are protected
	// too: a program moving files onto one writes there what it deletes
	// here. One that cannot be marked (no file handles) is logged.
	for _, m := range submounts(roots) {
		id, err := s.markFS(fd, m, fanMask)
		if err != nil {
			log.Warn("a file system mounted in a protected folder is not watched", "mount", m, "err", err)
			continue
		}
		s.walkDirs(m, id)
	}
	// What cannot be guarded is logged, not fatal: the protected folders
	// are watched all the same.
	s.guard = nil
	for _, g := range opts.Guard {
		id, err := s.markFS(fd, g, fanMask)
		if err != nil {
			log.Warn("not guarded", "path", g, "err", err)
			continue
		}
		s.guard = append(s.guard, g)
		s.walkDirs(g, id)
	}
	if s.exec != "" {
		_, err := s.markFS(fd, s.exec, 0) // only the descriptor for open_by_handle_at
		if err == nil {
			err = s.markExec()
		}
		if err != nil {
			log.Warn("starts of Kalaja's executable are not seen", "err", err)
			s.exec = ""
		}
	}
	s.markDevices(fd, opts.Devices)
	return s, nil
}

// markFS adds mask to the filesystem mark of p's file system (p a folder
// or a file), and keeps a descriptor of its folder for open_by_handle_at.
func (s *fanotify) markFS(fd int, p string, mask uint64) ([8]byte, error) {
	id, err := fsid(p)
	if err != nil {
		return id, err
	}
	if _, ok := s.mounts[id]; !ok {
		dir := p
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			dir = filepath.Dir(p)
		}
		mfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return id, fmt.Errorf("fswatch: open %s: %w", dir, err)
		}
		s.mounts[id] = mfd
	}
	if mask == 0 {
		return id, nil
	}
	if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, mask, unix.AT_FDCWD, p); err != nil {
		return id, fmt.Errorf("%w: fanotify filesystem mark on %s: %v", ErrUnsupported, p, err)
	}
	return id, nil
}

// markExec marks the file now at s.exec for FAN_OPEN_EXEC, unless it is
// marked already: at start, and again when an upgrade has put a new file
// there (the old one stays marked while processes run it).
func (s *fanotify) markExec() error {
	s.execChecked = time.Now()
	var st unix.Stat_t
	if err := unix.Stat(s.exec, &st); err != nil {
		return fmt.Errorf("fswatch: stat %s: %w", s.exec, err)
	}
	key := [2]uint64{st.Dev, st.Ino}
	if s.execs[key] {
		return nil
	}
	if err := unix.FanotifyMark(int(s.f.Fd()), unix.FAN_MARK_ADD, unix.FAN_OPEN_EXEC, unix.AT_FDCWD, s.exec); err != nil {
		return fmt.Errorf("%w: fanotify exec mark on %s: %v", ErrUnsupported, s.exec, err)
	}
	s.execs[key] = true
	return nil
}

// submounts returns the mount points strictly below roots, from
// /proc/self/mountinfo (none if it cannot be read).
func submounts(roots []string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		for _, r := range roots {
			if mp != r && Under(mp, r) && !slices.Contains(out, mp) {
				out = append(out, mp)
			}
		}
	}
	return out
}

// unescapeMount undoes the octal escapes (\040 for a space) of a path
// in /proc/self/mountinfo.
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func fsid(p string) ([8]byte, error) {
	var st unix.Statfs_t
	var id [8]byte
	if err := unix.Statfs(p, &st); err != nil {
		return id, fmt.Errorf("fswatch: statfs %s: %w", p, err)
	}
	for i, v := range st.Fsid.Val {
		for j := range 4 {
			id[i*4+j] = byte(uint32(v) >> (8 * j))
		}
	}
	return id, nil
}

// walkDirs fills the folder cache for root, so files in folders removed
// before their events are read still resolve.
func (s *fanotify) walkDirs(root string, id [8]byte) {
	// The callback fails on nothing (the cache is best effort), so neither
	// does the walk.
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if len(s.dirs) >= maxDirCache/2 {
			return filepath.SkipAll
		}
		h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, p, 0)
		if err == nil {
			s.dirs[handleKey(id, h.Type(), h.Bytes())] = p
		}
		return nil
	})
}

// markDevices marks the block devices for writes: the given ones, or all
// in /dev and, for those created later, /dev itself. Failures are logged:
// raw-disk detection is then off.
func (s *fanotify) markDevices(fd int, devices []string) {
	all := devices == nil
	if all {
		devices = blockDevices()
	}
	if len(devices) == 0 {
		return
	}
	id, err := fsid("/dev")
	if err != nil {
		s.log.Warn("raw disk writes will not be seen", "err", err)
		return
	}
	s.devFS = id
	if _, ok := s.mounts[id]; !ok {
		mfd, err := unix.Open("/dev", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			s.log.Warn("raw disk writes will not be seen", "err", err)
			return
		}
		s.mounts[id] = mfd
	}
	s.allDevs = all
	if all {
		if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_ONLYDIR, unix.FAN_CREATE, unix.AT_FDCWD, "/dev"); err != nil {
			s.log.Warn("block devices created later will not be watched", "err", err)
		}
	}
	for _, d := range devices {
		s.markDevice(fd, d)
	}
}

// markDevice marks p if it is a block device.
func (s *fanotify) markDevice(fd int, p string) {
	var st unix.Stat_t
	if s.marked[p] || unix.Lstat(p, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return
	}
	if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD, unix.FAN_MODIFY, unix.AT_FDCWD, p); err != nil {
		s.log.Warn("cannot watch block device", "device", p, "err", err)
		return
	}
	s.marked[p] = true
}

// mute keeps the kernel from making Modify events of the file at p until
// unmute is called (see Throttling), with an ignore mark on its inode. The
// mark is made and removed through an O_PATH descriptor of the file, held
// in between, so that unmute finds the same inode if the file was moved
// meanwhile. fanotify_mark takes no O_PATH descriptor but follows its
// /proc/self/fd link.
func (s *fanotify) mute(p string) (unmute func()) {
	fd, err := unix.Open(p, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	self := "/proc/self/fd/" + strconv.Itoa(fd)
	group := int(s.f.Fd())
	const mask = unix.FAN_MODIFY
	if err := unix.FanotifyMark(group, unix.FAN_MARK_ADD|unix.FAN_MARK_IGNORED_MASK|unix.FAN_MARK_IGNORED_SURV_MODIFY, mask, unix.AT_FDCWD, self); err != nil {
		unix.Close(fd)
		return nil
	}
	return func() {
		// Fails only when the file was deleted, which took the mark.
		_ = unix.FanotifyMark(group, unix.FAN_MARK_REMOVE|unix.FAN_MARK_IGNORED_MASK, mask, unix.AT_FDCWD, self)
		unix.Close(fd)
	}
}

// Execs reports whether Exec events of Options.Exec are reported.
func (s *fanotify) Execs() bool { return s.exec != "" }

func (s *fanotify) Name() string { return "fanotify" }
func (s *fanotify) PIDs() bool   { return true }

func (s *fanotify) Close() error {
	for _, fd := range s.mounts {
		unix.Close(fd)
	}
	clear(s.mounts)
	return s.f.Close()
}

func (s *fanotify) Run(ctx context.Context, handle Handler) error {
	if s.exec != "" {
		next := handle
		handle = func(batch []Event) bool {
			if time.Since(s.execChecked) >= Idle {
				if err := s.markExec(); err != nil {
					s.log.Warn("a new Kalaja executable is not watched: its processes may be taken for others", "err", err)
				}
			}
			return next(batch)
		}
	}
	return s.loop.run(ctx, s.f, s.buf, handle, func(b []byte, batch []Event) []Event {
		evs, err := parseFanotify(b)
		if err != nil {
			s.log.Warn("bad fanotify event", "err", err)
		}
		for _, ev := range evs {
			batch = s.convert(ev, batch)
		}
		return batch
	})
}

// convert appends the Events one kernel event stands for.
func (s *fanotify) convert(ev fanEvent, out []Event) []Event {
	if ev.fd >= 0 {
		unix.Close(int(ev.fd))
	}
	if ev.mask&unix.FAN_Q_OVERFLOW != 0 {
		return append(out, Event{Op: Overflow})
	}
	pid := int(ev.pid)
	dir := ev.mask&unix.FAN_ONDIR != 0
	if ev.mask&unix.FAN_OPEN_EXEC != 0 {
		out = s.executed(ev, pid, out)
		if ev.mask &^= unix.FAN_OPEN_EXEC; ev.mask&^unix.FAN_ONDIR == 0 {
			return out
		}
	}
	if ev.mask&unix.FAN_RENAME != 0 {
		var from, to string
		for _, r := range ev.recs {
			switch r.typ {
			case infoOldDFIDName:
				from = s.path(r)
			case infoNewDFIDName:
				to = s.path(r)
			}
		}
		if dir && from != "" {
			s.forget(from)
		}
		if from != "" && to != "" && (watched(from, dir, s.roots, s.guard) || watched(to, dir, s.roots, s.guard)) {
			out = append(out, Event{Op: Rename, Path: to, OldPath: from, Dir: dir, PID: pid})
		}
		return out
	}
	var p string
	for _, r := range ev.recs {
		if r.typ == infoDFIDName {
			p = s.path(r)
			if r.fsid == s.devFS && p != "" {
				return s.device(ev, p, pid, out)
			}
			break
		}
	}
	if p == "" || !watched(p, dir, s.roots, s.guard) {
		return out
	}
	// The kernel merges events on one name by one process, losing their
	// order: a delete and a create merged are a replacement if the name
	// exists now (delete first), else a temporary file (delete last).
	del := ev.mask&unix.FAN_DELETE != 0
	delFirst := false
	if del && ev.mask&unix.FAN_CREATE != 0 {
		_, err := os.Lstat(p)
		delFirst = err == nil
	}
	if del && delFirst {
		out = s.deleted(out, p, dir, pid)
	}
	if ev.mask&unix.FAN_CREATE != 0 {
		out = append(out, Event{Op: Create, Path: p, Dir: dir, PID: pid})
	}
	switch {
	case ev.mask&unix.FAN_CLOSE_WRITE != 0:
		out = append(out, Event{Op: Write, Path: p, PID: pid})
	case ev.mask&unix.FAN_MODIFY != 0:
		out = append(out, Event{Op: Modify, Path: p, PID: pid})
	}
	if del && !delFirst {
		out = s.deleted(out, p, dir, pid)
	}
	return out
}

// executed appends the Exec event of s.exec executed (the only file
// marked for it).
func (s *fanotify) executed(ev fanEvent, pid int, out []Event) []Event {
	p := s.exec
	for _, r := range ev.recs {
		if r.typ == infoDFIDName {
			if q := s.path(r); q != "" {
				p = q
			}
			break
		}
	}
	return append(out, Event{Op: Exec, Path: p, PID: pid})
}

// deleted appends a Delete, forgetting a removed folder's cached path.
func (s *fanotify) deleted(out []Event, p string, dir bool, pid int) []Event {
	if dir {
		s.forget(p)
	}
	return append(out, Event{Op: Delete, Path: p, Dir: dir, PID: pid})
}

// device handles an event in /dev: a new entry to mark, or a raw write.
func (s *fanotify) device(ev fanEvent, p string, pid int, out []Event) []Event {
	if ev.mask&unix.FAN_CREATE != 0 && s.allDevs {
		s.markDevice(int(s.f.Fd()), p)
	}
	if ev.mask&unix.FAN_MODIFY != 0 && s.marked[p] && s.loops.relevant(p) {
		out = append(out, Event{Op: RawWrite, Path: p, PID: pid})
	}
	return out
}

func handleKey(id [8]byte, typ int32, h []byte) string {
	return string(appendHandleKey(nil, id, typ, h))
}

// appendHandleKey appends the folder cache's key of a handle to b.
func appendHandleKey(b []byte, id [8]byte, typ int32, h []byte) []byte {
	b = append(b, id[:]...)
	b = strconv.AppendInt(b, int64(typ), 10)
	b = append(b, ':')
	return append(b, h...)
}

// path resolves a directory record to the path of the entry it names, or
// "" when the folder is gone and was not cached.
func (s *fanotify) path(r fanRecord) string {
	// The key is built in a buffer kept for it, and looked up without
	// allocating: this runs for every event on the file system.
	s.key = appendHandleKey(s.key[:0], r.fsid, r.handleType, r.handle)
	dir, ok := s.dirs[string(s.key)]
	if !ok {
		mfd, ok := s.mounts[r.fsid]
		if !ok {
			return ""
		}
		fd, err := unix.OpenByHandleAt(mfd, unix.NewFileHandle(r.handleType, r.handle), unix.O_PATH|unix.O_CLOEXEC)
		if err != nil {
			return ""
		}
		dir, err = os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
		unix.Close(fd)
		if err != nil || strings.HasSuffix(dir, " (deleted)") {
			return ""
		}
		if len(s.dirs) >= maxDirCache {
			clear(s.dirs)
		}
		s.dirs[string(s.key)] = dir
	}
	if r.name == "" || r.name == "." {
		return dir
	}
	if dir == "/" {
		return dir + r.name
	}
	return dir + "/" + r.name // a clean folder, and a name the kernel gave: no Clean needed
}

// forget drops cached folders at or below p (renamed or removed).
func (s *fanotify) forget(p string) {
	for k, d := range s.dirs {
		if Under(d, p) {
			delete(s.dirs, k)
		}
	}
}

var _ Source = (*fanotify)(nil)

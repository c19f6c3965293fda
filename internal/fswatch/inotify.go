package fswatch

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

const inoMask = unix.IN_CREATE | unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_DELETE |
	unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DONT_FOLLOW | unix.IN_EXCL_UNLINK | unix.IN_ONLYDIR

// inotify is the inotify Source: one watch per folder.
type inotify struct {
	f     *os.File
	fd    int
	roots []string
	log   *slog.Logger
	dirs  map[int32]string // watch -> folder
	devs  map[int32]string // watch -> block device
	moves map[uint32]Event // IN_MOVED_FROM waiting for its IN_MOVED_TO, by cookie
	loops *loops
	buf   []byte
	loop  loop
}

func openInotify(roots, devices []string, l loop) (_ *inotify, err error) {
	l.kind = "inotify"
	log := l.log
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fswatch: inotify_init1: %w", err)
	}
	s := &inotify{
		loop: l, f: os.NewFile(uintptr(fd), "inotify"), fd: fd, roots: roots, log: log,
		dirs: map[int32]string{}, devs: map[int32]string{}, moves: map[uint32]Event{}, loops: newLoops(roots),
		buf: make([]byte, 256<<10),
	}
	defer func() {
		if err != nil {
			_ = s.f.Close() // err is the failure to report
		}
	}()
	for _, r := range roots {
		if err := s.addTree(r, nil); err != nil {
			return nil, err
		}
	}
	all := devices == nil
	if all {
		devices = blockDevices()
	}
	for _, p := range devices {
		if wd, err := unix.InotifyAddWatch(fd, p, unix.IN_MODIFY); err == nil {
			s.devs[int32(wd)] = p
		}
	}
	if len(s.devs) == 0 && len(devices) > 0 {
		log.Warn("no block device can be watched (no read access): raw disk writes will not be seen")
	}
	return s, nil
}

// addTree watches root and every folder below it. With found set, files
// already inside (made before the watch was in place) are reported as
// Create events, and no error is returned: what cannot be walked is
// skipped, a folder that cannot be watched is logged. Without found, a
// root that cannot be walked or watched is an error.
func (s *inotify) addTree(root string, found *[]Event) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root && found == nil {
				return fmt.Errorf("fswatch: %w", err)
			}
			return nil
		}
		if !d.IsDir() {
			if found != nil {
				*found = append(*found, Event{Op: Create, Path: p}, Event{Op: Write, Path: p})
			}
			return nil
		}
		wd, err := unix.InotifyAddWatch(s.fd, p, inoMask)
		if err != nil {
			if p == root && found == nil {
				return fmt.Errorf("fswatch: watch %s: %w (see /proc/sys/fs/inotify/max_user_watches)", p, err)
			}
			s.log.Warn("cannot watch folder", "path", p, "err", err)
			return nil
		}
		s.dirs[int32(wd)] = p
		return nil
	})
}

func (s *inotify) Name() string { return "inotify" }
func (s *inotify) PIDs() bool   { return false }
func (s *inotify) Close() error { return s.f.Close() }

func (s *inotify) Run(ctx context.Context, handle Handler) error {
	return s.loop.run(ctx, s.f, s.buf, handle, func(b []byte, batch []Event) []Event {
		evs, err := parseInotify(b)
		if err != nil {
			s.log.Warn("bad inotify event", "err", err)
		}
		for _, ev := range evs {
			batch = s.convert(ev, batch)
		}
		// A move whose other half did not come in the same read left or
		// entered the protected folders: a deletion.
		for c, m := range s.moves {
			batch = append(batch, Event{Op: Delete, Path: m.OldPath, Dir: m.Dir})
			delete(s.moves, c)
		}
		return batch
	})
}

// convert appends the Events one inotify event stands for.
func (s *inotify) convert(ev inoEvent, out []Event) []Event {
	if ev.mask&unix.IN_Q_OVERFLOW != 0 {
		return append(out, Event{Op: Overflow})
	}
	if dev, ok := s.devs[ev.wd]; ok {
		if ev.mask&unix.IN_MODIFY != 0 && s.loops.relevant(dev) {
			out = append(out, Event{Op: RawWrite, Path: dev})
		}
		return out
	}
	dir, ok := s.dirs[ev.wd]
	if !ok {
		return out
	}
	if ev.mask&unix.IN_IGNORED != 0 {
		delete(s.dirs, ev.wd)
		return out
	}
	if ev.name == "" {
		return out
	}
	p := filepath.Join(dir, ev.name)
	isDir := ev.mask&unix.IN_ISDIR != 0
	switch {
	case ev.mask&unix.IN_CREATE != 0:
		out = append(out, Event{Op: Create, Path: p, Dir: isDir})
		if isDir {
			_ = s.addTree(p, &out) // with found set it returns no error
		}
	case ev.mask&unix.IN_CLOSE_WRITE != 0:
		out = append(out, Event{Op: Write, Path: p})
	case ev.mask&unix.IN_MODIFY != 0:
		out = append(out, Event{Op: Modify, Path: p})
	case ev.mask&unix.IN_DELETE != 0:
		out = append(out, Event{Op: Delete, Path: p, Dir: isDir})
	case ev.mask&unix.IN_MOVED_FROM != 0:
		s.moves[ev.cookie] = Event{Op: Rename, OldPath: p, Dir: isDir}
	case ev.mask&unix.IN_MOVED_TO != 0:
		m, ok := s.moves[ev.cookie]
		delete(s.moves, ev.cookie)
		if !ok {
			out = append(out, Event{Op: Create, Path: p, Dir: isDir})
			if isDir {
				_ = s.addTree(p, &out) // with found set it returns no error
			} else {
				out = append(out, Event{Op: Write, Path: p})
			}
			break
		}
		m.Path = p
		out = append(out, m)
		if isDir {
			s.moveWatches(m.OldPath, p)
		}
	}
	return out
}

// moveWatches renames the folders of the watches at or below from.
func (s *inotify) moveWatches(from, to string) {
	for wd, d := range s.dirs {
		if Under(d, from) {
			s.dirs[wd] = to + d[len(from):]
		}
	}
}

var _ Source = (*inotify)(nil)

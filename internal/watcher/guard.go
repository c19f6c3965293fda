package watcher

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/detect"
	"github.com/kalaja/kalaja/internal/fswatch"
)

// guard keeps watch over the files Kalaja keeps on the host
// (Config.Guard): any write, rename or deletion there by a process that
// does not run Kalaja's own executable is an alert (detect.BackupTamper).
// Kalaja's own processes are those whose program is this process's
// executable: the same inode, or whatever is now at the path it was
// started from (an upgrade replaces the file). A process is Kalaja's for
// an event if it was seen starting that executable before the event
// (fanotify reports every start, in order with the file events) or was
// running it when the watcher started (a scan of /proc), and, if it is
// still alive, runs it now (a PID reused by another program is not
// Kalaja's). So a program that writes and then executes Kalaja is not
// Kalaja's for what it wrote. Used only from Run's goroutine.
type guard struct {
	paths    []string
	exe      string       // this process's executable, symbolic links resolved
	dev, ino uint64       // its inode when the watcher started
	execs    map[int]bool // PIDs seen starting Kalaja's executable
}

// maxExecs bounds the processes remembered from Exec events; past it the
// table starts again from a scan of /proc.
const maxExecs = 1 << 16

// newGuard guards paths against processes other than those running exe.
// Call it once the event source is open (see scan).
func newGuard(paths []string, exe string) (*guard, error) {
	var st unix.Stat_t
	if err := unix.Stat(exe, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: exe, Err: err}
	}
	g := &guard{paths: paths, exe: exe, dev: st.Dev, ino: st.Ino, execs: map[int]bool{}}
	g.scan()
	return g, nil
}

// executed records that process ev.PID started Kalaja's executable (an
// Exec event).
func (g *guard) executed(ev fswatch.Event) {
	if len(g.execs) >= maxExecs {
		clear(g.execs)
		g.scan() // the ones still running
	}
	g.execs[ev.PID] = true
}

// own reports whether process pid is Kalaja's for the event being
// handled (see guard).
func (g *guard) own(pid int) bool {
	if !g.execs[pid] {
		return false
	}
	var st unix.Stat_t
	if unix.Stat("/proc/"+strconv.Itoa(pid)+"/exe", &st) == nil {
		return g.isExe(&st)
	}
	return true // exited
}

// scan records the processes already running Kalaja's executable. Called
// once the event source is open: a process started later is known from
// its Exec event, one started before from this scan, even if it has
// exited by the time its events are read.
func (g *guard) scan() {
	d, err := os.Open("/proc")
	if err != nil {
		return
	}
	defer func() { _ = d.Close() }() // a folder, read only
	names, _ := d.Readdirnames(-1)
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err == nil && len(g.execs) < maxExecs && g.sameExe("/proc/"+n+"/exe") {
			g.execs[pid] = true
		}
	}
}

// sameExe reports whether the file at p (followed) is Kalaja's
// executable.
func (g *guard) sameExe(p string) bool {
	var st unix.Stat_t
	return unix.Stat(p, &st) == nil && g.isExe(&st)
}

// isExe reports whether st is Kalaja's executable: the watcher's own, or
// the one now at its path.
func (g *guard) isExe(st *unix.Stat_t) bool {
	if st.Dev == g.dev && st.Ino == g.ino {
		return true
	}
	var cur unix.Stat_t
	return unix.Stat(g.exe, &cur) == nil && cur.Dev == st.Dev && cur.Ino == st.Ino
}

// covers reports whether ev writes, renames or deletes something guarded:
// a path in a guarded folder or a guarded file, or a folder above one
// (moved or removed with what is guarded in it).
func (g *guard) covers(ev fswatch.Event) bool {
	for _, p := range []string{ev.Path, ev.OldPath} {
		if p == "" {
			continue
		}
		if fswatch.InRoots(p, g.paths) {
			return true
		}
		if ev.Dir && (ev.Op == fswatch.Rename || ev.Op == fswatch.Delete) {
			for _, gp := range g.paths {
				if fswatch.Under(gp, p) {
					return true
				}
			}
		}
	}
	return false
}

// tamperEvent is the detector's event for ev, a change to something
// guarded.
func tamperEvent(ev fswatch.Event) *detect.Event {
	de := &detect.Event{Path: ev.Path, OldPath: ev.OldPath, Dir: ev.Dir, Guarded: true}
	switch ev.Op {
	case fswatch.Create:
		de.Op = detect.Create
	case fswatch.Delete:
		de.Op = detect.Delete
	case fswatch.Rename:
		de.Op = detect.Rename
	default:
		de.Op = detect.Write
	}
	return de
}

// Package fswatch reports file events under protected folders on Linux,
// with the process that caused them where the kernel says so. Two sources:
//
//   - Fanotify (Linux 5.17+, CAP_SYS_ADMIN): a filesystem mark on each
//     protected folder's filesystem, reporting directory handles and names
//     (FAN_REPORT_DFID_NAME) for FAN_CREATE, FAN_MODIFY, FAN_CLOSE_WRITE,
//     FAN_DELETE and FAN_RENAME, with the PID of the process; events outside
//     the folders are dropped in user space. It also marks every block
//     device in /dev for FAN_MODIFY, so a process writing a raw disk is
//     seen, and /dev itself so devices created later are marked too. A
//     write to a loop device counts only when the file behind it is in a
//     protected folder.
//     Guarded paths (Options.Guard) are marked the same way, and
//     Options.Exec (an executable) for FAN_OPEN_EXEC, so every process
//     that starts it is reported.
//   - Inotify (any user): a watch on every folder under the protected
//     ones, added as folders appear; no PIDs. Block devices are watched
//     for IN_MODIFY when the user may read them.
//
// Both deliver batches of Events in kernel order to one handler goroutine,
// with at most one Modify per file per 100 ms (see Throttling).
package fswatch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Op is what happened.
type Op uint8

// The operations a Source reports.
const (
	Create   Op = iota + 1 // a file or folder (Dir) appeared
	Modify                 // a file's content or size changed (a write or truncate; the file may still be open); see Throttling
	Write                  // a file opened for writing was closed
	Delete                 // a file or folder (Dir) was removed
	Rename                 // a file or folder (Dir) moved from OldPath to Path
	RawWrite               // a block device (Path) was written to
	Overflow               // the kernel dropped events (queue full)
	Exec                   // process PID executed Options.Exec (Path), or the file an upgrade replaced it with
)

var opNames = [...]string{"", "create", "modify", "write", "delete", "rename", "raw-write", "overflow", "exec"}

// String returns the operation's name.
func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", o)
}

// Event is one file event. PID is 0 when the source does not know it.
type Event struct {
	Op      Op
	Path    string
	OldPath string // Rename: the former path
	Dir     bool
	PID     int
}

// Handler takes a batch of events. It returns true to have the next batch
// read without the pause between reads (see gap): while it is scoring a
// suspect, every millisecond counts more than the cost of reading early.
type Handler func(batch []Event) (hurry bool)

// Source delivers events under the protected folders. Its marks or watches
// are in place when Open returns.
type Source interface {
	// Run reads events until ctx is done or the source fails, calling
	// handle (from Run's goroutine) with each batch, and with an empty
	// batch at least every Idle while no event in the protected folders
	// comes (events elsewhere on their file systems may), so that the
	// caller can do its periodic work on the same goroutine (at the same
	// priority). The first call, with an empty batch, comes before the
	// first read, at the priority the source reads news at:
	// from then on an event is read as soon as the kernel queues it, so
	// a caller that waits for it knows the source is reading, not only
	// marked (on a busy machine a thread starting at normal priority may
	// wait long for its first turn).
	// It returns nil when ctx ended it. Run may be called once.
	Run(ctx context.Context, handle Handler) error
	// Close releases the kernel objects; call it after Run returned.
	Close() error
	// Name is "fanotify" or "inotify".
	Name() string
	// PIDs reports whether events carry the PID of their process.
	PIDs() bool
}

// ErrUnsupported is returned by Open when the asked-for backend cannot be
// used here (kernel too old, or not permitted).
var ErrUnsupported = errors.New("fswatch: backend not available")

// Options are the optional settings of Open.
type Options struct {
	// Devices are the block devices watched for raw writes. Nil means
	// every block device in /dev (and those created later, with
	// fanotify); an empty non-nil slice means none.
	Devices []string
	Log     *slog.Logger // may be nil
	// Realtime raises the thread that reads events and calls the handler
	// (whichever the runtime runs that goroutine on) to real-time
	// priority (SCHED_FIFO) for news: while it waits
	// in poll(2) for the first event after a quiet spell and for news
	// after it, and for linger after the handler asked to hurry (see
	// Handler). On a busy machine
	// the handler then runs as soon as the kernel queues such an event,
	// not after the writers' time slices, so what a process can damage
	// before it is stopped is bounded by the detector, not by the
	// scheduler. While it paces its reads through a run of events that
	// raise nothing it runs at normal priority, so that it does not
	// preempt a benign program at every read, which a real-time reader
	// does (docs/design.md, "Priority"). It needs CAP_SYS_NICE (root); without
	// it the loop always runs at normal priority and says so in the log.
	Realtime bool
	// Guard are more paths (folders or files, absolute, symbolic links
	// resolved) whose events are reported as those under the roots, and
	// so are the renames and deletions of the folders above them. Only
	// fanotify reports them (inotify, without PIDs, ignores Guard).
	Guard []string
	// Exec, if set, is an executable (absolute, symbolic links resolved):
	// fanotify reports each time it is executed as an Exec event, so that
	// the caller knows, in the order of the file events, which processes
	// run it. A file put at its path later (an upgrade) is marked too,
	// within Idle. Inotify ignores it.
	Exec string
}

// Open starts watching roots (folders) with backend "fanotify",
// "inotify" or "auto" (fanotify if permitted, else inotify). When auto
// falls back, the reason fanotify was not used is logged.
func Open(backend string, roots []string, opts Options) (Source, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	clean, err := cleanRoots(roots)
	if err != nil {
		return nil, err
	}
	l := loop{kind: backend, realtime: opts.Realtime, log: log}
	switch backend {
	case "fanotify":
		return openFanotify(clean, opts, l)
	case "inotify":
		return openInotify(clean, opts.Devices, l)
	case "auto", "":
		s, err := openFanotify(clean, opts, l)
		if err == nil {
			return s, nil
		}
		log.Warn("fanotify unavailable, using inotify: no process IDs, so no process can be stopped", "reason", err)
		return openInotify(clean, opts.Devices, l)
	}
	return nil, fmt.Errorf("fswatch: unknown backend %q (want auto, fanotify or inotify)", backend)
}

// cleanRoots makes roots absolute with symbolic links resolved, as the
// kernel reports paths.
func cleanRoots(roots []string) ([]string, error) {
	if len(roots) == 0 {
		return nil, errors.New("fswatch: no folder to watch")
	}
	var out []string
	for _, r := range roots {
		a, err := filepath.Abs(r)
		if err != nil {
			return nil, fmt.Errorf("fswatch: %s: %w", r, err)
		}
		if a, err = filepath.EvalSymlinks(a); err != nil {
			return nil, fmt.Errorf("fswatch: %w", err)
		}
		out = append(out, a)
	}
	return out, nil
}

// Under reports whether the absolute path p is root or inside it.
func Under(p, root string) bool {
	return p == root || root == "/" || strings.HasPrefix(p, root) && len(p) > len(root) && p[len(root)] == '/'
}

// InRoots reports whether the absolute path p lies in one of roots.
func InRoots(p string, roots []string) bool {
	for _, r := range roots {
		if Under(p, r) {
			return true
		}
	}
	return false
}

// watched reports whether an event on p (a folder if dir) is to be
// reported: p lies in one of roots or guard, or p is a folder above a
// guarded path (its rename or deletion moves or removes what is guarded).
func watched(p string, dir bool, roots, guard []string) bool {
	if InRoots(p, roots) || InRoots(p, guard) {
		return true
	}
	if dir {
		for _, g := range guard {
			if Under(g, p) {
				return true
			}
		}
	}
	return false
}

// blockDevices returns the block devices in /dev.
func blockDevices() []string {
	entries, err := os.ReadDir("/dev")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.Type()&fs.ModeDevice != 0 && e.Type()&fs.ModeCharDevice == 0 {
			out = append(out, "/dev/"+e.Name())
		}
	}
	return out
}

// Pacing. After each read a source waits before reading again, so that
// what happens meanwhile queues in the kernel and is read at once: a
// process writing file after file (a git checkout, an unpacked archive) is
// not preempted by the watcher once per file, and the kernel merges
// repeated events on one file.
//
// The wait is gap after a quiet spell, and doubles with each batch in a
// row that the handler did not hurry for, up to maxGap: a long run of
// benign events (a script moving files one mv at a time, a database
// writing page after page) is read every maxGap, not every gap. Each read
// wakes the watcher's CPU, and on a small machine those wake-ups are most
// of what the watcher costs a benign program (docs/design.md, "Pacing").
// Once a batch raises a score the handler asks to hurry and the source
// reads without waiting (Handler). News is not paced either: for news
// after the first event of a quiet spell, and for linger after a score
// last rose, every event is read as it comes, as when hurried. An
// attack's first steps often raise nothing (ransom notes, its workers
// starting), and while a paced reader waits for them to add up, the
// workers of a split attack run on the other cores (docs/design.md,
// "Pacing"). A benign program pays a wake-up per event for the first
// news of each quiet spell. The price of pacing: an attack that starts amid a run of benign
// events waits up to maxGap to be read, not gap.
//
// A read that finds nothing does not block at once: for linger after the
// last event the source keeps reading at the same pace, and only then
// waits in poll(2) for the kernel to wake it, and starts again from gap.
// Woken by the kernel, every event that finds the source waiting costs the
// process that caused it a wake-up of the watcher's CPU, which for a
// program causing an event every millisecond or so (a script moving files
// one mv at a time) costs more than a reader on its own timer. While the
// handler asks to hurry, an empty read waits in poll(2) at once, to be
// woken by the next event.
const (
	gap    = 1 * time.Millisecond
	maxGap = 4 * time.Millisecond
	linger = 50 * time.Millisecond
	// news is how long the reads stay at real-time priority, and
	// unpaced, after the first event of a quiet spell, whatever the
	// batches raise: an attack whose first events raise nothing (ransom
	// notes, its workers starting) is read on time on a loaded machine,
	// where a reader at normal priority waits behind every runnable
	// process.
	news = 200 * time.Millisecond
)

// pacer chooses the wait between reads (see Pacing).
type pacer struct {
	calm  int       // batches in a row the handler did not hurry for
	eager time.Time // until then events are read as they come: news, or a score rose
}

// eagerAt reports whether events are read as they come at now.
func (p *pacer) eagerAt(now time.Time) bool { return now.Before(p.eager) }

// calmBatch returns the wait after a calm batch, and lengthens the next.
func (p *pacer) calmBatch() time.Duration {
	d := p.wait()
	if d < maxGap {
		p.calm++
	}
	return d
}

// wait is the pause before the next read.
func (p *pacer) wait() time.Duration { return min(gap<<p.calm, maxGap) }

// reset starts again from gap, after a quiet spell.
func (p *pacer) reset() { p.calm = 0 }

// news has the events of the next news read as they come (see Pacing):
// the first events after a quiet spell came at now.
func (p *pacer) news(now time.Time) {
	p.calm = 0
	if until := now.Add(news); until.After(p.eager) {
		p.eager = until
	}
}

// rose starts again from gap, and has events read as they come for
// linger: a batch raised a score, and between the batches of an attack a
// calm one (a file closed after it was judged) must not slow the reads
// down.
func (p *pacer) rose(now time.Time) {
	p.calm = 0
	if until := now.Add(linger); until.After(p.eager) {
		p.eager = until
	}
}

// loop is how a source reads its kernel object.
type loop struct {
	kind     string // "fanotify" or "inotify", for messages
	realtime bool   // see Options.Realtime
	log      *slog.Logger
	mute     func(path string) (unmute func()) // see throttle; nil when the kernel cannot
}

// Idle is the longest a source's Run goes without calling its handler.
const Idle = 200 * time.Millisecond

// realtimePriority is the SCHED_FIFO priority of the reading thread: above
// every normal process, below the kernel's own real-time threads (50).
const realtimePriority = 10

// run reads the kernel's event buffers from f until ctx is done, has
// decode turn each into Events appended to a batch, hands every non-empty
// batch to handle, and paces long runs of writes in progress. It waits in
// poll(2) on the thread it runs on rather than in Go's network poller, so
// that the kernel wakes it directly (see Options.Realtime); a pipe wakes
// it when ctx is done.
//
// Its pauses and reads, which never block for long, bypass the runtime's
// system-call bookkeeping (RawSyscall). The loop never yields, so after
// 10 ms Go's system monitor takes its P away from any system call it is
// found in, and then polls every 20 µs; in Go 1.26 every such poll holds
// the thread's way out of the system call, and a real-time thread spins
// there, possibly while the monitor, preempted by it on the same CPU,
// cannot finish. With raw calls the monitor sees a goroutine running. The
// price: a stop-the-world of the garbage collector may wait for a pause to
// end (at most maxGap).
//
// The goroutine is not locked to its thread. The monitor preempts a
// goroutine that has run for 10 ms, and a locked one can only go on once
// another thread of the runtime, at normal priority, has run the scheduler
// and handed it its thread back: on a busy machine that took up to 110 ms,
// while an attack ran unread. Unlocked, the preempted goroutine is picked
// up again by the thread it left, still at real-time priority. Should the
// runtime move it to another thread, priority follows it (see follow).
func (l loop) run(ctx context.Context, f *os.File, buf []byte, handle Handler, decode func(b []byte, batch []Event) []Event) error {
	defer runtime.KeepAlive(f)
	var fd int
	rc, err := f.SyscallConn()
	if err == nil {
		err = rc.Control(func(u uintptr) { fd = int(u) })
	}
	if err != nil {
		return fmt.Errorf("fswatch: %s: %w", l.kind, err)
	}
	var wake [2]int
	if err := unix.Pipe2(wake[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("fswatch: pipe: %w", err)
	}
	defer unix.Close(wake[0])
	defer unix.Close(wake[1])
	// A write fails only when the pipe is full, so a wake-up is pending anyway.
	stop := context.AfterFunc(ctx, func() { _, _ = unix.Write(wake[1], []byte{0}) })
	defer stop()

	var prio priority
	if l.realtime {
		if err := prio.permit(); err != nil {
			l.log.Warn("event handling runs at normal priority: on a busy machine a process may damage more files before it is stopped", "reason", err)
		} else {
			l.log.Info("event handling goes to real-time priority for the first event after a quiet spell and while a score rises", "policy", "SCHED_FIFO", "priority", realtimePriority)
		}
	}
	// The thread goes back to the runtime at normal priority.
	defer prio.lower()
	prio.raise(0)
	handle(nil) // reading from here on (see Source.Run)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(wake[0]), Events: unix.POLLIN}}
	var batch []Event
	thr := newThrottle(l.mute)
	defer thr.release()
	var pace pacer
	var last time.Time  // when the last event was read
	var idled time.Time // when the handler last got an empty batch
	hurry := false      // the handler asked for the next batch at once
	quiet := true       // no event in the protected folders since the last wait or read
	for {
		if ctx.Err() != nil {
			return nil // also when events never stop coming (a busy file system)
		}
		prio.follow()
		n, err := rawRead(fd, buf)
		switch {
		case err == unix.EAGAIN && !hurry && time.Since(last) < linger:
			now := time.Now()
			thr.expire(now)
			if pace.eagerAt(now) {
				// News: woken by the next event, not paced (see Pacing).
				wait := min(pace.eager.Sub(now), linger-now.Sub(last))
				ts := unix.NsecToTimespec(int64(wait))
				if _, err := unix.Ppoll(fds, &ts, nil); err != nil && err != unix.EINTR {
					return fmt.Errorf("fswatch: poll %s: %w", l.kind, err)
				}
				continue
			}
			if !quiet {
				// Pacing through benign events in the protected
				// folders. While only other programs' events come, the
				// reads stay at real-time priority (see below): at
				// normal priority a busy machine delays each by tens
				// of milliseconds.
				prio.settle()
			}
			pause(pace.wait())
			continue
		case err == unix.EAGAIN:
			// Whatever wakes the loop now is news (the first event
			// after a quiet spell, or the next of a suspect): it is
			// read at real-time priority.
			thr.release()
			prio.raise(0)
			pace.reset()
			quiet = true
			ready, err := unix.Poll(fds, int(Idle/time.Millisecond))
			if err != nil && err != unix.EINTR {
				return fmt.Errorf("fswatch: poll %s: %w", l.kind, err)
			}

			if ready == 0 && ctx.Err() == nil {
				handle(nil)
				idled = time.Now()
			}
			continue
		case err == unix.EINTR:
			continue
		case err != nil:
			return fmt.Errorf("fswatch: read %s: %w", l.kind, err)
		}
		last = time.Now()
		batch = thr.filter(decode(buf[:n], batch[:0]), last)
		if len(batch) == 0 {
			// Nothing in the protected folders: other programs' work on
			// the same file system. The next read comes after gap, at
			// real-time priority, so an attack that starts amid it is read
			// within gap and before the busy machine's other work. While
			// the handler asks to hurry it reads on at once.
			// The handler still gets its empty batch every Idle.
			prio.raise(0)
			pace.reset()
			quiet = true
			if last.Sub(idled) >= Idle {
				handle(nil)
				idled = last
			}
			if !hurry {
				pause(gap)
			}
			continue
		}
		if quiet {
			// The first events in the protected folders after a wait or
			// after other programs' events only: news, read at real-time
			// priority and as it comes for a while whatever they raise.
			prio.raise(news)
			pace.news(last)
			quiet = false
		}
		prio.follow() // the runtime may have moved the goroutine while it decoded
		if hurry = handle(batch); hurry {
			prio.raise(linger)
			pace.rose(last)
			continue
		}
		if pace.eagerAt(last) {
			continue // read the next events as they come (see Pacing)
		}
		prio.settle()
		pause(pace.calmBatch())
	}
}

// priority switches the loop's thread between normal and real-time
// priority (Options.Realtime). The loop's goroutine may be moved to
// another thread by the runtime: follow moves the priority with it.
type priority struct {
	permitted bool      // real-time priority may be used
	tid       int       // the thread last seen running the loop
	high      bool      // that thread is at real-time priority
	until     time.Time // when it goes back to normal, unless raised again
}

// permit checks that the calling thread may go to real-time priority, by
// going there and back.
func (p *priority) permit() error {
	tid := gettid()
	if err := setPolicy(tid, unix.SCHED_FIFO, realtimePriority); err != nil {
		return err
	}
	// Should going back fail, the thread is known to be high, and the
	// next settle tries again.
	p.permitted, p.tid, p.high = true, tid, true
	p.lower()
	return nil
}

// raise puts the calling thread at real-time priority, to stay there for
// at least hold.
func (p *priority) raise(hold time.Duration) {
	if !p.permitted {
		return
	}
	p.follow()
	if until := time.Now().Add(hold); until.After(p.until) {
		p.until = until
	}
	if !p.high && setPolicy(p.tid, unix.SCHED_FIFO, realtimePriority) == nil {
		p.high = true
	}
}

// settle puts the thread back at normal priority once the hold of the
// last raise has passed.
func (p *priority) settle() {
	if p.high && time.Now().After(p.until) {
		p.lower()
	}
}

func (p *priority) lower() {
	if p.high && setPolicy(p.tid, unix.SCHED_NORMAL, 0) == nil {
		p.high = false
	}
}

// follow makes the calling thread the loop's: if the runtime moved the
// goroutine to another thread while the one it left was at real-time
// priority, that one goes back to normal (it now runs other goroutines)
// and the calling one goes up.
func (p *priority) follow() {
	if !p.permitted {
		return
	}
	tid := gettid()
	if tid == p.tid {
		return
	}
	if p.high {
		p.lower()
		p.tid = tid
		p.high = setPolicy(tid, unix.SCHED_FIFO, realtimePriority) == nil
		return
	}
	p.tid = tid
}

// setPolicy sets the scheduling policy of thread tid. The processes and
// threads it starts do not inherit real-time priority
// (SCHED_FLAG_RESET_ON_FORK): whichever goroutine runs on the loop's
// thread between its turns may start a program.
func setPolicy(tid int, policy uint32, prio uint32) error {
	return unix.SchedSetAttr(tid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: policy, Priority: prio, Flags: unix.SCHED_FLAG_RESET_ON_FORK}, 0)
}

// gettid returns the calling thread's ID. Like pause, it is a raw system
// call: see the comment on run.
func gettid() int {
	tid, _, _ := unix.RawSyscall(unix.SYS_GETTID, 0, 0, 0)
	return int(tid)
}

// pause waits d in the system call, on the loop's own thread, rather than
// on a runtime timer, which would take another thread to wake it. It is a
// raw system call: see the comment on run.
func pause(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	for {
		_, _, e := unix.RawSyscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), uintptr(unsafe.Pointer(&ts)), 0)
		if e != unix.EINTR {
			return
		}
	}
}

// rawRead reads the non-blocking descriptor fd. Like pause, it is a raw
// system call: see the comment on run.
func rawRead(fd int, b []byte) (int, error) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

package watcher

import (
	"os"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/detect"
)

// holder keeps suspects on the watcher's CPU (docs/design.md, "Holding a
// suspect"). A process whose event raised its actor's score to holdShare
// of the threshold (see suspect) has its threads' CPU affinity set to the
// CPU the watcher's event thread runs on, and that thread is pinned there
// too. The event thread waits for events at real-time priority, so from
// then on every event the suspect causes preempts it, on the one CPU they
// share, until the event is read and scored: the suspect cannot run ahead
// of the watcher on another core, whatever the load, and an alert stops it
// within the files its threshold needs. A suspect whose score stops
// rising for holdFor gets its own affinity back; so does one that exits.
// Not a signal: the parent of the process (an interactive shell) sees
// nothing, as it would with SIGSTOP.
//
// hold is called only from the source's Run goroutine, and pins the
// thread that goroutine runs on (the event thread); the runtime may move
// the goroutine to another thread, and the pin moves with it (see
// follow). expire may be called from any goroutine, but not concurrently
// with hold.
type holder struct {
	cpu      int                  // the CPU suspects are held on, -1 while none is
	self     int                  // the event thread's TID, once pinned
	own      unix.CPUSet          // the event thread's affinity before it was pinned
	held     map[int]*heldProc    // PID -> its saved state
	kin      map[kinKey]time.Time // the executables of suspects, with their users -> until
	now      func() time.Time     // clock
	set      func(tid int, s *unix.CPUSet) error
	tasks    func(pid int) []int // the threads of pid
	children func(pid int) []int // the child processes of pid
}

// kinKey identifies the processes of one user that run one executable of
// their own (detect.Actor.Exe): the workers of one program.
type kinKey struct {
	uid int
	exe string
}

// kinKeyOf returns a's kinKey, and false when a has no kin: its executable
// is a system one or unknown (a.Exe empty), or its user is unknown.
func kinKeyOf(a detect.Actor) (kinKey, bool) {
	return kinKey{a.UID, a.Exe}, a.Exe != "" && a.UID >= 0
}

type heldProc struct {
	masks map[int]unix.CPUSet // TID -> affinity before the hold
	until time.Time
}

// holdShare is the share of the detector's threshold from which a process
// tree whose score rose is held: more than one deleted or renamed file
// (2.5 and 2 of 10 by default), so that a program replacing its files one
// by one (git switching commits, a package upgrade), whose score rises and
// is taken back file after file, keeps its own CPUs, while one damaged
// file's content (4-5) or two deletions hold at once.
const holdShare = 1.0 / 3

// suspect reports whether the event d observed last, by actor a, makes a
// suspect to hold: it raised a score (d.Raised was before when it came),
// and a's process tree now scores holdShare of the threshold or more.
func suspect(d *detect.Detector, a detect.Actor, before uint64) bool {
	return d.Raised() != before && d.Score(a) >= holdShare*d.Threshold()
}

// holdFor is how long a suspect stays held after its score last rose.
const holdFor = time.Second

// maxHeld bounds the processes held at once.
const maxHeld = 256

func newHolder() *holder {
	return &holder{cpu: -1, held: map[int]*heldProc{}, kin: map[kinKey]time.Time{}, now: time.Now, set: unix.SchedSetaffinity,
		tasks: tasks, children: childrenOf}
}

// hold pins pid's threads to the event thread's CPU (pinning the event
// thread there first), or extends the hold of a process already held.
// Failures are ignored: holding only narrows a race the stop decides.
func (h *holder) hold(pid int) {
	if pid <= 2 {
		return
	}
	until := h.now().Add(holdFor)
	hp := h.held[pid]
	if hp == nil && len(h.held) >= maxHeld {
		return
	}
	if (h.cpu < 0 && !h.pinSelf()) || !h.follow() {
		return
	}
	if hp == nil {
		hp = &heldProc{masks: map[int]unix.CPUSet{}}
		h.held[pid] = hp
	}
	hp.until = until
	var one unix.CPUSet
	one.Set(h.cpu)
	for _, tid := range h.tasks(pid) {
		if _, ok := hp.masks[tid]; ok {
			continue
		}
		var old unix.CPUSet
		if unix.SchedGetaffinity(tid, &old) != nil || h.set(tid, &one) != nil {
			continue
		}
		hp.masks[tid] = old
	}
}

// holds reports whether pid is held.
func (h *holder) holds(pid int) bool { return h.held[pid] != nil }

// holdKin records suspect a's user and executable, unless that is a
// system one (a.Exe empty) or the user is unknown: until holdFor from now
// the other processes of that user that run it are held too (see kinHeld),
// the workers of a split attack (docs/design.md, "Split attacks") that have
// not raised a score of their own yet. It reports whether they were not
// held already.
func (h *holder) holdKin(a detect.Actor) bool {
	k, has := kinKeyOf(a)
	if !has {
		return false
	}
	_, ok := h.kin[k]
	if !ok && len(h.kin) >= maxHeld {
		return false
	}
	h.kin[k] = h.now().Add(holdFor)
	return !ok
}

// kinHeld reports whether a runs the executable of a suspect of its user
// held within holdFor (see holdKin).
func (h *holder) kinHeld(a detect.Actor) bool {
	k, has := kinKeyOf(a)
	if !has {
		return false
	}
	until, ok := h.kin[k]
	return ok && h.now().Before(until)
}

// follow pins the calling thread to the CPU suspects are held on, if it
// is not the thread pinned so far (the runtime moved the event
// goroutine), and gives that one its own affinity back. It reports
// whether the calling thread is pinned, or nothing is held.
func (h *holder) follow() bool {
	tid := unix.Gettid()
	if h.cpu < 0 || tid == h.self {
		return true
	}
	var one unix.CPUSet
	one.Set(h.cpu)
	if h.set(0, &one) != nil {
		return false
	}
	_ = h.set(h.self, &h.own) // fails when the thread is gone
	h.self = tid
	return true
}

// pinSelf pins the calling (event) thread to the CPU it runs on.
func (h *holder) pinSelf() bool {
	cpu, err := getcpu()
	if err != nil || unix.SchedGetaffinity(0, &h.own) != nil {
		return false
	}
	var one unix.CPUSet
	one.Set(cpu)
	if h.set(0, &one) != nil {
		return false
	}
	h.cpu, h.self = cpu, unix.Gettid()
	return true
}

// expire releases the processes whose hold has passed (all with force),
// and unpins the event thread once none is held.
func (h *holder) expire(force bool) {
	now := h.now()
	for k, until := range h.kin {
		if force || !now.Before(until) {
			delete(h.kin, k)
		}
	}
	for pid, hp := range h.held {
		if !force && now.Before(hp.until) {
			continue
		}
		for tid, m := range hp.masks {
			_ = h.set(tid, &m) // fails when the thread is gone
		}
		h.releaseInherited(pid, hp, maxReleased)
		delete(h.held, pid)
	}
	if len(h.held) == 0 && h.cpu >= 0 {
		// The runtime may have started threads of the watcher from the
		// pinned one; they inherited the pin too.
		var pinned unix.CPUSet
		pinned.Set(h.cpu)
		for _, tid := range h.tasks(os.Getpid()) {
			var cur unix.CPUSet
			if tid == h.self || unix.SchedGetaffinity(tid, &cur) == nil && cur == pinned {
				_ = h.set(tid, &h.own) // fails when the thread is gone
			}
		}
		h.cpu = -1
	}
}

// maxReleased bounds the threads and descendants expire looks at for one
// held process.
const maxReleased = 4096

// releaseInherited gives the affinity pid had before its hold back to what
// inherited the pin while it was held: its threads started since, and its
// descendants (a process forked by a held one, and their threads), those
// whose affinity is still exactly the held CPU. Without it a benign
// program held for a second (a build deleting its temporary files) would
// leave the compilers it started meanwhile on one CPU for good. At most
// budget threads are looked at.
func (h *holder) releaseInherited(pid int, hp *heldProc, budget int) {
	orig, ok := hp.masks[pid]
	if !ok {
		for _, m := range hp.masks {
			orig, ok = m, true
			break
		}
	}
	if !ok || h.cpu < 0 {
		return
	}
	var pinned unix.CPUSet
	pinned.Set(h.cpu)
	queue := []int{pid}
	for len(queue) > 0 && budget > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, tid := range h.tasks(p) {
			if budget--; budget < 0 {
				return
			}
			if _, saved := hp.masks[tid]; saved && p == pid {
				continue // restored above
			}
			var cur unix.CPUSet
			if unix.SchedGetaffinity(tid, &cur) == nil && cur == pinned {
				_ = h.set(tid, &orig) // fails when the thread is gone
			}
		}
		queue = append(queue, h.children(p)...)
	}
}

// tasks lists the threads of pid.
func tasks(pid int) []int {
	d, err := os.Open("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return nil
	}
	defer func() { _ = d.Close() }() // a folder, read only
	names, _ := d.Readdirnames(-1)
	out := make([]int, 0, len(names))
	for _, n := range names {
		if tid, err := strconv.Atoi(n); err == nil {
			out = append(out, tid)
		}
	}
	return out
}

// getcpu returns the CPU the calling thread runs on.
func getcpu() (int, error) {
	var cpu uint32
	_, _, e := unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&cpu)), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(cpu), nil
}

package watcher

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/detect"
)

// proc is what the table knows of one process.
type proc struct {
	ppid int // parent at fork (kept when the parent dies and the kernel reparents)
	pgid int // process group
	// grouped reports pgid known, read from /proc or set by setsid; else
	// it is the parent's, copied at fork (see inheritGroup).
	grouped bool
	uid     int // -1 unknown
	comm    string
	// exe is the executable's identity (see kin), known once exeRead;
	// a fork inherits it, an exec clears it.
	exe     string
	exeRead bool
	exited  time.Time
	read    time.Time // last refreshed from /proc
}

// procs tracks processes: from the kernel's proc connector (fork, exec,
// setsid, setuid and exit of every process, so even a process that wrote a
// file and exited before its event was read has a known parent), else from
// /proc. It chooses the group an event is charged to (see actor) and
// stops process trees. Safe for concurrent use.
type procs struct {
	self      int
	exe       fileID       // this process's executable (never a sibling, see siblings)
	protected map[int]bool // this process and its ancestors: never stopped, never part of a tree
	ownGroups map[int]bool // their process groups
	mu        sync.Mutex
	nl        int // proc connector socket, -1 if none
	table     map[int]*proc
	drained   time.Time
}

// maxProcs bounds the table; exited processes are kept this long so
// late events still find their parents.
const (
	maxProcs   = 1 << 16
	exitedKeep = time.Minute
)

func newProcs() *procs {
	p := &procs{self: os.Getpid(), protected: map[int]bool{}, ownGroups: map[int]bool{}, nl: -1, table: map[int]*proc{}}
	p.exe, _, _ = exeOf(p.self)
	for pid := p.self; pid > 0 && !p.protected[pid]; {
		p.protected[pid] = true
		info, err := readProc(pid)
		if err != nil {
			break
		}
		if info.pgid > 0 { // 0: a group outside this PID namespace, as unknown
			p.ownGroups[info.pgid] = true
		}
		pid = info.ppid
	}
	return p
}

// listen subscribes to the proc connector (needs CAP_NET_ADMIN).
func (p *procs) listen() error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_CONNECTOR)
	if err != nil {
		return fmt.Errorf("proc connector socket: %w", err)
	}
	const cnIdxProc, cnValProc, mcastListen = 1, 1, 1
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		unix.Close(fd)
		return fmt.Errorf("proc connector bind: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20) // best effort: else the default buffer serves
	msg := make([]byte, nlmsgHdrLen+cnMsgLen+4)
	le := binary.LittleEndian
	le.PutUint32(msg, uint32(len(msg)))
	le.PutUint16(msg[4:], unix.NLMSG_DONE)
	le.PutUint32(msg[nlmsgHdrLen:], cnIdxProc)
	le.PutUint32(msg[nlmsgHdrLen+4:], cnValProc)
	le.PutUint16(msg[nlmsgHdrLen+16:], 4)
	le.PutUint32(msg[nlmsgHdrLen+cnMsgLen:], mcastListen)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		unix.Close(fd)
		return fmt.Errorf("proc connector listen: %w", err)
	}
	p.nl = fd
	return nil
}

func (p *procs) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.nl >= 0 {
		unix.Close(p.nl)
		p.nl = -1
	}
}

// drain applies every queued proc connector message. Called with p.mu held.
func (p *procs) drain() {
	if p.nl < 0 {
		return
	}
	var buf [4096]byte
	for {
		n, _, err := unix.Recvfrom(p.nl, buf[:], unix.MSG_DONTWAIT)
		if errors.Is(err, unix.ENOBUFS) {
			continue // messages were lost; /proc fills the gaps
		}
		if err != nil || n <= 0 {
			break
		}
		evs, _ := parseProcEvents(buf[:n])
		for _, ev := range evs {
			p.apply(ev)
		}
	}
	now := time.Now()
	if now.Sub(p.drained) > 10*time.Second || len(p.table) > maxProcs {
		p.drained = now
		for pid, pr := range p.table {
			if !pr.exited.IsZero() && now.Sub(pr.exited) > exitedKeep {
				delete(p.table, pid)
			}
		}
		if len(p.table) > maxProcs {
			clear(p.table)
		}
	}
}

func (p *procs) apply(ev procEvent) {
	if ev.pid != ev.tgid {
		return // a thread
	}
	switch ev.what {
	case procFork:
		c := &proc{ppid: ev.parentTGID, uid: -1}
		if pp := p.table[ev.parentTGID]; pp != nil {
			c.uid, c.comm, c.pgid, c.exe, c.exeRead = pp.uid, pp.comm, pp.pgid, pp.exe, pp.exeRead
		}
		p.table[ev.pid] = c
	case procExec:
		if pr := p.table[ev.pid]; pr != nil {
			pr.comm, pr.exe, pr.exeRead = "", "", false
		}
	case procUID:
		if pr := p.table[ev.pid]; pr != nil {
			pr.uid = ev.uid
		}
	case procSID:
		if pr := p.table[ev.pid]; pr != nil {
			pr.pgid, pr.grouped = ev.pid, true // setsid makes a new process group too
		}
	case procExit:
		if pr := p.table[ev.pid]; pr != nil {
			pr.exited = time.Now()
		}
	}
}

// tick drains the proc connector; the watcher calls it periodically so
// the socket does not overflow while no file event arrives.
func (p *procs) tick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drain()
}

// get returns what is known of pid, refreshed from /proc at most once a
// second while the process lives. Called with p.mu held.
func (p *procs) get(pid int) *proc {
	pr := p.lookup(pid)
	if pr != nil && !pr.grouped {
		p.inheritGroup(pr)
	}
	return pr
}

// lookup is get without inheritGroup.
func (p *procs) lookup(pid int) *proc {
	pr := p.table[pid]
	if pr != nil && (!pr.exited.IsZero() || time.Since(pr.read) < time.Second) {
		return pr
	}
	info, err := readProc(pid)
	if err != nil {
		if pr == nil {
			p.drain()
			pr = p.table[pid]
		}
		return pr
	}
	if pr == nil {
		pr = info
		p.table[pid] = pr
	} else {
		pr.uid, pr.comm, pr.pgid, pr.grouped, pr.read = info.uid, info.comm, info.pgid, true, info.read
		if pr.ppid == 0 {
			pr.ppid = info.ppid
		}
	}
	return pr
}

// inheritGroup gives pr, a process known only from the proc connector
// (it exited before it was read), the process group of its nearest
// ancestor whose group is known. A fork starts in its parent's group,
// and the connector reports setsid but not setpgid: the group copied at
// fork misses a parent's setpgid after it (a shell started in a group
// of its own), and is unknown when the parent was not in the table.
// Called with p.mu held.
func (p *procs) inheritGroup(pr *proc) {
	guessed := []*proc{pr}
	for range 64 {
		cur := guessed[len(guessed)-1]
		if cur.ppid <= 0 {
			return
		}
		par := p.lookup(cur.ppid)
		if par == nil {
			return
		}
		if par.grouped {
			for _, g := range guessed {
				g.pgid = par.pgid
			}
			return
		}
		guessed = append(guessed, par)
	}
}

// actor returns the actor an event of pid is charged to: its group, user,
// command and executable (see kin). The
// group is the process group (a shell job, or everything a program that
// called setsid forks), keyed by its ID, unless that is the group of this
// process or of an ancestor (a test runner, a drill, a service manager):
// then it is the process tree under the highest ancestor below this
// process, its ancestors, or PID 1 or 2. Either way a program and the
// workers it forks are one actor, and two programs started side by side
// are two. Unknown parents end the walk. Own reports a process of this
// process's group or an ancestor's (see detect.Actor.Own).
func (p *procs) actor(pid int) detect.Actor {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr := p.get(pid)
	if pr == nil {
		return detect.Actor{PID: pid, Group: pid, UID: -1}
	}
	if !pr.exeRead && pr.exited.IsZero() {
		pr.exe, pr.exeRead = p.kin(pid), true
	}
	a := detect.Actor{PID: pid, Group: pr.pgid, UID: pr.uid, Command: pr.comm, Exe: pr.exe}
	if pr.pgid <= 2 || p.ownGroups[pr.pgid] {
		c := p.chain(pid)
		a.Group, a.Own = c[len(c)-1], p.ownGroups[pr.pgid]
	}
	return a
}

// kin returns the identity of the executable pid runs (device and inode)
// for detect.Actor.Exe, or "" when it is unknown, this process's own, or
// installed with the system (see systemDirs): many unrelated processes
// run a shell or an interpreter, while the workers of one program run
// its file.
func (p *procs) kin(pid int) string {
	id, path, ok := exeOf(pid)
	if !ok || id == p.exe || system(path) {
		return ""
	}
	return strconv.FormatUint(id.dev, 16) + ":" + strconv.FormatUint(id.ino, 16)
}

// holdAncestors bounds the ancestors held with a suspect (see
// forkers).
const holdAncestors = 4

// forkers returns the live ancestors of pid in its group (see chain), at
// most holdAncestors, nearest first; none for a process in this
// process's own group or an ancestor's. A suspect's parent in its group
// may be forking the next workers (one short process per file): held
// with it, what it starts inherits the hold.
func (p *procs) forkers(pid int) []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr := p.get(pid)
	if pr == nil || p.ownGroups[pr.pgid] {
		return nil
	}
	var out []int
	for _, a := range p.chain(pid)[1:] {
		if len(out) == holdAncestors {
			break
		}
		if anc := p.get(a); anc != nil && anc.exited.IsZero() {
			out = append(out, a)
		}
	}
	return out
}

// chain returns pid and its ancestors, up to (not including) a boundary:
// PID 1 or 2, this process or an ancestor, or a process outside pid's
// own process group when that group is not this process's. Called with
// p.mu held.
func (p *procs) chain(pid int) []int {
	chain := []int{pid}
	first := p.get(pid)
	for range 64 {
		cur := p.get(chain[len(chain)-1])
		if cur == nil || cur.ppid <= 2 || p.protected[cur.ppid] {
			break
		}
		if first != nil && !p.ownGroups[first.pgid] {
			if par := p.get(cur.ppid); par == nil || par.pgid != first.pgid {
				break
			}
		}
		chain = append(chain, cur.ppid)
	}
	return chain
}

// errReaped is readProc's error for a process the kernel is releasing:
// its /proc/PID/stat still reads, but with parent 0 and process group -1.
var errReaped = errors.New("process exited and reaped")

// readProc reads a live process's parent, process group, user and
// command.
func readProc(pid int) (*proc, error) {
	var buf [512]byte
	b, uid, err := readStat(pid, buf[:])
	if err != nil {
		return nil, err
	}
	pr, err := parseStat(b)
	if err != nil {
		return nil, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	pr.uid, pr.read = uid, time.Now()
	return pr, nil
}

// parseStat parses the start of a /proc/PID/stat: the command, parent
// and process group. A dead or zombie process without a process group
// is being released (the kernel no longer has its parent and group) and
// is errReaped.
func parseStat(b []byte) (*proc, error) {
	// pid (comm) state ppid pgrp session ...
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return nil, errors.New("no command in parentheses")
	}
	f := strings.Fields(string(b[end+1 : min(len(b), end+64)]))
	if len(f) < 3 {
		return nil, errors.New("short")
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return nil, fmt.Errorf("parent: %w", err)
	}
	pgid, err := strconv.Atoi(f[2])
	if err != nil {
		return nil, fmt.Errorf("process group: %w", err)
	}
	if pgid <= 0 && (f[0] == "X" || f[0] == "Z") {
		return nil, errReaped
	}
	return &proc{ppid: ppid, pgid: pgid, grouped: true, comm: string(b[open+1 : end])}, nil
}

// readStat reads the start of /proc/PID/stat into buf (512 bytes hold the
// command and the fields up to the process group whatever their values)
// and the process's user, the owner of its /proc entries: four system
// calls, as the watcher does this for every process it has not seen,
// where os.ReadFile and a stat of /proc/PID took seven and two path walks.
func readStat(pid int, buf []byte) ([]byte, int, error) {
	name := "/proc/" + strconv.Itoa(pid) + "/stat"
	fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, 0, &os.PathError{Op: "open", Path: name, Err: err}
	}
	defer unix.Close(fd)
	uid := -1
	var st unix.Stat_t
	if unix.Fstat(fd, &st) == nil {
		uid = int(st.Uid)
	}
	n, err := unix.Read(fd, buf)
	if err != nil {
		return nil, 0, &os.PathError{Op: "read", Path: name, Err: err}
	}
	return buf[:n], uid, nil
}

// awaitStop waits until every thread of each process in pids is stopped,
// or the process is gone, for at most max, and returns the processes that
// were not by then. A SIGSTOP is delivered asynchronously: a thread in a
// system call (a write, a truncation) finishes it before it stops, and the
// file event it makes may come after the signal was sent. A parent
// waiting in vfork for a stopped child stays in uninterruptible sleep, not
// stopped; max bounds the wait for such.
func awaitStop(ctx context.Context, pids []int, max time.Duration) []int {
	deadline := time.Now().Add(max)
	var rest []int
	for _, pid := range pids {
		for !stoppedOrGone(pid) {
			if ctx.Err() != nil || time.Now().After(deadline) {
				rest = append(rest, pid)
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	return rest
}

// stoppedOrGone reports whether every thread of process pid is stopped
// (or traced), a zombie or gone.
func stoppedOrGone(pid int) bool {
	dir := "/proc/" + strconv.Itoa(pid) + "/task/"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return true
	}
	for _, t := range tasks {
		b, err := os.ReadFile(dir + t.Name() + "/stat")
		if err != nil {
			continue // the thread ended
		}
		// tid (comm) state ...
		end := bytes.LastIndexByte(b, ')')
		if end < 0 || end+2 >= len(b) {
			continue
		}
		switch b[end+2] {
		case 'T', 't', 'Z', 'X', 'x':
		default:
			return false
		}
	}
	return true
}

// targets chooses what to stop for the processes whose events scored:
// per tree (see chain), the highest live process of the tree's part in
// their process group, where that group is not this process's or an
// ancestor's (the job or the session an attack runs in: the program
// that forks a worker per file is stopped with the worker whose first
// file alerted, not only that worker); otherwise their lowest common
// ancestor, moved up while it has exited or is a zombie, but never
// above the tree's root, so that with one live offender in the
// watcher's own job (a test runner's child) that is the offender itself.
func (p *procs) targets(pids []int) []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	chains := map[int][][]int{} // root -> chains (pid first, root last)
	own := map[int]bool{}       // root -> the tree is in this process's own group
	for _, pid := range pids {
		chain := p.chain(pid)
		root := chain[len(chain)-1]
		chains[root] = append(chains[root], chain)
		if pr := p.get(pid); pr == nil || p.ownGroups[pr.pgid] {
			own[root] = true
		}
	}
	var out []int
	for _, cs := range chains {
		// The common ancestors are the common suffix of the chains.
		common := cs[0]
		for _, c := range cs[1:] {
			n := 0
			for n < len(common) && n < len(c) && common[len(common)-1-n] == c[len(c)-1-n] {
				n++
			}
			common = common[len(common)-n:]
		}
		if len(common) == 0 {
			continue
		}
		i := 0
		for i < len(common)-1 && !alive(common[i]) {
			i++
		}
		if !own[cs[0][len(cs[0])-1]] {
			for j := len(common) - 1; j > i; j-- {
				if alive(common[j]) {
					i = j
					break
				}
			}
		}
		out = append(out, common[i])
	}
	slices.Sort(out)
	return out
}

// alive reports whether pid is a live process (not a zombie).
func alive(pid int) bool {
	var buf [512]byte
	b, _, err := readStat(pid, buf[:])
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X'
}

// stop sends SIGSTOP to each of pids and all their descendants, parents
// before children, repeating until no new descendant appears. Protected
// processes (this one and its ancestors) and PIDs 1 and 2 are skipped. It
// returns the processes stopped.
//
// The signal goes to each thread of a process too. Sent to the process
// alone, the kernel hands it to one thread, usually the main one, which
// then stops the others; when that thread waits for a CPU (the one this
// real-time thread holds, where a suspect's threads are pinned), another
// thread of the process goes on running on another CPU until it gets
// there. Each thread with a stop of its own stops at once.
func (p *procs) stop(pids []int) ([]int, error) {
	stopped := map[int]bool{}
	var errs []error
	send := func(pid int) {
		if stopped[pid] || pid <= 2 || p.protected[pid] {
			return
		}
		if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
			if !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("stop %d: %w", pid, err))
			}
			return
		}
		for _, tid := range tasks(pid) {
			_ = unix.Tgkill(pid, tid, unix.SIGSTOP) // fails when the thread is gone
		}
		stopped[pid] = true
	}
	for _, pid := range pids {
		send(pid)
	}
	for range 3 {
		children := childrenReader()
		before := len(stopped)
		queue := slices.Clone(pids)
		seen := map[int]bool{}
		for len(queue) > 0 {
			pid := queue[0]
			queue = queue[1:]
			if seen[pid] {
				continue
			}
			seen[pid] = true
			for _, c := range children(pid) {
				send(c)
				queue = append(queue, c)
			}
		}
		if len(stopped) == before {
			break
		}
	}
	out := make([]int, 0, len(stopped))
	for pid := range stopped {
		out = append(out, pid)
	}
	slices.Sort(out)
	return out, errors.Join(errs...)
}

// childrenReader returns how to list a process's children: from
// /proc/PID/task/TID/children, a few reads per process, where the kernel
// has it (CONFIG_PROC_CHILDREN); else from a map of every live process's
// parent, read from all of /proc at the first call. The stop runs in the event
// thread while an attack may go on in other processes, so its cost is
// theirs to use.
func childrenReader() func(pid int) []int {
	if _, err := os.Stat("/proc/self/task/" + strconv.Itoa(unix.Gettid()) + "/children"); err == nil {
		return childrenOf
	}
	var m map[int][]int
	return func(pid int) []int {
		if m == nil {
			m = childrenMap()
		}
		return m[pid]
	}
}

// childrenOf lists pid's children from /proc/PID/task/*/children.
func childrenOf(pid int) []int {
	dir := "/proc/" + strconv.Itoa(pid) + "/task/"
	var out []int
	for _, tid := range tasks(pid) {
		b, err := os.ReadFile(dir + strconv.Itoa(tid) + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// childrenMap reads every live process's parent from /proc.
func childrenMap() map[int][]int {
	m := map[int][]int{}
	d, err := os.Open("/proc")
	if err != nil {
		return m
	}
	defer func() { _ = d.Close() }() // a folder, read only
	names, _ := d.Readdirnames(-1)
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		if pr, err := readProc(pid); err == nil {
			m[pr.ppid] = append(m[pr.ppid], pid)
		}
	}
	return m
}

// hasOpenForWrite reports whether pid holds path open for writing (so a
// truncation is the start of a rewrite, not the end of the file).
func hasOpenForWrite(pid int, path string) bool {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd/"
	d, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer func() { _ = d.Close() }() // a folder, read only
	names, _ := d.Readdirnames(-1)
	for _, n := range names {
		if t, err := os.Readlink(dir + n); err != nil || t != path {
			continue
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/fdinfo/" + n)
		if err != nil {
			return true
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "flags:"); ok {
				fl, _ := strconv.ParseInt(strings.TrimSpace(v), 8, 64)
				if fl&(unix.O_WRONLY|unix.O_RDWR) != 0 {
					return true
				}
			}
		}
	}
	return false
}

// kinOf returns the live processes other than a's that this table has
// seen act, or forked from one that had, which run a's executable (see
// kin) as a's user: the workers of a program a is one of. None when a
// has no kin (see kinKeyOf).
func (p *procs) kinOf(a detect.Actor) []int {
	k, has := kinKeyOf(a)
	if !has {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for pid, pr := range p.table {
		if pid != a.PID && pr.exeRead && (kinKey{pr.uid, pr.exe}) == k && pr.exited.IsZero() && !p.protected[pid] {
			out = append(out, pid)
		}
	}
	return out
}

package watcher

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		ppid, pgid int
		comm       string
		err        error
	}{
		{"running", "4467 (rm) R 4466 4466 301 0 -1 4194560", 4466, 4466, "rm", nil},
		{"command with parentheses and spaces", "12 (a) b (c) S 7 12 12 0", 7, 12, "a) b (c", nil},
		{"zombie not yet reaped", "4467 (rm) Z 4466 4466 301 0", 4466, 4466, "rm", nil},
		{"outside the namespace", "40 (bash) S 0 0 0 34816 40", 0, 0, "bash", nil},
		// Read while the kernel releases it: what the watcher read of rm
		// in a CI run, charging rm's files to rm alone.
		{"being reaped", "12408 (true) X 0 -1 -1 0 -1 4227084 50 0", 0, 0, "", errReaped},
		{"being reaped, state read first", "12408 (true) Z 0 -1 -1 0 -1", 0, 0, "", errReaped},
		{"no parentheses", "12 sh S 1 12", 0, 0, "", errors.New("")},
		{"short", "12 (sh) S 1", 0, 0, "", errors.New("")},
		{"not a number", "12 (sh) S one 12", 0, 0, "", errors.New("")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr, err := parseStat([]byte(tc.stat))
			if tc.err != nil {
				if err == nil || (tc.err == errReaped && !errors.Is(err, errReaped)) {
					t.Fatalf("parseStat(%q) = %+v, %v; want error %v", tc.stat, pr, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if pr.ppid != tc.ppid || pr.pgid != tc.pgid || pr.comm != tc.comm || !pr.grouped {
				t.Errorf("parseStat(%q) = %+v", tc.stat, pr)
			}
		})
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("4467 (rm) R 4466 4466 301 0 -1 4194560"))
	f.Add([]byte("12408 (true) X 0 -1 -1 0 -1"))
	f.Add([]byte("1 ()) S 0 1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pr, err := parseStat(b)
		if err == nil && !bytes.Contains(b, []byte("("+pr.comm+")")) {
			t.Fatalf("parseStat(%q): command %q is not what the parentheses hold", b, pr.comm)
		}
	})
}

// TestActorOfExited: a process known only from the proc connector, gone
// before it was read, is charged to its parent's process group: the
// group copied at fork is stale when the parent moved to a group of its
// own after (setpgid makes no connector event) and unknown when the
// parent was not in the table. After setsid it is its own group.
func TestActorOfExited(t *testing.T) {
	start := func() int {
		shell := exec.Command("sleep", "60")
		shell.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := shell.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = shell.Process.Kill(); _ = shell.Wait() })
		return shell.Process.Pid
	}
	parent, unseen := start(), start()
	self := os.Getpid()

	// PIDs above the largest pid_max: never in /proc.
	const gone, goneChild, leader, orphan = 1<<22 + 1, 1<<22 + 2, 1<<22 + 3, 1<<22 + 6
	p := newProcs()
	p.get(self) // the test runner, in the table as the parent of parent
	p.apply(procEvent{what: procFork, pid: parent, tgid: parent, parentTGID: self})
	p.apply(procEvent{what: procExec, pid: parent, tgid: parent})
	p.apply(procEvent{what: procFork, pid: gone, tgid: gone, parentTGID: parent})
	p.apply(procEvent{what: procFork, pid: goneChild, tgid: goneChild, parentTGID: gone})
	p.apply(procEvent{what: procFork, pid: leader, tgid: leader, parentTGID: parent})
	p.apply(procEvent{what: procSID, pid: leader, tgid: leader})
	p.apply(procEvent{what: procFork, pid: 1<<22 + 4, tgid: 1<<22 + 4, parentTGID: 1<<22 + 5}) // parent unknown
	p.apply(procEvent{what: procFork, pid: orphan, tgid: orphan, parentTGID: unseen})          // parent not in the table

	for _, tc := range []struct {
		pid, group int
	}{
		{gone, parent},
		{goneChild, parent},
		{leader, leader},
		{1<<22 + 4, 1<<22 + 4},
		{orphan, unseen},
	} {
		if a := p.actor(tc.pid); a.Group != tc.group || a.Own {
			t.Errorf("actor(%d) = group %d, own %v; want group %d", tc.pid, a.Group, a.Own, tc.group)
		}
	}
}

// TestStopRunningThread: a process is stopped at once even when the
// thread the kernel would hand a process-wide signal to waits for the CPU
// the (real-time) event thread holds, while another of its threads runs
// on another CPU: the hold pins suspects to that CPU, so this is how an
// attack's worker may stand when it is stopped. The helper writes a byte
// at a time to a pipe from a thread on CPU Y, its main thread asleep on
// CPU X; this test holds CPU X at real-time priority, stops the helper,
// and checks that no byte comes after the stop, and that SIGCONT lets
// the helper go on.
func TestStopRunningThread(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs real-time priority (root)")
	}
	var own unix.CPUSet
	if err := unix.SchedGetaffinity(0, &own); err != nil {
		t.Fatal(err)
	}
	var cpus []int
	for c := 0; c < 1024 && len(cpus) < 2; c++ {
		if own.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) < 2 {
		t.Skip("needs two CPUs")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$", fmt.Sprintf("%d,%d", cpus[0], cpus[1]))
	cmd.Env = append(os.Environ(), "KALAJA_WATCH_HELPER=split-threads")
	cmd.Stdout = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var b [4096]byte
	if _, err := r.Read(b[:1]); err != nil { // its writer runs
		t.Fatal(err)
	}
	fd := int(r.Fd())
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	written := func() int { // what came since the last call
		n := 0
		for {
			m, err := unix.Read(fd, b[:])
			if m <= 0 || err != nil {
				return n
			}
			n += m
		}
	}

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var x unix.CPUSet
	x.Set(cpus[0])
	if err := unix.SchedSetaffinity(0, &x); err != nil {
		t.Fatal(err)
	}
	defer unix.SchedSetaffinity(0, &own)
	rt := func(policy, prio uint32) error {
		return unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: policy, Priority: prio}, 0)
	}
	if err := rt(unix.SCHED_FIFO, 10); err != nil {
		t.Skipf("real-time priority: %v", err)
	}
	// From here until normal priority is back, this thread holds CPU X.
	p := newProcs()
	stopped, stopErr := p.stop([]int{cmd.Process.Pid})
	start := time.Now()
	spin := func(d time.Duration) {
		for time.Since(start) < d {
		}
	}
	spin(10 * time.Millisecond)
	written()
	spin(40 * time.Millisecond)
	after := written()
	if err := rt(unix.SCHED_NORMAL, 0); err != nil {
		t.Fatal(err)
	}
	if stopErr != nil || len(stopped) != 1 {
		t.Fatalf("stop: %v, %v", stopped, stopErr)
	}
	if after > 0 {
		t.Errorf("the stopped process wrote %d bytes from 10 to 40 ms after its stop", after)
	}
	// An operator's kill -CONT resumes every thread: no stop is left
	// pending on one of them.
	if err := unix.Kill(cmd.Process.Pid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); written() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the process did not run on after SIGCONT")
		}
	}
}

// splitThreads is the helper of TestStopRunningThread: cpus is "X,Y". Its
// main thread sleeps on CPU X; another thread writes a byte to stdout
// every few microseconds on CPU Y.
func splitThreads(cpus string) error {
	var x, y int
	if _, err := fmt.Sscanf(cpus, "%d,%d", &x, &y); err != nil {
		return err
	}
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(x)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return err
	}
	errc := make(chan error)
	go func() {
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(y)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			errc <- err
			return
		}
		for {
			if _, err := unix.Write(1, []byte{1}); err != nil {
				errc <- err
				return
			}
			for start := time.Now(); time.Since(start) < 20*time.Microsecond; {
			}
		}
	}()
	return <-errc
}

// TestKinOf: the processes the table knows that run a process's own
// executable as its user are its kin; the process itself, this one and
// processes running another executable are not.
func TestKinOf(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "worker") // a copy: this process's own executable has no kin
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	start := func(path string) int {
		cmd := exec.Command(path, "-test.run=^$")
		cmd.Env = append(os.Environ(), "KALAJA_WATCH_HELPER=idle")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd.Process.Pid
	}
	w1, w2, other := start(exe), start(exe), start(os.Args[0])
	p := newProcs()
	a1 := p.actor(w1) // as an event of w1 would
	if a1.Exe == "" {
		t.Fatalf("the copied executable has no identity: %+v", a1)
	}
	if got := p.kinOf(a1); len(got) != 0 {
		t.Errorf("kin before any other worker acted: %v", got)
	}
	p.actor(w2)
	p.actor(other)
	if got := p.kinOf(a1); !slices.Equal(got, []int{w2}) {
		t.Errorf("kinOf(%d) = %v, want [%d]", w1, got, w2)
	}
	if got := p.kinOf(p.actor(other)); len(got) != 0 {
		t.Errorf("kinOf(a process running this test's executable) = %v, want none", got)
	}
}

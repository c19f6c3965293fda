package watcher

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/detect"
)

// TestHolder: a held process's threads go to the event thread's CPU,
// and get their own affinity back when the hold passes; the event thread
// is unpinned once nothing is held.
func TestHolder(t *testing.T) {
	now := time.Unix(1000, 0)
	sets := map[int]unix.CPUSet{}
	h := newHolder()
	h.now = func() time.Time { return now }
	h.set = func(tid int, s *unix.CPUSet) error { sets[tid] = *s; return nil }
	// Affinities are set through the fake but read for real: the suspect
	// is a child process, so that reading its affinity succeeds, and its
	// ID is never that of a thread of this process, which the holder
	// pins and unpins as the event thread (each subtest's goroutine may
	// run on another thread).
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	pid := child.Process.Pid
	h.tasks = func(int) []int { return []int{pid} }

	tests := []struct {
		name     string
		advance  time.Duration
		hold     []int
		force    bool
		wantHeld int
		pinned   bool
	}{
		{"first suspect pins", 0, []int{pid}, false, 1, true},
		{"PID 1 is never held", 0, []int{1}, false, 1, true},
		{"still held before the hold passes", holdFor / 2, nil, false, 1, true},
		{"held again extends", 0, []int{pid}, false, 1, true},
		{"released after the hold", holdFor + time.Millisecond, nil, false, 0, false},
		{"forced release", 0, []int{pid}, true, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now = now.Add(tt.advance)
			for _, p := range tt.hold {
				h.hold(p)
			}
			if tt.advance > 0 || tt.force {
				h.expire(tt.force)
			}
			if len(h.held) != tt.wantHeld {
				t.Errorf("%d held, want %d", len(h.held), tt.wantHeld)
			}
			if pinned := h.cpu >= 0; pinned != tt.pinned {
				t.Errorf("event thread pinned %v, want %v", pinned, tt.pinned)
			}
			if tt.pinned {
				if s := sets[pid]; s.Count() != 1 || !s.IsSet(h.cpu) {
					t.Errorf("suspect's affinity %v, want only CPU %d", s, h.cpu)
				}
			}
		})
	}
}

// TestHoldReleasesInherited: a process forked by a held one inherits the
// pin; when the hold passes it gets the held process's own affinity back,
// so that a benign program held for a moment does not leave what it
// started on one CPU.
func TestHoldReleasesInherited(t *testing.T) {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil || all.Count() < 2 {
		t.Skip("needs two CPUs")
	}
	runtime.LockOSThread() // hold pins the calling thread, as the event thread
	defer runtime.UnlockOSThread()
	cmd := exec.Command("sh", "-c", "read x; sleep 60 & echo $!; wait")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	h := newHolder()
	h.hold(cmd.Process.Pid)
	if h.cpu < 0 {
		t.Skip("the thread could not be pinned")
	}
	fmt.Fprintln(in, "go")
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("child pid %q: %v", line, err)
	}
	defer func() { _ = syscall.Kill(child, syscall.SIGKILL) }()
	var cur unix.CPUSet
	if err := unix.SchedGetaffinity(child, &cur); err != nil || cur.Count() != 1 {
		t.Fatalf("the child started while held has affinity %v (%v), want the one held CPU", cur, err)
	}
	h.expire(true)
	if err := unix.SchedGetaffinity(child, &cur); err != nil || cur != all {
		t.Errorf("after the hold the child's affinity is %v (%v), want the held process's own %v", cur, err, all)
	}
	if err := unix.SchedGetaffinity(cmd.Process.Pid, &cur); err != nil || cur != all {
		t.Errorf("after the hold the held process's affinity is %v (%v), want %v", cur, err, all)
	}
}

// TestHoldFollowsEventThread: when the runtime has moved the event
// goroutine to another thread, the next hold pins that thread and gives
// the one it left its own affinity back.
func TestHoldFollowsEventThread(t *testing.T) {
	sets := map[int]unix.CPUSet{}
	h := newHolder()
	h.set = func(tid int, s *unix.CPUSet) error {
		if tid == 0 {
			tid = unix.Gettid()
		}
		sets[tid] = *s
		return nil
	}
	self := unix.Getpid()
	h.tasks = func(int) []int { return nil }
	done := make(chan struct{})
	defer close(done)
	holdOn := func() int { // holds from a thread of its own, kept till the end; returns it
		tid := make(chan int)
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			h.hold(self)
			tid <- unix.Gettid()
			<-done
		}()
		return <-tid
	}
	first := holdOn()
	if h.cpu < 0 {
		t.Skip("the thread could not be pinned")
	}
	var one unix.CPUSet
	one.Set(h.cpu)
	if sets[first] != one || h.self != first {
		t.Fatalf("the first event thread %d has affinity %v (holder's %d), want %v", first, sets[first], h.self, one)
	}
	second := holdOn()
	if sets[second] != one || h.self != second {
		t.Errorf("the thread the goroutine moved to, %d, has affinity %v (holder's %d), want %v", second, sets[second], h.self, one)
	}
	if sets[first] != h.own {
		t.Errorf("the thread it left has affinity %v, want its own %v", sets[first], h.own)
	}
}

// TestSuspect: a program that replaces files one by one (git switching
// commits: each file deleted, then written anew) raises its score and has
// it taken back file after file, and is never held; one damaged file, or a
// second deletion, holds the process.
func TestSuspect(t *testing.T) {
	analyze := func(b []byte) *detect.Sample {
		var blocks [][]byte
		for _, off := range detect.Offsets(int64(len(b))) {
			blocks = append(blocks, b[off:min(int64(len(b)), off+detect.BlockSize)])
		}
		s := detect.Analyze(int64(len(b)), blocks)
		return &s
	}
	text := func(i int) *detect.Sample {
		return analyze([]byte(strings.Repeat(fmt.Sprintf("Revision %d of the council's budget for the water works. ", i), 200)))
	}
	noise := make([]byte, 9000)
	if _, err := rand.Read(noise); err != nil {
		t.Fatal(err)
	}
	type step struct {
		op       detect.Op
		old, new *detect.Sample
	}
	replace := []step{{detect.Delete, text(1), nil}, {detect.Create, nil, nil}, {detect.Write, nil, text(2)}}
	tests := []struct {
		name  string
		file  []step // what happens to each file in turn
		files int
		held  int // the first file at whose events the process is held, 0 for never
	}{
		{"files replaced one by one", replace, 20, 0},
		{"a file deleted", []step{{detect.Delete, text(1), nil}}, 1, 0},
		{"files deleted", []step{{detect.Delete, text(1), nil}}, 5, 2},
		{"files encrypted in place", []step{{detect.Write, text(1), analyze(noise)}}, 5, 1},
		{"files cut to nothing", []step{{detect.Write, text(1), analyze(nil)}}, 5, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := detect.New(detect.DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			a := detect.Actor{PID: 4000, Group: 4000, UID: 1000, Command: "worker"}
			now := time.Date(2022, 7, 15, 10, 0, 0, 0, time.UTC)
			held := 0
			for i := 1; i <= tt.files && held == 0; i++ {
				p := fmt.Sprintf("/srv/data/file%02d.txt", i)
				for _, s := range tt.file {
					now = now.Add(time.Millisecond)
					before := d.Raised()
					if al := d.Observe(detect.Event{Time: now, Actor: a, Op: s.op, Path: p, Old: s.old, New: s.new}); al != nil {
						t.Fatalf("file %d: alert before a hold: %+v", i, al.Signals)
					}
					if suspect(d, a, before) && held == 0 {
						held = i
					}
				}
			}
			if held != tt.held {
				t.Errorf("held at file %d, want %d", held, tt.held)
			}
		})
	}
}

// TestHoldKin: once a suspect is held, the processes of its user running
// its executable are held at their events, until the hold passes; a
// system executable (Exe empty) or an unknown user has no kin.
func TestHoldKin(t *testing.T) {
	now := time.Unix(1000, 0)
	h := newHolder()
	h.now = func() time.Time { return now }
	worker := detect.Actor{PID: 4000, UID: 1000, Exe: "803:1a2b"}
	tests := []struct {
		name    string
		advance time.Duration
		suspect *detect.Actor
		newKin  bool // holdKin's answer
		a       detect.Actor
		held    bool
	}{
		{"nothing held yet", 0, nil, false, worker, false},
		{"a system executable has no kin", 0, &detect.Actor{PID: 10, UID: 1000}, false, detect.Actor{PID: 11, UID: 1000}, false},
		{"an unknown user has no kin", 0, &detect.Actor{PID: 10, UID: -1, Exe: "803:1a2b"}, false, detect.Actor{PID: 11, UID: -1, Exe: "803:1a2b"}, false},
		{"a suspect's worker", 0, &detect.Actor{PID: 10, UID: 1000, Exe: "803:1a2b"}, true, worker, true},
		{"held again: not new", 0, &detect.Actor{PID: 12, UID: 1000, Exe: "803:1a2b"}, false, worker, true},
		{"another user's process", 0, nil, false, detect.Actor{PID: 13, UID: 1001, Exe: "803:1a2b"}, false},
		{"another executable", 0, nil, false, detect.Actor{PID: 14, UID: 1000, Exe: "803:ffff"}, false},
		{"within the hold", holdFor - time.Millisecond, nil, false, worker, true},
		{"after the hold", 2 * time.Millisecond, nil, false, worker, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now = now.Add(tt.advance)
			if tt.advance > 0 {
				h.expire(false)
			}
			if tt.suspect != nil {
				if got := h.holdKin(*tt.suspect); got != tt.newKin {
					t.Errorf("holdKin(%+v) = %v, want %v", *tt.suspect, got, tt.newKin)
				}
			}
			if got := h.kinHeld(tt.a); got != tt.held {
				t.Errorf("kinHeld(%+v) = %v, want %v", tt.a, got, tt.held)
			}
		})
	}
}

package fswatch

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSources runs real file operations in another process under each
// backend and checks the events that come out.
func TestWatchSources(t *testing.T) {
	for _, backend := range []string{"fanotify", "inotify"} {
		t.Run(backend, func(t *testing.T) {
			dir := t.TempDir()
			src, err := Open(backend, []string{dir}, Options{Devices: []string{}})
			if err != nil {
				if backend == "fanotify" {
					t.Skipf("fanotify not available: %v", err)
				}
				t.Fatal(err)
			}
			events := collect(t, src, 1000)
			outside := t.TempDir()
			script := `echo one > a.txt; mv a.txt b.txt; truncate -s 0 b.txt; mkdir sub; echo two > sub/c.txt; rm b.txt; echo x > "$OUT/elsewhere"; touch end`
			cmd := exec.Command("sh", "-c", script)
			cmd.Dir, cmd.Env = dir, append(os.Environ(), "OUT="+outside)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			type seen struct {
				op   Op
				path string
			}
			var got []seen
			deadline := time.After(60 * time.Second)
		loop:
			for {
				select {
				case e := <-events:
					rel, _ := filepath.Rel(dir, e.Path)
					if e.OldPath != "" {
						old, _ := filepath.Rel(dir, e.OldPath)
						rel = old + ">" + rel
					}
					got = append(got, seen{e.Op, rel})
					if backend == "fanotify" && e.PID == 0 {
						t.Errorf("fanotify event without PID: %+v", e)
					}
					if rel == "end" {
						break loop
					}
				case <-deadline:
					t.Fatalf("no event for end within a minute; got %v", got)
				}
			}
			if !slices.Contains(got, seen{Modify, "b.txt"}) && !slices.Contains(got, seen{Write, "b.txt"}) {
				t.Errorf("no modify or write of b.txt (truncated) in %v", got)
			}
			for _, want := range []seen{{Create, "a.txt"}, {Write, "a.txt"}, {Rename, "a.txt>b.txt"},
				{Create, "sub"}, {Write, "sub/c.txt"}, {Delete, "b.txt"}} {
				if !slices.Contains(got, want) {
					t.Errorf("no %v %s in %v", want.op, want.path, got)
				}
			}
			for _, s := range got {
				if filepath.IsAbs(s.path) || s.path == "../"+filepath.Base(outside)+"/elsewhere" {
					t.Errorf("event outside the watched folder: %v", s)
				}
			}
		})
	}
}

// TestRealtimeForNews: the first event after a quiet spell is handled at
// real-time priority, and so is every batch for news after it; then a
// run of calm batches is handled at normal priority, until the handler
// asks to hurry.
func TestRealtimeForNews(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("real-time priority needs root")
	}
	dir := t.TempDir()
	src, err := Open("fanotify", []string{dir}, Options{Devices: []string{}, Realtime: true})
	if err != nil {
		t.Skipf("fanotify not available: %v", err)
	}
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	write := func(name string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(name), 0o644); err != nil {
			t.Error(err)
		}
	}
	type seen struct {
		policy uint32
		at     time.Time
	}
	policy := map[string]seen{} // file -> the thread's policy when its first event was handled, and when
	// The loop runs on this goroutine, kept on this thread so that the
	// policy read in the handler is the one the loop set: the runtime
	// moves an unlocked goroutine between threads, and priority follows
	// it only at the loop's next turn (TestPriorityFollows).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	paced := 0
	var normal string // the first paced file handled at normal priority
	err = src.Run(ctx, func(batch []Event) bool {
		if len(batch) == 0 && len(policy) == 0 {
			write("news") // after a wait in poll(2) that timed out
		}
		attr, err := unix.SchedGetAttr(0, 0)
		if err != nil {
			t.Error(err)
			cancel()
			return false
		}
		for _, e := range batch {
			name := filepath.Base(e.Path)
			if _, ok := policy[name]; ok || e.Path == dir {
				continue
			}
			policy[name] = seen{attr.Policy, time.Now()}
			switch {
			case name == "hurried":
				cancel()
			case attr.Policy == unix.SCHED_NORMAL && name != "news":
				normal = name
				write("hurried")
				return true
			default:
				paced++
				write(fmt.Sprint("paced-", paced))
				return false
			}
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := policy["news"]; p.policy != unix.SCHED_FIFO {
		t.Errorf("the first event after a quiet spell was handled under policy %d, want FIFO (%d)", p.policy, unix.SCHED_FIFO)
	}
	if normal == "" {
		t.Fatalf("no calm batch was handled at normal priority: %v", policy)
	}
	if d := policy[normal].at.Sub(policy["news"].at); d < news {
		t.Errorf("%s was handled at normal priority %v after the news, want at least %v", normal, d, news)
	}
	if p := policy["hurried"]; p.policy != unix.SCHED_FIFO {
		t.Errorf("the batch after a hurry was handled under policy %d, want FIFO (%d)", p.policy, unix.SCHED_FIFO)
	}
}

// TestPacer checks the waits between reads: gap after a quiet spell,
// doubling with each calm batch in a row until it stays at maxGap; and
// events read as they come for news after the first events of a quiet
// spell and for linger after a score rose, neither cutting the other
// short.
func TestPacer(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var p pacer
	want := gap
	for i := range 10 {
		if got := p.calmBatch(); got != want {
			t.Fatalf("calm batch %d: wait %v, want %v", i, got, want)
		}
		want = min(2*want, maxGap)
	}
	p.reset()
	if got := p.wait(); got != gap {
		t.Errorf("after a quiet spell: wait %v, want %v", got, gap)
	}
	tests := []struct {
		name  string
		set   func(p *pacer)
		at    time.Duration // after t0
		eager bool
	}{
		{"nothing happened", func(*pacer) {}, 0, false},
		{"within linger of a rise", func(p *pacer) { p.rose(t0) }, linger - time.Millisecond, true},
		{"after linger of a rise", func(p *pacer) { p.rose(t0) }, linger, false},
		{"within news", func(p *pacer) { p.news(t0) }, news - time.Millisecond, true},
		{"after news", func(p *pacer) { p.news(t0) }, news, false},
		{"a rise does not cut news short", func(p *pacer) { p.news(t0); p.rose(t0) }, news - time.Millisecond, true},
		{"a rise late in news extends it", func(p *pacer) { p.news(t0); p.rose(t0.Add(news)) }, news + linger - time.Millisecond, true},
	}
	for _, tt := range tests {
		var p pacer
		p.calm = 2
		tt.set(&p)
		if got := p.eagerAt(t0.Add(tt.at)); got != tt.eager {
			t.Errorf("%s: read as they come %v, want %v", tt.name, got, tt.eager)
		}
		if tt.name != "nothing happened" && p.wait() != gap {
			t.Errorf("%s: wait %v, want %v", tt.name, p.wait(), gap)
		}
	}
}

// TestFanotifyGuardExec checks that fanotify reports events in a guarded
// folder outside the roots, the rename of a folder above it, and the
// programs executed, naming Options.Exec.
func TestFanotifyGuardExec(t *testing.T) {
	root, top := t.TempDir(), t.TempDir()
	guard := filepath.Join(top, "repo")
	if err := os.Mkdir(guard, 0o700); err != nil {
		t.Fatal(err)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	exe, err := filepath.EvalSymlinks(sh)
	if err != nil {
		t.Fatal(err)
	}
	src, err := Open("fanotify", []string{root}, Options{Devices: []string{}, Guard: []string{guard}, Exec: exe})
	if err != nil {
		t.Skipf("fanotify not available: %v", err)
	}
	events := collect(t, src, 100000)
	cmd := exec.Command(exe, "-c", `echo x > "$G/pack"; mv "$G" "$G.old"; touch "$R/end"`)
	cmd.Env = append(os.Environ(), "G="+guard, "R="+root)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var execPID, writePID int
	moved := false
	deadline := time.After(60 * time.Second)
	for {
		select {
		case e := <-events:
			switch {
			case e.Op == Exec && e.Path == exe && e.PID == cmd.Process.Pid:
				execPID = e.PID
			case e.Op == Write && e.Path == filepath.Join(guard, "pack"):
				writePID = e.PID
			case e.Op == Rename && e.OldPath == guard && e.Dir:
				moved = true
			case e.Path == filepath.Join(root, "end"):
				if execPID == 0 || writePID != cmd.Process.Pid || !moved {
					t.Fatalf("exec by %d, write in the guarded folder by %d (want %d), folder moved %v", execPID, writePID, cmd.Process.Pid, moved)
				}
				return
			}
		case <-deadline:
			t.Fatal("no event for end within a minute")
		}
	}
}

// collect runs src until the test ends, and returns the channel its events
// arrive on (room for n). At the end src is stopped, a Run error fails the
// test, and src is closed.
func collect(t *testing.T, src Source, n int) <-chan Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan Event, n)
	done := make(chan error, 1)
	go func() {
		done <- src.Run(ctx, func(b []Event) bool {
			for _, e := range b {
				events <- e
			}
			return false
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		src.Close()
	})
	return events
}

// TestPriorityFollows: when the runtime moves the loop's goroutine to
// another thread, real-time priority moves with it, the thread it left
// goes back to normal, and a program the loop's thread starts does not
// inherit real-time priority.
func TestPriorityFollows(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("real-time priority needs root")
	}
	policy := func(tid int) uint32 {
		t.Helper()
		attr, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			t.Fatalf("policy of thread %d: %v", tid, err)
		}
		return attr.Policy
	}
	var p priority
	first := make(chan int)
	done := make(chan struct{})
	defer close(done)
	go func() { // the thread the loop ran on first
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := p.permit(); err != nil {
			t.Errorf("real-time priority: %v", err)
			first <- 0
			return
		}
		p.raise(0)
		first <- gettid()
		<-done
	}()
	left := <-first
	if left == 0 {
		return
	}
	if got := policy(left); got != unix.SCHED_FIFO {
		t.Fatalf("raised thread has policy %d, want FIFO (%d)", got, unix.SCHED_FIFO)
	}

	runtime.LockOSThread() // the thread the runtime moved the loop to
	defer runtime.UnlockOSThread()
	p.follow()
	if got := policy(left); got != unix.SCHED_NORMAL {
		t.Errorf("the thread the loop left has policy %d, want normal (%d)", got, unix.SCHED_NORMAL)
	}
	if got := policy(gettid()); got != unix.SCHED_FIFO {
		t.Errorf("the thread the loop moved to has policy %d, want FIFO (%d)", got, unix.SCHED_FIFO)
	}
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child := policy(cmd.Process.Pid)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if child != unix.SCHED_NORMAL {
		t.Errorf("a program started from the real-time thread has policy %d, want normal (%d)", child, unix.SCHED_NORMAL)
	}
	p.lower()
	if got := policy(gettid()); got != unix.SCHED_NORMAL {
		t.Errorf("after lower the thread has policy %d, want normal (%d)", got, unix.SCHED_NORMAL)
	}
}

package fswatch

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestThrottle drives a throttle through a scripted series of batches and
// checks what it passes on and when it mutes and unmutes files.
func TestThrottle(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	type step struct {
		at      time.Duration // since t0
		batch   []Event       // nil: release instead of filter
		pass    []Event
		actions []string // mute and unmute calls made by the step, in order
	}
	mod := func(p string) Event { return Event{Op: Modify, Path: p, PID: 7} }
	wr := func(p string) Event { return Event{Op: Write, Path: p, PID: 7} }
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"second modify in a window mutes, the end unmutes", []step{
			{0, []Event{mod("a")}, []Event{mod("a")}, nil},
			{time.Millisecond, []Event{mod("a"), mod("a")}, nil, []string{"mute a"}},
			{50 * time.Millisecond, []Event{mod("a")}, nil, nil},
			{modifyEvery, []Event{mod("a")}, []Event{mod("a")}, []string{"unmute a"}},
		}},
		{"one batch with both", []step{
			{0, []Event{mod("a"), mod("a"), mod("b")}, []Event{mod("a"), mod("b")}, []string{"mute a"}},
		}},
		{"other events pass", []step{
			{0, []Event{mod("a"), {Op: Create, Path: "a"}, mod("a"), {Op: Delete, Path: "a"}}, []Event{mod("a"), {Op: Create, Path: "a"}, {Op: Delete, Path: "a"}}, []string{"mute a"}},
		}},
		{"a close ends the window", []step{
			{0, []Event{mod("a"), mod("a")}, []Event{mod("a")}, []string{"mute a"}},
			{time.Millisecond, []Event{wr("a")}, []Event{wr("a")}, []string{"unmute a"}},
			{2 * time.Millisecond, []Event{mod("a")}, []Event{mod("a")}, nil},
			{modifyEvery, []Event{mod("b")}, []Event{mod("b")}, nil}, // the closed window's end unmutes nothing again
			{modifyEvery + time.Millisecond, []Event{mod("a")}, nil, []string{"mute a"}},
		}},
		{"windows end in order", []step{
			{0, []Event{mod("a"), mod("a")}, []Event{mod("a")}, []string{"mute a"}},
			{10 * time.Millisecond, []Event{mod("b"), mod("b")}, []Event{mod("b")}, []string{"mute b"}},
			{modifyEvery + 5*time.Millisecond, []Event{mod("a"), mod("b")}, []Event{mod("a")}, []string{"unmute a"}},
			{modifyEvery + 10*time.Millisecond, []Event{mod("b")}, []Event{mod("b")}, []string{"unmute b"}},
		}},
		{"release unmutes all", []step{
			{0, []Event{mod("a"), mod("a"), mod("b"), mod("b")}, []Event{mod("a"), mod("b")}, []string{"mute a", "mute b"}},
			{time.Millisecond, nil, nil, []string{"unmute a", "unmute b"}},
			{2 * time.Millisecond, []Event{mod("a")}, []Event{mod("a")}, nil},
		}},
		{"a file that cannot be muted is still throttled", []step{
			{0, []Event{mod("gone"), mod("gone")}, []Event{mod("gone")}, []string{"mute gone"}},
			{time.Millisecond, []Event{mod("gone")}, nil, nil},
			{modifyEvery, []Event{mod("gone")}, []Event{mod("gone")}, nil},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var actions []string
			thr := newThrottle(func(p string) func() {
				actions = append(actions, "mute "+p)
				if p == "gone" {
					return nil
				}
				return func() { actions = append(actions, "unmute "+p) }
			})
			for i, s := range tc.steps {
				actions = nil
				var got []Event
				if s.batch == nil {
					thr.release()
				} else {
					got = thr.filter(slices.Clone(s.batch), t0.Add(s.at))
				}
				if !slices.Equal(got, s.pass) {
					t.Errorf("step %d: passed %v, want %v", i, got, s.pass)
				}
				if !slices.Equal(actions, s.actions) {
					t.Errorf("step %d: did %q, want %q", i, actions, s.actions)
				}
			}
		})
	}
}

// ignoreMarks returns the inodes that fanotify group fd holds an ignore
// mark on, from /proc/self/fdinfo. It may be called from any goroutine.
func ignoreMarks(t *testing.T, fd uintptr) map[uint64]bool {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
	if err != nil {
		t.Error(err)
		return nil
	}
	defer f.Close()
	marks := map[uint64]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ino, ignored uint64
		for _, field := range strings.Fields(sc.Text()) {
			k, v, _ := strings.Cut(field, ":")
			switch k {
			case "ino":
				fmt.Sscanf(v, "%x", &ino)
			case "ignored_mask":
				fmt.Sscanf(v, "%x", &ignored)
			}
		}
		if ino != 0 && ignored&unix.FAN_MODIFY != 0 {
			marks[ino] = true
		}
	}
	return marks
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func openFanotifyForTest(t *testing.T, dir string) *fanotify {
	t.Helper()
	src, err := Open("fanotify", []string{dir}, Options{Devices: []string{}})
	if err != nil {
		t.Skipf("fanotify not available: %v", err)
	}
	t.Cleanup(func() { src.Close() })
	return src.(*fanotify)
}

// TestMuteFollowsTheFile is the attack on muting: a file muted, then
// moved, must be unmuted under its new name, or a later truncation of it
// would never be reported. Then it checks that the kernel does drop the
// Modify events of a muted file, and only while it is muted.
func TestMuteFollowsTheFile(t *testing.T) {
	dir := t.TempDir()
	s := openFanotifyForTest(t, dir)
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := os.WriteFile(a, []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}
	ino := inode(t, a)
	unmute := s.mute(a)
	if unmute == nil {
		t.Fatal("mute failed")
	}
	if !ignoreMarks(t, s.f.Fd())[ino] {
		t.Fatalf("no ignore mark on the muted file's inode %x", ino)
	}
	if err := os.Rename(a, b); err != nil {
		t.Fatal(err)
	}
	unmute()
	if ignoreMarks(t, s.f.Fd())[ino] {
		t.Fatalf("the ignore mark stayed on the inode %x after it moved and was unmuted", ino)
	}

	// Through the kernel: truncate(2) of the file, which no close follows,
	// first while it is muted, then after; each followed by a marker file.
	unmute = s.mute(b)
	truncate := func(size int64, marker string) {
		if err := unix.Truncate(b, size); err != nil {
			t.Error(err)
		}
		if err := os.WriteFile(filepath.Join(dir, marker), nil, 0o644); err != nil {
			t.Error(err)
		}
	}
	truncate(1, "b.muted")
	var got []string
	moved := false // the setup's events, up to the rename, are skipped
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.Run(ctx, func(batch []Event) bool {
		for _, e := range batch {
			if !moved {
				moved = e.Op == Rename && e.Path == b
				continue
			}
			got = append(got, e.Op.String()+" "+filepath.Base(e.Path))
			switch filepath.Base(e.Path) {
			case "b.muted":
				if e.Op == Create {
					unmute()
					truncate(0, "b.unmuted")
				}
			case "b.unmuted":
				cancel()
			}
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"create b.muted", "write b.muted", "modify b", "create b.unmuted"}
	if !slices.Equal(got[:min(len(got), len(want))], want) {
		t.Errorf("events %q, want %q first", got, want)
	}
}

// TestThrottleWriter has another process write a file line by line,
// keeping it open, and checks that its Modify events are throttled, that
// the kernel was told to drop them meanwhile, and that no mark is left
// once the file is closed.
func TestThrottleWriter(t *testing.T) {
	dir := t.TempDir()
	s := openFanotifyForTest(t, dir)
	f := filepath.Join(dir, "log")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ino := inode(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	writer := exec.Command("sh", "-c", `exec 3>"$0"; i=0; while [ $i -lt 150 ]; do echo line $i >&3; sleep 0.002; i=$((i+1)); done`, f)
	var start time.Time
	var took time.Duration
	modifies := 0
	// The handler is not called for a batch of dropped events only, so
	// the marks are watched from here.
	var muted atomic.Bool
	go func() {
		for ctx.Err() == nil && !muted.Load() {
			muted.Store(ignoreMarks(t, s.f.Fd())[ino])
			time.Sleep(time.Millisecond)
		}
	}()
	err := s.Run(ctx, func(batch []Event) bool {
		if start.IsZero() {
			start = time.Now()
			if err := writer.Start(); err != nil {
				t.Error(err)
				cancel()
			}
		}
		for _, e := range batch {
			if e.Path != f || e.PID != writer.Process.Pid {
				continue // the setup's own events
			}
			switch e.Op {
			case Modify:
				modifies++
			case Write:
				took = time.Since(start)
				if ignoreMarks(t, s.f.Fd())[ino] {
					t.Error("the ignore mark stayed after the file was closed")
				}
				cancel()
			}
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := writer.Wait(); err != nil {
		t.Fatal(err)
	}
	if took == 0 {
		t.Fatal("the writer's close was not seen")
	}
	// A window ends after modifyEvery, or sooner when the loop, having
	// read nothing for linger, waits in poll(2).
	if most := int(took/min(modifyEvery, linger)) + 2; modifies < 1 || modifies > most {
		t.Errorf("%d Modify events in %v, want 1 to %d", modifies, took, most)
	}
	if !muted.Load() {
		t.Error("the file was never muted in the kernel")
	}
}

package watcher

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
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
		if group, _, _, _, own := p.actor(tc.pid); group != tc.group || own {
			t.Errorf("actor(%d) = group %d, own %v; want group %d", tc.pid, group, own, tc.group)
		}
	}
}

package watcher

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// TestSiblings: the processes of one user that run the executable of a
// stopped one are its siblings, found first among the processes the proc
// connector reported, then those it did not from /proc; those of another
// user, or running another executable, are not.
func TestSiblings(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the proc connector, and a process of another user")
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep")
	}
	dir, err := os.MkdirTemp("", "siblings") // a program of its own, not installed with the system,
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // that another user may run
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "worker")
	copyFile(t, sleep, exe)
	start := func(path string, attr *syscall.SysProcAttr) int {
		cmd := exec.Command(path, "60")
		cmd.SysProcAttr = attr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd.Process.Pid
	}
	early := start(exe, &syscall.SysProcAttr{Setsid: true}) // before the watcher listened
	p := newProcs()
	if err := p.listen(); err != nil {
		t.Skipf("no proc connector: %v", err)
	}
	defer p.close()
	first := start(exe, &syscall.SysProcAttr{Setsid: true})
	var want []int
	for range 3 {
		want = append(want, start(exe, &syscall.SysProcAttr{Setsid: true}))
	}
	other := start(exe, &syscall.SysProcAttr{Setsid: true, Credential: &syscall.Credential{Uid: 65534, Gid: 65534}})
	installed := start(sleep, &syscall.SysProcAttr{Setsid: true})

	var batches [][]int
	p.siblings([]int{first}, func(pids []int) { batches = append(batches, slices.Clone(pids)) })
	if len(batches) == 0 {
		t.Fatalf("no sibling of %d found, want %v", first, want)
	}
	slices.Sort(batches[0])
	if !slices.Equal(batches[0], want) {
		t.Errorf("first batch %v, want the processes the proc connector reported, %v", batches[0], want)
	}
	if len(batches) != 2 || !slices.Equal(batches[1], []int{early}) {
		t.Errorf("batches %v, want the one started before the watcher listened, %d, found second, from /proc", batches, early)
	}
	for _, b := range batches {
		if slices.Contains(b, other) || slices.Contains(b, installed) || slices.Contains(b, first) {
			t.Errorf("batch %v holds %d (another user), %d (an installed program) or %d (the stopped one)", b, other, installed, first)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

package recovery

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// TestHolders stops a real process that holds a file open under a folder:
// it is a holder once stopped, not before, and not for another folder.
func TestHolders(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep command")
	}
	dir := t.TempDir()
	held, err := os.Create(filepath.Join(dir, "held.docx"))
	must(t, err)
	defer held.Close()
	cmd := exec.Command(sleep, "1000")
	cmd.ExtraFiles = []*os.File{held}
	must(t, cmd.Start())
	pid := cmd.Process.Pid
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	mine := func(hs []Holder) []Holder {
		return slices.DeleteFunc(hs, func(h Holder) bool { return h.PID != pid })
	}
	hs, err := Holders([]string{dir})
	must(t, err)
	if len(mine(hs)) != 0 {
		t.Errorf("a running process is listed: %+v", hs)
	}
	must(t, unix.Kill(pid, unix.SIGSTOP))
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WUNTRACED, nil); err != nil || !ws.Stopped() {
		t.Fatalf("wait for the stop: %v, %v", err, ws)
	}
	hs, err = Holders([]string{filepath.Join(dir, "other"), dir})
	must(t, err)
	hs = mine(hs)
	if len(hs) != 1 || hs[0].Command != "sleep" || hs[0].File != held.Name() || hs[0].User == "" {
		t.Errorf("holders %+v, want sleep holding %s", hs, held.Name())
	}
	hs, err = Holders([]string{filepath.Join(dir, "other")})
	must(t, err)
	if len(mine(hs)) != 0 {
		t.Errorf("listed for another folder: %+v", hs)
	}
}

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		line  string
		comm  string
		state byte
		ok    bool
	}{
		{"42 (sleep) T 1 42 42 0 -1", "sleep", 'T', true},
		{"42 (a) T (b) S 1 2", "a) T (b", 'S', true},
		{"42 (x y) R 1", "x y", 'R', true},
		{"42 (sleep)", "", 0, false},
		{"42 sleep T", "", 0, false},
		{"42 )( T", "", 0, false},
		{"", "", 0, false},
	} {
		comm, state, ok := parseStat([]byte(tc.line))
		if comm != tc.comm || state != tc.state || ok != tc.ok {
			t.Errorf("parseStat(%q) = %q, %q, %v; want %q, %q, %v", tc.line, comm, state, ok, tc.comm, tc.state, tc.ok)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("42 (sleep) T 1 42 42 0 -1"))
	f.Add([]byte("1 ((x)) S"))
	f.Fuzz(func(t *testing.T, b []byte) {
		comm, state, ok := parseStat(b)
		if ok && (state == 0 && len(b) == 0 || len(comm) > len(b)) {
			t.Errorf("parseStat(%q) = %q, %q", b, comm, state)
		}
	})
}

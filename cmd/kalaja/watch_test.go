package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/detect"
)

func TestWatchHelp(t *testing.T) {
	e := newEnv(t)
	r := e.must("watch", "--help")
	for _, want := range []string{"--no-stop", "--alert-log", "--webhook", "--syslog", "--snapshot", "--config",
		"--threshold", "--weight", "--backend", "SIGSTOP", "inotify", "fanotify", "docs/design.md",
		"--heartbeat", "kalaja serve", "local or S3"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("watch --help does not mention %s", want)
		}
	}
}

func TestWatchUsageErrors(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"weights": {"entropie": 3}}`), 0o644)
	for _, args := range [][]string{
		{"watch"},
		{"watch", "--weight", "entropy", dir},
		{"watch", "--weight", "nosuch=1", dir},
		{"watch", "--config", bad, dir},
		{"watch", "--threshold", "-1", dir},
		{"watch", "--heartbeat", "-1s", dir},
		{"watch", "--heartbeat", "500ms", dir},
		{"watch", "--heartbeat", "25h", dir},
	} {
		if r := e.run(args...); r.code != exitUsage {
			t.Errorf("kalaja %v: exit %d, want %d\n%s", args, r.code, exitUsage, r.stderr)
		}
	}
	// A server repository without the host's token: nothing could be sent.
	srv := envAt(t, "https://127.0.0.1:1")
	if r := srv.run("watch", "--backend", "inotify", dir); r.code != exitUsage || !strings.Contains(r.stderr, "KALAJA_SERVER_TOKEN") {
		t.Errorf("watch of a server repository without a token: exit %d, want %d\n%s", r.code, exitUsage, r.stderr)
	}
}

// watchRun is a running kalaja watch with its output as lines.
type watchRun struct {
	cmd    *exec.Cmd
	stdout chan string
	stderr chan string
}

func startWatch(t *testing.T, e *testEnv, args ...string) *watchRun {
	t.Helper()
	cmd := exec.Command(kalajaBin, append([]string{"watch"}, args...)...)
	cmd.Env = append(os.Environ(), e.vars...)
	out, _ := cmd.StdoutPipe()
	errp, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &watchRun{cmd: cmd, stdout: lines(out), stderr: lines(errp)}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return w
}

func lines(r io.Reader) chan string {
	c := make(chan string, 1000)
	go func() {
		s := bufio.NewScanner(r)
		s.Buffer(nil, 1<<20)
		for s.Scan() {
			c <- s.Text()
		}
		close(c)
	}()
	return c
}

// waitLine waits (generously) for a line containing want, returning it.
func waitLine(t *testing.T, c chan string, want string) string {
	t.Helper()
	deadline := time.After(90 * time.Second)
	for {
		select {
		case l, ok := <-c:
			if !ok {
				t.Fatalf("output ended before %q", want)
			}
			if strings.Contains(l, want) {
				return l
			}
		case <-deadline:
			t.Fatalf("no %q within 90s", want)
		}
	}
}

// writeVictims makes n text files under dir.
func writeVictims(t *testing.T, dir string, n int) {
	t.Helper()
	for i := range n {
		text := strings.Repeat(fmt.Sprintf("Register entry %d: parcel %d, owner on file.\n", i, i*31), 100)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("entry-%03d.txt", i)), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWatchStopsAttack runs kalaja watch as root against a shell script
// that overwrites files with random bytes, one head(1) per file: the
// script is stopped, the alert is printed and logged, and a protective
// snapshot is saved without the damaged files.
func TestWatchStopsAttack(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for fanotify")
	}
	e := newEnv(t)
	e.must("init")
	dir := t.TempDir()
	writeVictims(t, dir, 40)
	alertLog := filepath.Join(t.TempDir(), "alerts.jsonl")
	w := startWatch(t, e, "--alert-log", alertLog, "--snapshot", "--raw-devices", "", dir)
	waitLine(t, w.stderr, "msg=ready")

	attack := exec.Command("sh", "-c", `for f in *.txt; do head -c 4200 /dev/urandom > "$f"; sleep 0.01; done`)
	attack.Dir = dir
	attack.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := attack.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // the script and a stopped child of it
		syscall.Kill(-attack.Process.Pid, syscall.SIGKILL)
		attack.Wait()
	})

	var a detect.Alert
	if err := json.Unmarshal([]byte(waitLine(t, w.stdout, `"signals"`)), &a); err != nil {
		t.Fatal(err)
	}
	if !a.Stopped || len(a.Signals) == 0 || len(a.Files) == 0 {
		t.Errorf("alert %+v: want stopped, with signals and files", a)
	}
	found := false
	for _, p := range a.PIDs {
		found = found || p == attack.Process.Pid
	}
	if !found {
		t.Errorf("alert stopped %v, want the script %d among them", a.PIDs, attack.Process.Pid)
	}
	waitLine(t, w.stderr, "protective snapshot saved")
	if b, err := os.ReadFile(alertLog); err != nil || !strings.Contains(string(b), `"signals"`) {
		t.Errorf("alert log: %v %q", err, b)
	}
	var list []struct {
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal([]byte(e.must("snapshots", "--json").stdout), &list); err != nil || len(list) != 1 || len(list[0].Tags) == 0 {
		t.Errorf("snapshots after the alert: %+v (%v)", list, err)
	}
	w.cmd.Process.Signal(syscall.SIGINT)
	if err := w.cmd.Wait(); err != nil {
		t.Errorf("watch after SIGINT: %v", err)
	}
	if c, _ := filepath.Glob(filepath.Join(dir, "*kalaja-canary*")); len(c) != 0 {
		t.Errorf("canaries left behind: %v", c)
	}
}

// TestWatchReducedPowers: with inotify the watcher says it cannot stop
// anything, and still alerts.
func TestWatchReducedPowers(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	writeVictims(t, dir, 30)
	w := startWatch(t, e, "--backend", "inotify", "--raw-devices", "", dir)
	waitLine(t, w.stderr, "REDUCED POWERS")
	waitLine(t, w.stderr, "msg=ready")
	attack := exec.Command("sh", "-c", `for f in *.txt; do head -c 4200 /dev/urandom > "$f"; done`)
	attack.Dir = dir
	if out, err := attack.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var a detect.Alert
	if err := json.Unmarshal([]byte(waitLine(t, w.stdout, `"signals"`)), &a); err != nil {
		t.Fatal(err)
	}
	if a.PID != 0 || a.Stopped {
		t.Errorf("inotify alert names pid %d, stopped %v", a.PID, a.Stopped)
	}
}

// TestWatchGuardsOwnFiles: kalaja watch guards the local repository and
// the state directory by default. kalaja's own backup writing both raises
// nothing; rm deleting the repository's snapshots is an alert with
// backup_tamper, and rm's shell is stopped.
func TestWatchGuardsOwnFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for fanotify")
	}
	e := newEnv(t)
	e.must("init")
	dir := t.TempDir()
	writeVictims(t, dir, 20)
	w := startWatch(t, e, "--raw-devices", "", dir)
	waitLine(t, w.stderr, "msg=ready")
	e.must("backup", dir)
	e.must("backup", dir)
	e.must("snapshots")

	attack := exec.Command("sh", "-c", `rm "$KALAJA_REPOSITORY"/snapshots/*; sleep 60`)
	attack.Env = append(os.Environ(), e.vars...)
	attack.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := attack.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-attack.Process.Pid, syscall.SIGKILL)
		attack.Wait()
	})
	var a detect.Alert
	if err := json.Unmarshal([]byte(waitLine(t, w.stdout, `"signals"`)), &a); err != nil {
		t.Fatal(err)
	}
	if a.Group != attack.Process.Pid || len(a.Signals) == 0 || a.Signals[0].Signal != string(detect.BackupTamper) || !a.Stopped {
		t.Errorf("first alert %+v: want backup_tamper by the shell's group %d, stopped (kalaja's own backups raise nothing)", a, attack.Process.Pid)
	}
}

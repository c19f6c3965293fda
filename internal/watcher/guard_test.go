package watcher

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/kalaja/kalaja/internal/detect"
	"github.com/kalaja/kalaja/internal/fswatch"
)

// hostFiles lays out under dir a stand-in of what Kalaja keeps on a host
// and returns the paths to guard: a local repository, the state directory
// with a ledger pin and the alert log, a password file.
func hostFiles(t *testing.T, dir string) []string {
	t.Helper()
	files := map[string]string{
		"repo/config":                   "{}",
		"repo/keys/k1":                  "key",
		"repo/index/i1":                 "index",
		"repo/snapshots/s1":             "snapshot",
		"state/r1/ledger.json":          `{"version": 1}`,
		"state/alerts.jsonl":            "",
		"password":                      "secret",
		"not-guarded/notes.txt":         "notes",
		"repo/data/00/00aa":             "pack",
		"repo/data/00/00bb":             "pack",
		"repo/data/01/01aa":             "pack",
		"repo/data/01/01bb":             "pack",
		"repo/data/02/02aa":             "pack",
		"repo/data/02/02bb":             "pack",
		"repo/data/03/03aa":             "pack",
		"repo/data/03/03bb":             "pack",
		"repo/data/04/04aa":             "pack",
		"repo/data/04/04bb":             "pack",
		"repo/data/05/05aa":             "pack",
		"repo/data/05/05bb":             "pack",
		"state/r1/ledger.json.lock":     "",
		"repo/locks/.keep":              "",
		"not-guarded/HOW_TO_RECOVER.md": "",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return []string{filepath.Join(dir, "repo"), filepath.Join(dir, "state"), filepath.Join(dir, "password")}
}

// ownWork does to the host files under dir what Kalaja's own commands
// do (a backup writes packs and its index, the ledger pin is replaced
// through a temporary file, prune deletes packs), after reading its
// standard input to the end.
func ownWork(dir string) error {
	if _, err := io.Copy(io.Discard, os.Stdin); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "repo/data/06"), 0o700); err != nil {
		return err
	}
	for _, f := range []string{"repo/data/06/06aa", "repo/index/i2", "repo/snapshots/s2"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("new"), 0o600); err != nil {
			return err
		}
	}
	pin := filepath.Join(dir, "state/r1/ledger.json")
	if err := os.WriteFile(pin+".tmp", []byte(`{"version": 1, "checkpoint": "x"}`), 0o600); err != nil {
		return err
	}
	if err := os.Rename(pin+".tmp", pin); err != nil {
		return err
	}
	return os.Remove(filepath.Join(dir, "repo/data/00/00aa"))
}

// TestWatchGuard: another program writing, renaming or deleting what
// Kalaja keeps on the host alerts with backup_tamper at its first file
// and is stopped, whether the files are in the protected folder or not.
func TestWatchGuard(t *testing.T) {
	for _, where := range []string{"outside", "inside"} {
		for _, tc := range []struct {
			name, script string
			first        string // the first path the attack touches, relative to the host folder
			shell        bool   // the shell itself does it (else a program it runs, which may have ended before the stop)
		}{
			{"delete packs", `rm "$H"/repo/data/*/*`, "repo/data/", false},
			{"overwrite the ledger pin", `echo '{}' > "$H/state/r1/ledger.json"`, "state/r1/ledger.json", true},
			{"truncate the password file", `: > "$H/password"`, "password", true},
			{"move the repository away", `mv "$H/repo" "$H/repo.gone"`, "repo", false},
			{"move a folder above the state", `mv "$H" "$H.gone"`, "", false},
			{"replace the password file", `echo evil > "$H/pw.tmp"; mv "$H/pw.tmp" "$H/password"`, "password", false},
			{"delete the alert log", `rm "$H/state/alerts.jsonl"`, "state/alerts.jsonl", false},
			{"plant a snapshot", `echo forged > "$H/repo/snapshots/s9"`, "repo/snapshots/s9", true},
			{"write, then become Kalaja", `echo x > "$H/repo/config"; exec "$KALAJA" idle`, "repo/config", true},
		} {
			t.Run(where+"/"+tc.name, func(t *testing.T) {
				host := t.TempDir()
				h := startWatcherGuard(t, "fanotify", true, []string{}, func(dir string) []string {
					if where == "inside" {
						host = filepath.Join(dir, "host")
					}
					return hostFiles(t, host)
				}, func(dir string) { victims(t, dir, 10) })
				if where == "inside" {
					for _, c := range h.w.Canaries() {
						if strings.HasPrefix(c, host+"/repo") || strings.HasPrefix(c, host+"/state") {
							t.Errorf("canary %s placed among Kalaja's own files", c)
						}
					}
				}
				cmd := exec.Command("sh", "-c", tc.script+"; sleep 60")
				cmd.Env = append(os.Environ(), "H="+host, "KALAJA="+os.Args[0], "KALAJA_WATCH_HELPER=idle")
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
					cmd.Wait()
				})
				a := h.waitAlert()
				if len(a.Signals) == 0 || a.Signals[0].Signal != string(detect.BackupTamper) {
					t.Fatalf("alert signals %+v, want %s first", a.Signals, detect.BackupTamper)
				}
				if !a.Stopped {
					t.Errorf("not stopped: %+v", a)
				}
				if tc.first != "" && !slices.ContainsFunc(a.Signals[0].Files, func(f string) bool {
					return strings.HasPrefix(f, filepath.Join(host, tc.first))
				}) {
					t.Errorf("alert files %v, want one under %s", a.Signals[0].Files, tc.first)
				}
				if a.Group != cmd.Process.Pid {
					t.Errorf("alert for group %d, want the shell's %d", a.Group, cmd.Process.Pid)
				}
				if tc.shell {
					if s := waitStopped(cmd.Process.Pid); s != "T" {
						t.Errorf("shell state %q, want stopped (T)", s)
					}
				}
				left, _ := filepath.Glob(filepath.Join(host, "repo/data/*/*"))
				t.Logf("alert %s pid %d after %d of 12 packs deleted", a.Command, a.PID, 12-len(left))
			})
		}
	}
}

// TestWatchGuardOwn: Kalaja's own processes (this test binary, which is
// the watcher's executable) write, rename and delete there without an
// alert: one started before the watcher, one after it that has exited by
// the time its events are read, and the watcher's own process; a shell
// doing the same afterwards alerts.
func TestWatchGuardOwn(t *testing.T) {
	var early *exec.Cmd
	var release io.WriteCloser
	h := startWatcherGuard(t, "fanotify", false, []string{}, func(dir string) []string {
		guarded := hostFiles(t, filepath.Join(dir, "early"))
		hostFiles(t, filepath.Join(dir, "late"))
		guarded = append(guarded, filepath.Join(dir, "late/repo"), filepath.Join(dir, "late/state"))
		early = exec.Command(os.Args[0], filepath.Join(dir, "early"))
		early.Env = append(os.Environ(), "KALAJA_WATCH_HELPER=guard-own")
		var err error
		if release, err = early.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		if err := early.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { early.Process.Kill(); early.Wait() })
		return guarded
	}, nil)
	release.Close()
	if err := early.Wait(); err != nil {
		t.Fatalf("Kalaja's own process started before the watcher: %v", err)
	}
	late := exec.Command(os.Args[0], filepath.Join(h.dir, "late"))
	late.Env = append(os.Environ(), "KALAJA_WATCH_HELPER=guard-own")
	if out, err := late.CombinedOutput(); err != nil {
		t.Fatalf("Kalaja's own process: %v: %s", err, out)
	}
	f, err := os.OpenFile(filepath.Join(h.dir, "late/state/alerts.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, `{"alert": "the watcher's own log"}`)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.w.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	n := len(h.alerts)
	h.mu.Unlock()
	if n > 0 {
		t.Fatalf("%d alerts on Kalaja's own work", n)
	}
	cmd := exec.Command("sh", "-c", `rm "$H/late/repo/snapshots/s2"; sleep 60`)
	cmd.Env = append(os.Environ(), "H="+h.dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	if a := h.waitAlert(); a.Signals[0].Signal != string(detect.BackupTamper) || a.Group != cmd.Process.Pid {
		t.Errorf("alert %+v, want backup_tamper by the shell (group %d)", a, cmd.Process.Pid)
	}
}

// TestGuardOwnRule: a process is Kalaja's for an event only once it was
// seen starting Kalaja's executable, and, while alive, only if it runs it.
func TestGuardOwnRule(t *testing.T) {
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		t.Fatal(err)
	}
	start := func(name string, args ...string) int {
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "KALAJA_WATCH_HELPER=idle")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd.Process.Pid
	}
	kalaja := start(os.Args[0], "x") // the watcher's executable
	other := start("sleep", "60")
	g, err := newGuard([]string{t.TempDir()}, exe)
	if err != nil {
		t.Fatal(err)
	}
	if !g.own(kalaja) || g.own(other) || !g.own(os.Getpid()) {
		t.Errorf("after the scan: own(kalaja) %v, own(sleep) %v, own(self) %v; want true, false, true", g.own(kalaja), g.own(other), g.own(os.Getpid()))
	}
	late := start(os.Args[0], "x")
	if g.own(late) {
		t.Error("a process running Kalaja's executable is Kalaja's before its start was seen (it may have written first)")
	}
	g.executed(fswatch.Event{Op: fswatch.Exec, PID: late})
	if !g.own(late) {
		t.Error("a process seen starting Kalaja's executable is not Kalaja's")
	}
	g.executed(fswatch.Event{Op: fswatch.Exec, PID: other}) // as if sleep had reused a Kalaja process's PID
	if g.own(other) {
		t.Error("a live process running another program is Kalaja's")
	}
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	if g.own(gone.Process.Pid) {
		t.Error("a process that ended unseen is Kalaja's")
	}
	g.executed(fswatch.Event{Op: fswatch.Exec, PID: gone.Process.Pid})
	if !g.own(gone.Process.Pid) {
		t.Error("a Kalaja process that has ended is not Kalaja's for its earlier events")
	}
}

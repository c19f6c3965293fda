package watcher

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/detect"
)

// The test binary doubles as the attacking and benign processes: with
// KALAJA_WATCH_HELPER set it runs that workload instead of the tests.
func TestMain(m *testing.M) {
	if mode := os.Getenv("KALAJA_WATCH_HELPER"); mode != "" {
		if err := helper(mode, os.Args[len(os.Args)-1]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// helper runs one workload over dir.
func helper(mode, dir string) error {
	switch mode {
	case "encrypt": // in place, then rename, then a note; paced so the watcher can keep up
		return eachFile(dir, func(p string) error {
			if err := overwriteRandom(p); err != nil {
				return err
			}
			if err := os.Rename(p, p+".locked"); err != nil {
				return err
			}
			time.Sleep(5 * time.Millisecond)
			return nil
		})
	case "inplace":
		return eachFile(dir, func(p string) error { time.Sleep(5 * time.Millisecond); return overwriteRandom(p) })
	case "intermittent": // every other 4 KiB block
		return eachFile(dir, func(p string) error {
			time.Sleep(5 * time.Millisecond)
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			fi, _ := f.Stat()
			b := make([]byte, 4096)
			for off := int64(0); off < fi.Size(); off += 2 * 4096 {
				rand.Read(b)
				if _, err := f.WriteAt(b[:min(4096, fi.Size()-off)], off); err != nil {
					return err
				}
			}
			return nil
		})
	case "base64":
		return eachFile(dir, func(p string) error {
			time.Sleep(5 * time.Millisecond)
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			b := make([]byte, fi.Size())
			rand.Read(b)
			return os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(b)), 0o644)
		})
	case "zero":
		return eachFile(dir, func(p string) error {
			time.Sleep(5 * time.Millisecond)
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.WriteFile(p, make([]byte, fi.Size()), 0o644)
		})
	case "office": // save documents as office suites do: a temp file renamed over the original
		for round := range 3 {
			if err := eachFile(dir, func(p string) error {
				if !strings.HasSuffix(p, ".docx") {
					return nil
				}
				tmp := filepath.Join(filepath.Dir(p), fmt.Sprintf("~WRL%04d.tmp", round))
				if err := os.WriteFile(tmp, docx(fmt.Sprintf("revision %d of %s", round, p)), 0o644); err != nil {
					return err
				}
				return os.Rename(tmp, p)
			}); err != nil {
				return err
			}
		}
		return nil
	case "logrotate": // write, rotate by rename, compress with gzip, drop the oldest
		log := filepath.Join(dir, "app.log")
		for round := range 12 {
			f, err := os.OpenFile(log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			for i := range 200 {
				fmt.Fprintf(f, "2022-07-15T10:%02d:%02d host app[%d]: request %d served in %dms\n", round, i%60, 4000+round, i, i%97)
			}
			f.Close()
			os.Remove(fmt.Sprintf("%s.5.gz", log))
			for i := 4; i >= 1; i-- {
				os.Rename(fmt.Sprintf("%s.%d.gz", log, i), fmt.Sprintf("%s.%d.gz", log, i+1))
			}
			if err := os.Rename(log, log+".1"); err != nil {
				return err
			}
			if out, err := exec.Command("gzip", log+".1").CombinedOutput(); err != nil {
				return fmt.Errorf("gzip: %v: %s", err, out)
			}
		}
		return nil
	case "guard-own":
		return ownWork(dir)
	case "split-threads": // see TestStopRunningThread; dir is "X,Y"
		return splitThreads(dir)
	case "idle": // a process running the watcher's executable that does nothing for a while
		time.Sleep(time.Minute)
		return nil
	case "encrypt-one":
		return overwriteRandom(dir)
	case "spawn": // one short process per file
		return eachFile(dir, func(p string) error {
			cmd := exec.Command(os.Args[0], p)
			cmd.Env = append(os.Environ(), "KALAJA_WATCH_HELPER=encrypt-one")
			return cmd.Run()
		})
	case "delete":
		return eachFile(dir, func(p string) error { time.Sleep(2 * time.Millisecond); return os.Remove(p) })
	case "delete-one":
		return os.Remove(dir)
	case "quarantine": // each file of dir/folder* linked into dir/quarantine, then unlinked, as clamscan --move does
		q := filepath.Join(dir, "quarantine")
		folders, _ := filepath.Glob(filepath.Join(dir, "folder*"))
		for _, f := range folders {
			if err := eachFile(f, func(p string) error {
				if err := os.Link(p, filepath.Join(q, filepath.Base(p))); err != nil {
					return err
				}
				return os.Remove(p)
			}); err != nil {
				return err
			}
		}
		return nil
	case "truncate":
		return eachFile(dir, func(p string) error { time.Sleep(2 * time.Millisecond); return os.Truncate(p, 0) })
	case "raw":
		f, err := os.OpenFile(dir, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		for range 1000 {
			if _, err := f.Write(make([]byte, 4096)); err != nil {
				return err
			}
			time.Sleep(5 * time.Millisecond)
		}
		return nil
	}
	return fmt.Errorf("unknown helper mode %q", mode)
}

// docx returns a small zip document holding text.
func docx(text string) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, _ := zw.Create("word/document.xml")
	fmt.Fprintf(w, "<w:document><w:body><w:p><w:t>%s</w:t></w:p></w:body></w:document>", strings.Repeat(text+" ", 50))
	zw.Close()
	return b.Bytes()
}

func eachFile(dir string, f func(string) error) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return f(p)
	})
}

func overwriteRandom(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	b := make([]byte, fi.Size())
	rand.Read(b)
	return os.WriteFile(p, b, 0o644)
}

// victims makes n text files of a few KiB in two folders under dir.
func victims(t *testing.T, dir string, n int) {
	t.Helper()
	for i := range n {
		sub := filepath.Join(dir, fmt.Sprintf("folder%d", i%2))
		os.MkdirAll(sub, 0o755)
		text := strings.Repeat(fmt.Sprintf("Line %d of the minutes of the council meeting, item %d.\n", i, i*7), 80+i)
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("minutes-%03d.txt", i)), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// harness runs a Watcher over a fresh folder and collects its alerts.
type harness struct {
	t      *testing.T
	dir    string
	w      *Watcher
	mu     sync.Mutex
	alerts []detect.Alert
	got    chan struct{}
	kill   atomic.Bool // kill the processes of every alert
}

func startWatcher(t *testing.T, backend string, canaries bool, prepare func(dir string)) *harness {
	return startWatcherDevices(t, backend, canaries, []string{}, prepare)
}

// startWatcherDevices is startWatcher watching raw writes to devices only
// (other tests on the machine may write to other loop devices).
func startWatcherDevices(t *testing.T, backend string, canaries bool, devices []string, prepare func(dir string)) *harness {
	return startWatcherGuard(t, backend, canaries, devices, nil, prepare)
}

// startWatcherGuard is startWatcherDevices guarding paths in guard
// (Config.Guard) made by guard(dir), called after prepare.
func startWatcherGuard(t *testing.T, backend string, canaries bool, devices []string, guard func(dir string) []string, prepare func(dir string)) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), got: make(chan struct{}, 100)}
	if prepare != nil {
		prepare(h.dir)
	}
	var guarded []string
	if guard != nil {
		guarded = guard(h.dir)
	}
	w, err := New(Config{
		Paths: []string{h.dir}, Detect: detect.DefaultConfig(), Backend: backend, Stop: true, Canaries: canaries, RawDevices: devices, Guard: guarded,
		Realtime: guard != nil && os.Geteuid() == 0, // as kalaja watch runs as root
		OnAlert: func(a detect.Alert) {
			t.Logf("alert: %s (pid %d, group %d, pids %v) score %g: %+v", a.Command, a.PID, a.Group, a.PIDs, a.Score, a.Signals)
			if h.kill.Load() {
				for _, p := range a.PIDs { // so a stopped benign workload does not hang the test
					syscall.Kill(p, syscall.SIGKILL)
				}
			}
			h.mu.Lock()
			h.alerts = append(h.alerts, a)
			h.mu.Unlock()
			h.got <- struct{}{}
		},
	})
	if err != nil {
		if backend == "fanotify" {
			t.Skipf("fanotify not available here: %v", err)
		}
		t.Fatal(err)
	}
	h.w = w
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, a := range h.alerts { // stopped workers of the helpers
			for _, p := range a.PIDs {
				if a.Stopped && p != os.Getpid() {
					syscall.Kill(p, syscall.SIGKILL)
				}
			}
		}
	})
	return h
}

// start starts a helper process in mode over arg.
func (h *harness) start(mode, arg string) *exec.Cmd {
	h.t.Helper()
	return h.startIn(mode, arg, nil)
}

// startIn starts a helper process with attributes attr (nil for none).
func (h *harness) startIn(mode, arg string, attr *syscall.SysProcAttr) *exec.Cmd {
	h.t.Helper()
	cmd := exec.Command(os.Args[0], arg)
	cmd.SysProcAttr = attr
	cmd.Env = append(os.Environ(), "KALAJA_WATCH_HELPER="+mode)
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// waitAlert waits (generously) for the next alert.
func (h *harness) waitAlert() detect.Alert {
	h.t.Helper()
	select {
	case <-h.got:
	case <-time.After(60 * time.Second):
		h.t.Fatal("no alert within a minute")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.alerts[len(h.alerts)-1]
}

// waitStopped waits (generously: a signal is delivered when the process
// next leaves the kernel) until pid is stopped, and returns its state. A
// process whose child was stopped between vfork and exec (os/exec spawns
// that way) waits for it in state D, where it cannot run either: that is
// reported as T.
func waitStopped(pid int) string {
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := stateOf(pid)
		if s == "D" && childStopped(pid) {
			s = "T"
		}
		if s == "T" || s == "t" || time.Now().After(deadline) {
			return s
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// childStopped reports whether a child of pid is stopped.
func childStopped(pid int) bool {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, c := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(c); err == nil && stateOf(n) == "T" {
				return true
			}
		}
	}
	return false
}

// stateOf returns a process's state letter from /proc (T when stopped).
func stateOf(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return strings.Fields(s[i+1:])[0]
}

func TestWatchStopsEncryptor(t *testing.T) {
	h := startWatcher(t, "fanotify", true, func(dir string) { victims(t, dir, 60) })
	cmd := h.start("encrypt", h.dir)
	a := h.waitAlert()
	t.Logf("alert: %+v", a)
	if a.PID != cmd.Process.Pid || !a.Stopped {
		t.Errorf("alert for pid %d stopped=%v, want pid %d stopped", a.PID, a.Stopped, cmd.Process.Pid)
	}
	if s := waitStopped(cmd.Process.Pid); s != "T" {
		t.Errorf("encryptor state %q, want T (stopped)", s)
	}
	locked, _ := filepath.Glob(filepath.Join(h.dir, "*", "*.locked"))
	t.Logf("files damaged before stop: %d", len(locked))
}

// snapshotFiles maps every file under dir to its content.
func snapshotFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	eachFile(dir, func(p string) error {
		b, err := os.ReadFile(p)
		if err == nil {
			m[p] = string(b)
		}
		return nil
	})
	return m
}

// damaged counts the files of before that are gone or changed now.
func damaged(t *testing.T, before map[string]string) int {
	n := 0
	for p, was := range before {
		b, err := os.ReadFile(p)
		if err != nil || string(b) != was {
			n++
		}
	}
	return n
}

// TestWatchAttacks runs each attack family against real files with canaries
// off (so content signals alone must catch it) and checks the attacker is
// stopped with few files damaged.
func TestWatchAttacks(t *testing.T) {
	for _, tc := range []struct {
		mode    string
		signals []string // at least one of these fired
	}{
		{"encrypt", []string{"entropy", "type_lost", "rename_ext"}},
		{"inplace", []string{"entropy", "type_lost"}},
		{"intermittent", []string{"entropy", "partial"}},
		{"base64", []string{"encoded"}},
		{"zero", []string{"zeroed"}},
		{"spawn", []string{"entropy", "type_lost"}},
		{"spawn-setsid", []string{"entropy", "type_lost"}}, // its own session and process group, as the drill runs attacks
		{"delete", []string{"delete"}},
		{"truncate", []string{"truncate"}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			h := startWatcher(t, "fanotify", false, func(dir string) { victims(t, dir, 60) })
			before := snapshotFiles(t, h.dir)
			var cmd *exec.Cmd
			if mode, ok := strings.CutSuffix(tc.mode, "-setsid"); ok {
				cmd = h.startIn(mode, h.dir, &syscall.SysProcAttr{Setsid: true})
			} else {
				cmd = h.start(tc.mode, h.dir)
			}
			a := h.waitAlert()
			if a.Group != cmd.Process.Pid || !a.Stopped || !slices.Contains(a.PIDs, cmd.Process.Pid) {
				t.Errorf("alert for group %d (pids %v) stopped=%v, want group %d stopped", a.Group, a.PIDs, a.Stopped, cmd.Process.Pid)
			}
			if s := waitStopped(cmd.Process.Pid); s != "T" {
				t.Errorf("attacker state %q, want T (stopped)", s)
			}
			fired := false
			for _, hit := range a.Signals {
				fired = fired || slices.Contains(tc.signals, hit.Signal)
			}
			if !fired {
				t.Errorf("signals %+v, want one of %v", a.Signals, tc.signals)
			}
			n := damaged(t, before)
			t.Logf("%s: %d files damaged before the stop; score %g from %+v", tc.mode, n, a.Score, a.Signals)
			if n > 20 {
				t.Errorf("%d files damaged before the stop", n)
			}
		})
	}
}

// TestWatchQuarantine: moving files away by a hard link and an unlink of
// the original (an antivirus quarantining them) deletes no content, and
// raises no alert; deleting the links afterwards does, as deleting the
// files would.
func TestWatchQuarantine(t *testing.T) {
	h := startWatcher(t, "fanotify", false, func(dir string) {
		victims(t, dir, 40)
		os.Mkdir(filepath.Join(dir, "quarantine"), 0o755)
	})
	h.kill.Store(true)
	cmd := h.start("quarantine", h.dir)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("quarantine: %v", err)
	}
	if err := h.w.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	for _, a := range h.alerts {
		t.Errorf("false alarm: %s (pid %d) score %g: %+v", a.Command, a.PID, a.Score, a.Signals)
	}
	h.mu.Unlock()
	h.start("delete", filepath.Join(h.dir, "quarantine"))
	a := h.waitAlert()
	if !slices.ContainsFunc(a.Signals, func(hit detect.Hit) bool { return hit.Signal == string(detect.Deleted) }) {
		t.Errorf("deleting the quarantined links: signals %+v, want delete", a.Signals)
	}
}

// TestWatchCanaryDeleted: deleting one canary alerts at once, though every
// other canary holds the same bytes (a copy of its content is no excuse).
func TestWatchCanaryDeleted(t *testing.T) {
	h := startWatcher(t, "fanotify", true, func(dir string) { victims(t, dir, 20) })
	var canary string
	for _, c := range h.w.Canaries() {
		if strings.HasSuffix(c, ".docx") && filepath.Dir(c) != h.dir {
			canary = c
		}
	}
	if canary == "" {
		t.Fatalf("no canary in a subfolder: %v", h.w.Canaries())
	}
	h.start("delete-one", canary)
	a := h.waitAlert()
	if !slices.ContainsFunc(a.Signals, func(hit detect.Hit) bool { return hit.Signal == string(detect.Canary) }) {
		t.Errorf("signals %+v, want canary", a.Signals)
	}
}

// TestWatchBenign runs everyday workloads under a watcher with canaries and
// stopping on, then an encryptor: the encryptor's alert must be the first
// one (events are handled in order, so the benign ones were all scored).
func TestWatchBenign(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: runs git, tar, sqlite3 and a Go build")
	}
	for _, tool := range []string{"git", "tar", "zstd", "gzip", "sqlite3", "go", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	src := t.TempDir() // a git repository outside the protected folder
	h := startWatcher(t, "fanotify", true, func(dir string) {
		victims(t, dir, 40)
		for i := range 8 {
			os.WriteFile(filepath.Join(dir, "folder1", fmt.Sprintf("report-%d.docx", i)), docx(fmt.Sprintf("report %d", i)), 0o644)
		}
	})
	h.kill.Store(true)
	sh := func(name, script string) {
		t.Helper()
		cmd := exec.Command("sh", "-ec", script)
		cmd.Dir = h.dir
		cmd.Env = append(os.Environ(), "SRC="+src, "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@e", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@e")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
	}
	helperRun := func(mode, arg string) {
		t.Helper()
		cmd := exec.Command(os.Args[0], arg)
		cmd.Env = append(os.Environ(), "KALAJA_WATCH_HELPER="+mode)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", mode, err, out)
		}
	}
	sh("tar+zstd", `tar -cf - folder0 | zstd -q -o backup.tar.zst; tar -czf backup.tgz folder1; mkdir restore; tar -C restore -xzf backup.tgz; tar -C restore --zstd -xf backup.tar.zst`)
	sh("git", `cd "$SRC"; git init -q -b main .; for i in $(seq 1 40); do mkdir -p d$((i%5)); seq 1 $((i*50)) > d$((i%5))/f$i.txt; done
		head -c 20000 /dev/urandom > blob.bin; git add -A; git commit -qm one; git checkout -qb other; git rm -rq d1 d2; seq 1 9 > new.txt; git add -A; git commit -qm two
		cd "$OLDPWD"; git clone -q "$SRC" clone; cd clone; git checkout -q main; git checkout -q other; git checkout -q main`)
	sh("go build", `mkdir gobuild; cd gobuild; printf 'module m\ngo 1.21\n' > go.mod; printf 'package main\nimport "fmt"\nfunc main() { fmt.Println("hi") }\n' > main.go; GOCACHE=$PWD/cache GOFLAGS=-mod=mod go build -o hello . && ./hello`)
	sh("sqlite", `sqlite3 db.sqlite 'create table t(id integer primary key, name text, data blob);' \
		"with recursive c(x) as (select 1 union all select x+1 from c where x<2000) insert into t(name, data) select 'row '||x, randomblob(200) from c;" \
		'update t set name = name || "!" where id % 3 = 0;' 'delete from t where id % 5 = 0;' 'vacuum;'
		sqlite3 wal.sqlite 'pragma journal_mode=wal;' 'create table t(x);' "with recursive c(x) as (select 1 union all select x+1 from c where x<3000) insert into t select hex(randomblob(64)) from c;"`)
	helperRun("office", filepath.Join(h.dir, "folder1"))
	os.Mkdir(filepath.Join(h.dir, "logs"), 0o755)
	helperRun("logrotate", filepath.Join(h.dir, "logs"))
	sh("bulk moves", `mkdir moved; mv folder0/* moved/; mv moved archive-2022; mkdir -p deep/a/b; mv archive-2022 deep/a/b/`)

	h.mu.Lock()
	benign := slices.Clone(h.alerts)
	h.mu.Unlock()
	for _, a := range benign {
		t.Errorf("false alarm: %s (pid %d) score %g: %+v", a.Command, a.PID, a.Score, a.Signals)
	}
	victimsDir := filepath.Join(h.dir, "victims")
	victims(t, victimsDir, 30)
	cmd := h.start("inplace", victimsDir)
	if a := h.waitAlert(); a.Group != cmd.Process.Pid {
		t.Errorf("alert for %s (pid %d, group %d), want the encryptor %d: %+v", a.Command, a.PID, a.Group, cmd.Process.Pid, a.Signals)
	}
}

// TestWatchInotify: without PIDs the watcher still alerts, and says it
// cannot stop anything.
func TestWatchInotify(t *testing.T) {
	h := startWatcher(t, "inotify", false, func(dir string) { victims(t, dir, 40) })
	if name, canStop := h.w.Backend(); name != "inotify" || canStop {
		t.Errorf("Backend() = %s, %v; want inotify, false", name, canStop)
	}
	h.start("inplace", h.dir)
	a := h.waitAlert()
	if a.PID != 0 || a.Stopped || a.Scope != "unknown process" {
		t.Errorf("inotify alert: pid %d stopped %v scope %q", a.PID, a.Stopped, a.Scope)
	}
}

// TestWatchIgnoresSelf: the watcher's own process writing like an attacker
// is neither scored nor stopped.
func TestWatchIgnoresSelf(t *testing.T) {
	h := startWatcher(t, "fanotify", true, func(dir string) { victims(t, dir, 20) })
	if err := eachFile(filepath.Join(h.dir, "folder0"), func(p string) error { return overwriteRandom(p) }); err != nil {
		t.Fatal(err)
	}
	// A child doing the same is caught, after the above was handled.
	cmd := h.start("inplace", filepath.Join(h.dir, "folder1"))
	if a := h.waitAlert(); a.Group != cmd.Process.Pid || slices.Contains(a.PIDs, os.Getpid()) {
		t.Errorf("alert for group %d pids %v; want only the child %d", a.Group, a.PIDs, cmd.Process.Pid)
	}
}

// TestWatchRawDisk writes to a loop device: no file signal sees it, the
// block device mark does.
func TestWatchRawDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for losetup")
	}
	// The image lies in the protected folder: a loop device counts only
	// when the file behind it is protected.
	var dev, img string
	h := startWatcherDevices(t, "fanotify", false, nil, func(dir string) {
		victims(t, dir, 4)
		img = filepath.Join(dir, "disk.img")
		if err := os.WriteFile(img, make([]byte, 8<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("losetup", "--find", "--show", img).Output()
		if err != nil {
			t.Skipf("losetup: %v", err)
		}
		dev = strings.TrimSpace(string(out))
		t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	})
	cmd := h.start("raw", dev)
	a := h.waitAlert()
	if a.Group != cmd.Process.Pid || len(a.Signals) == 0 || a.Signals[0].Signal != "raw_disk" {
		t.Errorf("alert for group %d: %+v; want raw_disk for %d", a.Group, a.Signals, cmd.Process.Pid)
	}
	// Named at the alert, for healing after the device is detached.
	if !slices.Contains(a.Files, img) {
		t.Errorf("alert files %v do not name the image %s behind %s", a.Files, img, dev)
	}
	if s := waitStopped(cmd.Process.Pid); s != "T" {
		t.Errorf("wiper state %q, want T", s)
	}
}

package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// loadHosts is the number of hosts of TestLoadManyHosts, from issue 4's
// acceptance item "50 concurrent clients backing up through one server".
const loadHosts = 50

// TestLoadManyHosts starts one kalaja serve and backs up 50 hosts through it
// at the same time, each with its own token and its own small tree; the trees
// share some files, so that the hosts deduplicate against each other, and
// hold some of their own. Every backup must succeed; then snapshots must list
// the 50 snapshots with their hosts, check --read-data and verify --read-data
// must pass, and a sample of the snapshots must restore identical to their
// sources. The server's peak RSS and the total throughput are logged, not
// asserted (bench/serve.sh measures them).
func TestLoadManyHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 50 concurrent backups")
	}
	s := startServer(t)
	pid := serverPID(t, s)

	dir := t.TempDir()
	shared := loadFiles(0, []int{128 << 10, 64 << 10, 3 << 10})
	envs := make([]*testEnv, loadHosts)
	srcs := make([]string, loadHosts)
	var total int64
	for i := range loadHosts {
		host := fmt.Sprintf("host-%02d", i)
		_, tokenFile := s.addToken(t, host)
		envs[i] = s.client(t, tokenFile)
		srcs[i] = filepath.Join(dir, host)
		total += writeLoadTree(t, srcs[i], shared, loadFiles(uint64(i+1), []int{96 << 10, 48 << 10, 1, 0}), host)
	}
	envs[0].must("init")
	hwmIdle := vmHWM(t, pid)

	began := time.Now()
	procs := make([]*proc, loadHosts)
	for i, e := range envs {
		procs[i] = e.start("backup", "--json", "--host", fmt.Sprintf("host-%02d", i), srcs[i])
	}
	snapHost := map[string]string{} // snapshot ID -> host
	var clientRSS int64             // KiB, the largest client
	for i, p := range procs {
		err := p.cmd.Wait()
		host := fmt.Sprintf("host-%02d", i)
		if err != nil {
			t.Errorf("backup of %s: %v\nstderr:\n%s", host, err, &p.stderr)
			continue
		}
		var v struct {
			Snapshot string `json:"snapshot"`
		}
		if err := json.Unmarshal(p.stdout.Bytes(), &v); err != nil || v.Snapshot == "" {
			t.Errorf("backup of %s printed %q: %v", host, &p.stdout, err)
			continue
		}
		snapHost[v.Snapshot] = host
		if ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			clientRSS = max(clientRSS, ru.Maxrss)
		}
	}
	wall := time.Since(began)
	hwm := vmHWM(t, pid)
	if t.Failed() {
		t.Fatalf("%d of %d backups failed; server log:\n%s", loadHosts-len(snapHost), loadHosts, tail(s.log(), 40))
	}
	repoBytes := treeBytes(t, filepath.Join(s.repo, "data"))
	t.Logf("%d hosts backed up %.1f MiB in %v through one server: %.1f MB/s in all", loadHosts,
		float64(total)/(1<<20), wall.Round(time.Millisecond), float64(total)/1e6/wall.Seconds())
	t.Logf("server peak RSS (VmHWM) %d MiB (%d MiB before the backups); largest client %d MiB; packs %.1f MiB for %.1f MiB of sources",
		hwm>>10, hwmIdle>>10, clientRSS>>10, float64(repoBytes)/(1<<20), float64(total)/(1<<20))
	refused, failed := refusals(s.log())
	t.Logf("requests refused by the server, by reason and kind: %v", refused)
	if len(failed) > 0 {
		t.Errorf("the server failed %d requests:\n%s", len(failed), strings.Join(failed[:min(len(failed), 20)], "\n"))
	}

	e := envs[loadHosts-1]
	r := e.must("snapshots", "--json")
	var list []struct {
		ID       string `json:"id"`
		Hostname string `json:"hostname"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("snapshots output %q: %v", r.stdout, err)
	}
	if len(list) != loadHosts {
		t.Errorf("snapshots lists %d snapshots, want %d", len(list), loadHosts)
	}
	for _, sn := range list {
		if h, ok := snapHost[sn.ID]; !ok || h != sn.Hostname {
			t.Errorf("snapshot %s of host %q: the backups made it for host %q", sn.ID, sn.Hostname, h)
		}
	}
	e.must("check", "--read-data")
	e.must("verify", "--read-data")
	for id, host := range snapHost {
		i, err := strconv.Atoi(strings.TrimPrefix(host, "host-"))
		must(t, err)
		if i%12 == 0 || i == loadHosts-1 {
			envs[i].restoreAndCompare(id, srcs[i])
		}
	}
	t.Logf("server peak RSS (VmHWM) at the end, after check, verify and restores: %d MiB", vmHWM(t, pid)>>10)
}

// loadFiles returns random files of the given sizes, the same for the same
// seed.
func loadFiles(seed uint64, sizes []int) [][]byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	gen := rand.NewChaCha8(key)
	files := make([][]byte, len(sizes))
	for i, n := range sizes {
		files[i] = make([]byte, n)
		gen.Read(files[i])
	}
	return files
}

// writeLoadTree writes a host's tree into dir: the shared files, its own
// files, and some compressible text naming the host. It returns the bytes
// written.
func writeLoadTree(t *testing.T, dir string, shared, own [][]byte, host string) int64 {
	t.Helper()
	must(t, os.MkdirAll(filepath.Join(dir, "shared"), 0o755))
	must(t, os.MkdirAll(filepath.Join(dir, "own", "deeper"), 0o755))
	var n int64
	write := func(rel string, data []byte) {
		writeFile(t, filepath.Join(dir, rel), data)
		n += int64(len(data))
	}
	for i, b := range shared {
		write(fmt.Sprintf("shared/common-%d.bin", i), b)
	}
	for i, b := range own {
		write(fmt.Sprintf("own/deeper/%s-%d.bin", host, i), b)
	}
	write("own/notes.txt", []byte(strings.Repeat("backup of "+host+" through one server\n", 4000)))
	write("shared/README", []byte(strings.Repeat("the same on every host\n", 2000)))
	return n
}

// serverPID returns the process ID of the kalaja serve that s runs: the
// child of this test process whose arguments name s's server directory.
func serverPID(t *testing.T, s *served) int {
	t.Helper()
	self := strconv.Itoa(os.Getpid())
	procs, err := filepath.Glob("/proc/[0-9]*")
	must(t, err)
	for _, p := range procs {
		cmdline, err := os.ReadFile(filepath.Join(p, "cmdline"))
		if err != nil {
			continue // ended meanwhile
		}
		args := strings.Split(string(cmdline), "\x00")
		i := slices.Index(args, "--server-dir")
		if len(args) < 2 || args[0] != kalajaBin || args[1] != "serve" || i < 0 || i+1 >= len(args) || args[i+1] != s.dir {
			continue
		}
		if ppid, ok := procStatus(t, p, "PPid"); ok && ppid == self {
			pid, err := strconv.Atoi(filepath.Base(p))
			must(t, err)
			return pid
		}
	}
	t.Fatalf("no kalaja serve process for %s", s.dir)
	return 0
}

// vmHWM returns the peak resident set size of process pid in KiB.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	v, ok := procStatus(t, fmt.Sprintf("/proc/%d", pid), "VmHWM")
	if !ok {
		t.Fatalf("/proc/%d/status has no VmHWM", pid)
	}
	kib, err := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
	must(t, err)
	return kib
}

// procStatus returns the value of field in the status file of the process
// directory p, without its name and surrounding blanks.
func procStatus(t *testing.T, p, field string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p, "status"))
	if err != nil {
		return "", false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if name, v, ok := strings.Cut(sc.Text(), ":"); ok && name == field {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// refusals counts the requests the server's log shows refused, by reason
// and kind ("exists ledger/entries"), and returns its error lines.
func refusals(log string) (map[string]int, []string) {
	refused := map[string]int{}
	var failed []string
	for line := range strings.Lines(log) {
		if strings.Contains(line, "level=ERROR") {
			failed = append(failed, strings.TrimSpace(line))
		}
		reason, kind := logField(line, "reason"), logField(line, "kind")
		if reason != "" {
			refused[reason+" "+kind]++
		}
	}
	return refused, failed
}

// logField returns the value of key in a line of slog's text format, "" if
// it has none; values are not quoted in the fields this reads.
func logField(line, key string) string {
	_, v, ok := strings.Cut(line, " "+key+"=")
	if !ok {
		return ""
	}
	v, _, _ = strings.Cut(v, " ")
	return strings.TrimSpace(v)
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

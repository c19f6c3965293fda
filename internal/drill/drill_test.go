package drill

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv marks the test binary re-executed as a drill child process.
const childEnv = "KALAJA_DRILL_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		if err := RunChild(context.Background(), os.Args[1:], testChild(), Policy{Home: os.Getenv("HOME")}, nil); err != nil {
			fmt.Fprintln(os.Stderr, "drill child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testChild re-executes the test binary as a drill child.
func testChild() Child {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	return Child{Args: []string{exe}, Env: append(os.Environ(), childEnv+"=1")}
}

func newSandbox(t *testing.T) *Sandbox {
	t.Helper()
	sb, err := Prepare(filepath.Join(t.TempDir(), "sandbox"), Policy{Home: os.Getenv("HOME")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	return sb
}

func generate(t *testing.T, sb *Sandbox, files int) int {
	t.Helper()
	if err := sb.Reset(); err != nil {
		t.Fatal(err)
	}
	list, err := Generate(context.Background(), sb, Programs{Env: os.Environ()}, Tree{Files: files, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

func TestGenerate(t *testing.T) {
	sb := newSandbox(t)
	n := generate(t, sb, 120)
	first, err := hashTree(sb)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != n || n < 100 {
		t.Errorf("Generate reported %d files, the tree has %d", n, len(first))
	}
	magic := map[string]string{
		".docx": "PK\x03\x04", ".xlsx": "PK\x03\x04", ".pdf": "%PDF-1.7", ".jpg": "\xff\xd8\xff",
		".png": "\x89PNG\r\n\x1a\n", ".sqlite": "SQLite format 3\x00", ".go": "// Package ",
	}
	seen := map[string]int{}
	depth := 0
	for f := range first {
		depth = max(depth, strings.Count(f, "/"))
		ext := filepath.Ext(f)
		seen[ext]++
		if m, ok := magic[ext]; ok {
			b, err := sb.ReadFile(f)
			if err != nil || !bytes.HasPrefix(b, []byte(m)) {
				t.Errorf("%s does not start with %q", f, m)
			}
		}
	}
	for _, ext := range []string{".docx", ".xlsx", ".pdf", ".txt", ".md", ".csv", ".jpg", ".png", ".go", ".py", ".c", ".js", ".sqlite"} {
		if seen[ext] == 0 {
			t.Errorf("no %s file in the tree", ext)
		}
	}
	if depth < 4 {
		t.Errorf("the tree is only %d folders deep", depth)
	}
	generate(t, sb, 120)
	second, _ := hashTree(sb)
	for f, d := range first {
		if second[f] != d && filepath.Ext(f) != ".sqlite" {
			t.Errorf("%s differs between two trees of the same seed", f)
		}
	}
}

func TestAttacks(t *testing.T) {
	tests := []struct {
		name  string
		check func(t *testing.T, sb *Sandbox, orig map[string][]byte)
	}{
		{EncryptRename, func(t *testing.T, sb *Sandbox, orig map[string][]byte) {
			files, _ := sb.Files(DataDir)
			renamed, notes := 0, 0
			for _, f := range files {
				if filepath.Base(f) == NoteName {
					notes++
				} else if _, ok := orig[strings.TrimSuffix(f, filepath.Ext(f))]; ok {
					renamed++
				}
			}
			if renamed != len(orig) || notes == 0 {
				t.Errorf("%d of %d files renamed, %d notes", renamed, len(orig), notes)
			}
		}},
		{EncryptInPlace, sameNames},
		{Intermittent, func(t *testing.T, sb *Sandbox, orig map[string][]byte) {
			for f, o := range orig {
				b, _ := sb.ReadFile(f)
				if len(b) != len(o) || bytes.Equal(b, o) || len(o) > 32 && !bytes.Equal(b[16:32], o[16:32]) {
					t.Errorf("%s: not every other 16 bytes encrypted", f)
				}
			}
		}},
		{EncodeBase64, func(t *testing.T, sb *Sandbox, orig map[string][]byte) {
			for f := range orig {
				b, _ := sb.ReadFile(f)
				if _, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(string(b), "\n", "")); err != nil {
					t.Errorf("%s is not base64: %v", f, err)
				}
			}
		}},
		{WipeZero, func(t *testing.T, sb *Sandbox, orig map[string][]byte) {
			for f, o := range orig {
				b, _ := sb.ReadFile(f)
				if len(b) != len(o) || !bytes.Equal(b, make([]byte, len(o))) {
					t.Errorf("%s is not zeroed", f)
				}
			}
		}},
		{WipeRandom, sameNames},
		{WipeTruncate, func(t *testing.T, sb *Sandbox, orig map[string][]byte) {
			for f := range orig {
				if b, err := sb.ReadFile(f); err != nil || len(b) != 0 {
					t.Errorf("%s has %d bytes (%v)", f, len(b), err)
				}
			}
		}},
		{WipeDelete, func(t *testing.T, sb *Sandbox, orig map[string][]byte) {
			if files, _ := sb.Files(DataDir); len(files) != 0 {
				t.Errorf("%d files left", len(files))
			}
		}},
	}
	sb := newSandbox(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			generate(t, sb, 30)
			before, _ := hashTree(sb)
			orig := map[string][]byte{}
			for f := range before {
				orig[f], _ = sb.ReadFile(f)
			}
			if err := Attack(context.Background(), sb, tt.name, AttackOptions{}); err != nil {
				t.Fatal(err)
			}
			after, _ := hashTree(sb)
			if n := damaged(sb, before, after, nil); n != len(before) {
				t.Errorf("%d of %d files damaged", n, len(before))
			}
			tt.check(t, sb, orig)
		})
	}
}

// sameNames checks that every file is still there and changed.
func sameNames(t *testing.T, sb *Sandbox, orig map[string][]byte) {
	for f, o := range orig {
		b, err := sb.ReadFile(f)
		if err != nil || bytes.Equal(b, o) {
			t.Errorf("%s: unchanged or gone (%v)", f, err)
		}
	}
}

// fakeWatcher raises one alert a fixed time after it is ready, without
// stopping anything: the runner must kill the scenario's processes.
type fakeWatcher struct {
	after   time.Duration
	onAlert func(Alert)
}

func (f *fakeWatcher) Run(ctx context.Context, ready func()) error {
	ready()
	select {
	case <-ctx.Done():
	case <-time.After(f.after):
		f.onAlert(Alert{Time: time.Now(), Command: "fake", Signals: []string{"timer"}})
		<-ctx.Done()
	}
	return ctx.Err()
}

func (f *fakeWatcher) Backend() (string, bool) { return "fake", false }
func (f *fakeWatcher) Canaries() []string      { return nil }

func testConfig(t *testing.T, sb *Sandbox, after time.Duration) Config {
	cfg := Config{
		Sandbox: sb, Child: testChild(), Env: os.Environ(),
		Tree: Tree{Files: 40, Seed: 3}, BulkBytes: 4 << 20,
		SlowInterval: 300 * time.Millisecond, Settle: 100 * time.Millisecond,
		// A safety net, not a bound: go-build took over a minute on a
		// two-core machine at a load average of 35.
		Timeout: 10 * time.Minute,
	}
	if after > 0 {
		cfg.Watch = func(paths []string, onAlert func(Alert)) (Watcher, error) {
			if len(paths) == 0 || paths[0] != sb.Root() {
				t.Errorf("watcher paths %v", paths)
			}
			return &fakeWatcher{after: after, onAlert: onAlert}, nil
		}
	}
	return cfg
}

func TestRunWithoutWatcher(t *testing.T) {
	sb := newSandbox(t)
	cfg := testConfig(t, sb, 0)
	cfg.Scenarios = []string{EncryptInPlace, MultiProcess, SplitSetsid, SplitDetached, WipeRm, WipeFind, WipeUnlink, WipeRaw}
	if os.Geteuid() != 0 {
		cfg.Scenarios = cfg.Scenarios[:len(cfg.Scenarios)-1] // losetup needs root
	}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if r.Error != "" {
			t.Errorf("%s: %s", r.Scenario, r.Error)
		}
		if r.Detected || !r.Finished || r.FilesDamaged != r.FilesTotal && r.Scenario != WipeRaw {
			t.Errorf("%s without a watcher: %+v", r.Scenario, r)
		}
		if r.Scenario == WipeRaw && r.FilesDamaged != 1 {
			t.Errorf("wipe-raw damaged %d files, want the disk image", r.FilesDamaged)
		}
	}
	if rep.OK() || rep.Summary.Detected != 0 || rep.Summary.Attacks != len(cfg.Scenarios) {
		t.Errorf("summary %+v", rep.Summary)
	}
	if left := attackProcs(sb.Root()); len(left) > 0 {
		t.Errorf("attack processes outlived their scenarios: %v", left)
	}
}

func TestRunStopsAtAlert(t *testing.T) {
	sb := newSandbox(t)
	cfg := testConfig(t, sb, 500*time.Millisecond)
	cfg.Scenarios = []string{SlowEncrypt, OfficeSave}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	slow, office := rep.Results[0], rep.Results[1]
	if slow.Error != "" || !slow.Detected || slow.Finished || slow.FilesDamaged == 0 || slow.FilesDamaged >= slow.FilesTotal/2 {
		t.Errorf("slow-encrypt stopped after the alert: %+v", slow)
	}
	if slow.DetectionMS < 400 || slow.Alert == nil || slow.Alert.Command != "fake" {
		t.Errorf("slow-encrypt detected after %v ms: %+v", slow.DetectionMS, slow.Alert)
	}
	if office.Error != "" {
		t.Errorf("office-save: %s", office.Error)
	}
	if rep.Summary.Attacks != 1 || rep.Summary.Benign != 1 || rep.Backend != "fake" {
		t.Errorf("report %+v", rep)
	}
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"SCENARIO", "slow-encrypt", "detected", "office-save", "attacks: 1/1 detected"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

// TestBenignWorkloads runs every benign workload without a watcher (move-fs
// only as root): the programs must be installed and the scripts must work.
// It fails, rather than skips, when a program is missing: CI must install
// them (scripts/drilltools.sh).
func TestBenignWorkloads(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: runs tar, zstd, git, go build, sqlite3")
	}
	sb := newSandbox(t)
	cfg := testConfig(t, sb, 0)
	for _, s := range Scenarios() {
		if s.Kind == KindBenign && (s.Name != MoveFS || os.Geteuid() == 0) { // mount needs root
			cfg.Scenarios = append(cfg.Scenarios, s.Name)
		}
	}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != len(cfg.Scenarios) || len(rep.Results) < 15 {
		t.Errorf("%d benign workloads ran", len(rep.Results))
	}
	for _, r := range rep.Results {
		if r.Error != "" || !r.Finished {
			t.Errorf("%s: %+v", r.Scenario, r)
		}
	}
}

func TestSelectScenarios(t *testing.T) {
	if _, err := selectScenarios([]string{"encrypt-rename", "nope"}); err == nil {
		t.Error("an unknown scenario was accepted")
	}
	got, err := selectScenarios([]string{GoBuild, EncryptRename})
	if err != nil || len(got) != 2 || got[0].Name != EncryptRename {
		t.Errorf("selectScenarios: %v, %v", got, err)
	}
}

func TestAlertAttribution(t *testing.T) {
	// The scenario is a process in a session of its own, as run makes it;
	// the test's own process stands for a live one elsewhere. (The test's
	// session cannot stand for the scenario's: in a container its leader
	// may be outside the PID namespace, and getsid reports 0.)
	scenario := exec.Command("sleep", "60")
	scenario.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := scenario.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { scenario.Process.Kill(); scenario.Wait() })
	sid, self := scenario.Process.Pid, os.Getpid()
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		early   bool // the alert comes before the runner knows the session
		alert   Alert
		counted bool
	}{
		{"a process of the scenario's session", false, Alert{PID: sid}, true},
		{"one of several pids in the session", false, Alert{PID: self, PIDs: []int{self, sid}}, true},
		{"a live process of another session", false, Alert{PID: self}, false},
		{"a process that is gone", false, Alert{PID: gone.Process.Pid}, true},
		{"no pid (inotify)", false, Alert{}, true},
		{"before the session was known, its process", true, Alert{PID: sid}, true},
		{"before the session was known, processes gone", true, Alert{PID: gone.Process.Pid}, false},
		{"before the session was known, another session", true, Alert{PID: self}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &watching{alerts: make(chan Alert, 1)}
			if tt.early {
				w.receive(tt.alert)
				if len(w.alerts) != 0 || w.foreign.Load() != 0 {
					t.Fatal("an alert was sorted before the session was known")
				}
				w.start(sid)
			} else {
				w.start(sid)
				w.receive(tt.alert)
			}
			counted, foreign := len(w.alerts) == 1, w.foreign.Load() == 1
			if counted != tt.counted || foreign == tt.counted {
				t.Errorf("counted %v, foreign %v; want counted %v", counted, foreign, tt.counted)
			}
		})
	}
}

// TestBackupAttacksWithoutWatcher: backup-delete deletes the stand-in's
// repository, backup-overwrite overwrites its state folder and password
// file; neither touches the tree.
func TestBackupAttacksWithoutWatcher(t *testing.T) {
	sb := newSandbox(t)
	cfg := testConfig(t, sb, 0)
	cfg.Scenarios = []string{BackupDelete, BackupOverwrite}
	st := &stage{cfg: &cfg, sb: sb}
	if err := prepareHost(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 2 {
		t.Fatalf("%d results", len(rep.Results))
	}
	for _, r := range rep.Results {
		want := 5 // the state folder's four files and the password file
		if r.Scenario == BackupDelete {
			want = st.hostFiles - 5 // the rest
		}
		if r.Error != "" || r.Detected || !r.Finished || r.FilesDamaged != want {
			t.Errorf("%s without a watcher: %d files damaged, want %d: %+v", r.Scenario, r.FilesDamaged, want, r)
		}
	}
	for _, p := range Guarded(sb.Root()) {
		if rel, err := sb.Rel(p); err != nil || !strings.HasPrefix(rel, HostDir+"/") {
			t.Errorf("guarded path %s is not in the host stand-in (%v)", p, err)
		}
	}
}

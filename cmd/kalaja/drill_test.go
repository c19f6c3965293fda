package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/drill"
)

// drillRun runs kalaja with args and no repository settings.
func drillRun(t *testing.T, args ...string) result {
	t.Helper()
	return (&testEnv{t: t}).run(args...)
}

// TestDrillRefusesUnsafeSandbox: the drill and its attack processes refuse
// system and home folders, their ancestors, symbolic links to them and
// folders they did not make, and leave them untouched.
func TestDrillRefusesUnsafeSandbox(t *testing.T) {
	tmp := t.TempDir()
	foreign := filepath.Join(tmp, "foreign")
	os.MkdirAll(foreign, 0o755)
	os.WriteFile(filepath.Join(foreign, "thesis.docx"), []byte("years of work"), 0o644)
	for name, target := range map[string]string{"to-etc": "/etc", "to-root": "/", "to-usr": "/usr"} {
		if err := os.Symlink(target, filepath.Join(tmp, name)); err != nil {
			t.Fatal(err)
		}
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "/root"
	}
	tests := []struct {
		name string
		args []string
	}{
		{"root", []string{"drill", "--sandbox", "/"}},
		{"etc", []string{"drill", "--sandbox", "/etc"}},
		{"etc forced", []string{"drill", "--sandbox", "/etc", "--force"}},
		{"usr", []string{"drill", "--sandbox", "/usr"}},
		{"home", []string{"drill", "--sandbox", "/home"}},
		{"HOME", []string{"drill", "--sandbox", home}},
		{"root's home", []string{"drill", "--sandbox", "/root"}},
		{"var", []string{"drill", "--sandbox", "/var"}},
		{"tmp", []string{"drill", "--sandbox", "/tmp"}},
		{"tmp, relative", []string{"drill", "--sandbox", "/tmp/x/../"}},
		{"ancestor of tmp", []string{"drill", "--sandbox", "/tmp/.."}},
		{"symlink to /etc", []string{"drill", "--sandbox", filepath.Join(tmp, "to-etc")}},
		{"symlink to /", []string{"drill", "--sandbox", filepath.Join(tmp, "to-root"), "--force"}},
		{"inside a symlink to /usr", []string{"drill", "--sandbox", filepath.Join(tmp, "to-usr", "drill")}},
		{"non-empty folder", []string{"drill", "--sandbox", foreign}},
		{"attack on /etc", []string{"drill", "attack", drill.WipeDelete, "/etc"}},
		{"attack on HOME", []string{"drill", "attack", drill.EncryptInPlace, home}},
		{"attack on a folder not made by the drill", []string{"drill", "attack", drill.WipeDelete, foreign}},
		{"attack on a file outside", []string{"drill", "attack", "--only", filepath.Join(foreign, "thesis.docx"), drill.WipeZero, foreign}},
		{"office-save on a folder not made by the drill", []string{"drill", "benign", drill.OfficeSave, foreign}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := drillRun(t, tt.args...)
			if r.code != exitUsage || !strings.Contains(r.stderr, "unsafe for a drill") {
				t.Errorf("kalaja %v: exit %d, stderr %q; want exit 2 and a refusal", tt.args, r.code, r.stderr)
			}
		})
	}
	if b, err := os.ReadFile(filepath.Join(foreign, "thesis.docx")); err != nil || string(b) != "years of work" {
		t.Errorf("the foreign folder's file changed: %q, %v", b, err)
	}
	if entries, _ := os.ReadDir(foreign); len(entries) != 1 {
		t.Errorf("the foreign folder got new entries: %v", entries)
	}
	for _, d := range []string{"/", "/etc", "/usr", "/tmp", home} {
		if _, err := os.Lstat(filepath.Join(d, drill.Marker)); err == nil {
			t.Errorf("a drill marker was written into %s", d)
		}
	}
}

// TestDrill runs every attack and benign workload against the real
// watcher, as child processes on a real file system, and checks the
// acceptance criteria: every attack detected, at most 3 files damaged in
// the median and 10 at worst, no false alarm, and nothing outside the
// sandbox touched.
func TestDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("the drill takes about a minute")
	}
	if os.Geteuid() != 0 {
		t.Skip("the drill needs root: fanotify to stop processes, losetup for wipe-raw")
	}
	tmp := t.TempDir()
	sandbox := filepath.Join(tmp, "sandbox")
	// A sibling folder, and a symbolic link to it planted nowhere: the
	// attacks find no way to it, and it must come out unchanged.
	sibling := filepath.Join(tmp, "sibling")
	os.MkdirAll(sibling, 0o755)
	want := map[string][]byte{}
	for _, name := range []string{"budget.xlsx", "letter.docx", "notes.txt"} {
		b := bytes.Repeat([]byte(name+" must survive "), 500)
		os.WriteFile(filepath.Join(sibling, name), b, 0o644)
		want[name] = b
	}

	realtime := realtimePermitted()
	t.Logf("real-time priority permitted: %v", realtime)
	r := drillRun(t, "drill", "--sandbox", sandbox, "--json", "--files", "120", "--bulk-mib", "16",
		"--slow-interval", "1s", "--settle", "2s", "--timeout", "2m")
	var rep drill.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("drill output (exit %d): %v\nstdout:\n%s\nstderr:\n%s", r.code, err, r.stdout, r.stderr)
	}
	t.Logf("backend %s, can stop %v", rep.Backend, rep.CanStop)
	var damaged []float64
	for _, res := range rep.Results {
		t.Logf("%-16s %-6s detected=%-5v in %6.0f ms  damaged %3d/%d  stopped=%v alerts=%d foreign=%d signals=%v %s",
			res.Scenario, res.Kind, res.Detected, res.DetectionMS, res.FilesDamaged, res.FilesTotal, res.Stopped,
			res.Alerts, res.ForeignAlerts, signals(res), res.Error)
		if res.Error != "" {
			t.Errorf("%s could not run: %s", res.Scenario, res.Error)
			continue
		}
		switch res.Kind {
		case drill.KindAttack:
			damaged = append(damaged, float64(res.FilesDamaged))
			if !res.Detected {
				t.Errorf("%s was not detected (%d of %d files damaged)", res.Scenario, res.FilesDamaged, res.FilesTotal)
			}
			if res.Running > 0 {
				t.Errorf("%s: %d of its processes were still running after the alert", res.Scenario, res.Running)
			}
			// The worst case (at most 10 files) is a race between the
			// attack and the watcher. With real-time priority and a held
			// suspect (docs/design.md, "Holding a suspect") the watcher
			// wins it on a loaded machine too; without (no CAP_SYS_NICE)
			// a loaded machine decides it, so it is only logged then.
			if res.FilesDamaged > 10 {
				if realtime {
					t.Errorf("%s damaged %d files before it was stopped, want at most 10", res.Scenario, res.FilesDamaged)
				} else {
					t.Logf("%s damaged %d files before it was stopped (target: at most 10; no real-time priority here)", res.Scenario, res.FilesDamaged)
				}
			}
		case drill.KindBenign:
			if res.FalseAlarms > 0 {
				t.Errorf("false alarm on %s: %+v", res.Scenario, res.Alert)
			}
		}
	}
	var names []string
	for _, res := range rep.Results {
		names = append(names, res.Scenario)
	}
	for _, s := range drill.Scenarios() {
		if !slices.Contains(names, s.Name) {
			t.Errorf("scenario %s did not run", s.Name)
		}
	}
	slices.Sort(damaged)
	if m := medianOf(damaged); m > 3 {
		t.Errorf("median files damaged %g, want at most 3", m)
	}
	if rep.OK() != (r.code == 0) {
		t.Errorf("exit code %d with a report that is OK=%v", r.code, rep.OK())
	}
	for name, b := range want {
		got, err := os.ReadFile(filepath.Join(sibling, name))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s next to the sandbox changed (%v)", name, err)
		}
	}
	if entries, _ := os.ReadDir(sandbox); len(entries) != 1 {
		t.Errorf("the sandbox was not cleaned up: %d entries", len(entries))
	}
}

// TestDrillTable checks the human output of a short drill.
func TestDrillTable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the drill needs root")
	}
	sandbox := filepath.Join(t.TempDir(), "sandbox")
	r := drillRun(t, "drill", "--sandbox", sandbox, "--scenario", "encrypt-rename,bulk-move", "--files", "40", "--settle", "1s")
	for _, want := range []string{"SCENARIO", "encrypt-rename", "bulk-move", "attacks: ", "false alarms: "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the table lacks %q:\n%s\nstderr:\n%s", want, r.stdout, r.stderr)
		}
	}
	if r := drillRun(t, "drill", "--sandbox", sandbox, "--scenario", "no-such-thing"); r.code != exitUsage {
		t.Errorf("an unknown scenario: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestDrillForce: with --force a non-empty folder is used through a new
// subfolder, and what was there survives every attack.
func TestDrillForce(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the drill needs root")
	}
	dir := t.TempDir()
	mine := filepath.Join(dir, "thesis.docx")
	os.WriteFile(mine, []byte("years of work"), 0o644)
	r := drillRun(t, "drill", "--sandbox", dir, "--force", "--json", "--files", "30", "--settle", "500ms",
		"--scenario", "encrypt-rename,wipe-delete,bulk-move")
	var rep drill.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("drill output (exit %d): %v\n%s\n%s", r.code, err, r.stdout, r.stderr)
	}
	if rep.Sandbox != filepath.Join(dir, "kalaja-drill") || len(rep.Results) != 3 {
		t.Errorf("sandbox %s, %d results", rep.Sandbox, len(rep.Results))
	}
	if b, err := os.ReadFile(mine); err != nil || string(b) != "years of work" {
		t.Errorf("the file next to the forced sandbox changed: %q, %v", b, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("the forced folder holds %v", entries)
	}
}

func signals(r drill.Result) []string {
	if r.Alert == nil {
		return nil
	}
	return r.Alert.Signals
}

// medianOf returns the median of sorted v.
func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// realtimePermitted reports whether this process may run a thread at
// real-time priority (SCHED_FIFO), as the drill's watcher asks to.
func realtimePermitted() bool {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 1}, 0) != nil {
		return false
	}
	unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL}, 0)
	return true
}

// TestDrillRecover: after every attack of the drill, recover (and, with
// --heal, the watcher's healing) brings back every file of the tree backed
// up before the attack, byte for byte; without healing, the backup after
// the attack is judged suspect (by its health or the alert).
func TestDrillRecover(t *testing.T) {
	if testing.Short() {
		t.Skip("the drill takes about a minute")
	}
	if os.Geteuid() != 0 {
		t.Skip("the drill needs root: fanotify to stop processes, losetup for wipe-raw")
	}
	var attacks []string
	for _, sc := range drill.Scenarios() {
		if sc.Kind == drill.KindAttack && sc.Family != drill.FamilyBackup { // nothing of the tree to recover
			attacks = append(attacks, sc.Name)
		}
	}
	for _, mode := range [][]string{{"--recover"}, {"--recover", "--heal"}} {
		t.Run(strings.Join(mode, " "), func(t *testing.T) {
			args := append([]string{"drill", "--sandbox", filepath.Join(t.TempDir(), "sandbox"), "--json", "--files", "120",
				"--slow-interval", "1s", "--settle", "2s", "--timeout", "2m", "--scenario", strings.Join(attacks, ",")}, mode...)
			r := drillRun(t, args...)
			var rep drill.Report
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
				t.Fatalf("drill output (exit %d): %v\nstdout:\n%s\nstderr:\n%s", r.code, err, r.stdout, r.stderr)
			}
			if len(rep.Results) != len(attacks) {
				t.Fatalf("%d results for %d attacks", len(rep.Results), len(attacks))
			}
			for _, res := range rep.Results {
				rec := res.Recovery
				if rec == nil {
					t.Errorf("%s: no recovery (error %q)", res.Scenario, res.Error)
					continue
				}
				t.Logf("%-16s damaged %d, healed %d, recovered %d, lost %d in %.2f s; suspect %v %q %s",
					res.Scenario, res.FilesDamaged, rec.Healed, rec.FilesRecovered, rec.FilesLost, rec.Seconds, rec.Suspect, rec.Reasons, rec.Error)
				if rec.Error != "" || rec.FilesLost != 0 {
					t.Errorf("%s: recovery lost %d files: %s", res.Scenario, rec.FilesLost, rec.Error)
				}
				if rec.Judged && !rec.Suspect {
					t.Errorf("%s: the backup after the attack was judged clean", res.Scenario)
				}
			}
			if r.code != 0 {
				t.Errorf("drill exit %d: %s", r.code, r.stderr)
			}
		})
	}
}

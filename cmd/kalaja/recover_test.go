package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store/local"
	"github.com/kalaja/kalaja/internal/testtree"
)

// recoverFixture is a folder backed up clean, then damaged as ransomware
// does and backed up again.
type recoverFixture struct {
	e          *testEnv
	src, clean string // the live folder, and a copy of it as first backed up
	good, bad  string // snapshot IDs: the clean one and the suspect one
	alerts     string // the alert log
}

func newRecoverFixture(t *testing.T) *recoverFixture {
	t.Helper()
	f := &recoverFixture{e: newEnv(t), src: filepath.Join(t.TempDir(), "src"), clean: filepath.Join(t.TempDir(), "clean")}
	f.alerts = filepath.Join(t.TempDir(), "alerts.jsonl")
	f.e.vars = append(f.e.vars, "KALAJA_ALERT_LOG="+f.alerts)
	f.e.must("init")
	must(t, os.Mkdir(f.src, 0o755))
	if _, err := testtree.Generate(f.src, testtree.Options{Seed: 5, Files: 200, MaxFileSize: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	f.good = f.e.backup(f.src)
	if out, err := exec.Command("cp", "-a", f.src, f.clean).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	// Ransomware: every file of one folder encrypted to NAME.locked, a
	// note beside them.
	n := 0
	err := filepath.WalkDir(f.src, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || n >= 12 {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for i := range b {
			b[i] ^= byte(i*131 + 7)
		}
		if err := os.WriteFile(p+".locked", append(b, make([]byte, 300)...), 0o644); err != nil {
			return err
		}
		n++
		if err := os.WriteFile(filepath.Join(filepath.Dir(p), "README-DECRYPT.txt"), []byte("pay\n"), 0o644); err != nil {
			return err
		}
		return os.Remove(p)
	})
	if err != nil {
		t.Fatal(err)
	}
	f.bad = f.e.backup(f.src)
	return f
}

// recoverJSON runs recover --json and decodes its output.
func (f *recoverFixture) recoverJSON(t *testing.T, args ...string) (recoverResult, result) {
	t.Helper()
	r := f.e.run(append([]string{"recover", "--json"}, args...)...)
	var res recoverResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil && r.code == 0 {
		t.Fatalf("recover output %q (stderr %q): %v", r.stdout, r.stderr, err)
	}
	return res, r
}

// TestRecoverInPlace: recover chooses the clean snapshot over the suspect
// one, repairs the live tree to be identical to it in content and
// metadata, moves what the attack left (and a benign program's new file)
// into the quarantine, and marks the incident resolved.
func TestRecoverInPlace(t *testing.T) {
	f := newRecoverFixture(t)
	benign := filepath.Join(f.src, "report-written-after.txt")
	must(t, os.WriteFile(benign, []byte("written by a benign program after the snapshot\n"), 0o644))
	q := filepath.Join(t.TempDir(), "quarantine")
	res, r := f.recoverJSON(t, "--in-place", "--quarantine", q, f.src)
	if r.code != 0 {
		t.Fatalf("recover: exit %d: %s", r.code, r.stderr)
	}
	if res.Choice.Snapshot != f.good || len(res.Choice.Passed) != 1 || res.Choice.Passed[0].Snapshot != f.bad {
		t.Fatalf("choice %+v; want %s, passing over %s", res.Choice, f.good, f.bad)
	}
	rep := res.Report
	if rep.FilesRestored != 12 || rep.VerifyFailed != 0 || rep.Errors != 0 || rep.Verified < 12 {
		t.Fatalf("report %+v", rep)
	}
	for _, d := range testtree.Compare(f.clean, f.src, testtree.CompareOptions{}) {
		t.Errorf("recovered tree differs from the snapshot: %v", d)
	}
	// Everything the snapshot did not have is in the quarantine, under its
	// path: the .locked copies, the notes and the benign file.
	locked := 0
	err := filepath.WalkDir(filepath.Join(q, f.src), func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".locked") {
			locked++
		}
		return err
	})
	if err != nil || locked != 12 {
		t.Errorf("%d .locked files in the quarantine (%v), want 12", locked, err)
	}
	if b, err := os.ReadFile(filepath.Join(q, benign)); err != nil || !strings.Contains(string(b), "benign program") {
		t.Errorf("the benign file was not quarantined intact: %q, %v", b, err)
	}
	if _, err := os.Lstat(benign); !os.IsNotExist(err) {
		t.Errorf("the benign file is still in the tree: %v", err)
	}
	// The incident is resolved: a backup now is clean and judged on its own.
	if b, _ := os.ReadFile(f.alerts); !strings.Contains(string(b), `"resolved":{"by":"recover","snapshot":"`+f.good) {
		t.Errorf("alert log after recover: %q", b)
	}
	if r := f.e.must("backup", f.src); !strings.Contains(r.stdout, "health: clean") {
		t.Errorf("backup after recover: %s", r.stdout)
	}
}

// TestRecoverRefusesUnproven: a snapshot the ledger does not name (a thief
// with the password stored it, or a backup died before logging it) is
// never chosen, and refused when named.
func TestRecoverRefusesUnproven(t *testing.T) {
	f := newRecoverFixture(t)
	planted := plantSnapshot(t, f.e, f.good)
	res, r := f.recoverJSON(t, "--target", t.TempDir(), f.src)
	if r.code != 0 || res.Choice.Snapshot != f.good {
		t.Fatalf("recover chose %+v (exit %d: %s); want %s", res.Choice, r.code, r.stderr, f.good)
	}
	found := false
	for _, p := range res.Choice.Passed {
		found = found || p.Snapshot == planted && strings.Contains(p.Reason, "not proven by the ledger")
	}
	if !found {
		t.Errorf("the unlogged snapshot %s was not passed over as unproven: %+v", planted[:8], res.Choice.Passed)
	}
	r = f.e.run("recover", "--in-place", "--snapshot", planted[:8], "--allow-suspect", f.src)
	if r.code == 0 || !strings.Contains(r.stderr, "not proven by the ledger") {
		t.Fatalf("recover of the unlogged snapshot: exit %d, %s", r.code, r.stderr)
	}
}

// plantSnapshot stores, as a thief holding the password would, a copy of
// snapshot id dated an hour later, without logging it, and returns its ID.
func plantSnapshot(t *testing.T, e *testEnv, id string) string {
	t.Helper()
	st, err := local.Open(e.repo)
	must(t, err)
	r, err := repo.Open(t.Context(), st, []byte("test password"))
	must(t, err)
	want, err := blob.ParseID(id)
	must(t, err)
	sn, err := r.LoadSnapshot(t.Context(), want)
	must(t, err)
	sn.Time = sn.Time.Add(time.Hour)
	sn.Parent = &sn.ID
	planted, err := r.SaveSnapshot(t.Context(), sn)
	must(t, err)
	return planted.String()
}

// TestRecoverAfterAlert: two clean snapshots with an alert of the watcher
// between them: the one before the alert is chosen, and the newer one is
// refused when named, unless --allow-suspect; snapshots shows it suspect.
func TestRecoverAfterAlert(t *testing.T) {
	e := newEnv(t)
	alerts := filepath.Join(t.TempDir(), "alerts.jsonl")
	e.vars = append(e.vars, "KALAJA_ALERT_LOG="+alerts)
	e.must("init")
	src := filepath.Join(t.TempDir(), "src")
	must(t, os.Mkdir(src, 0o755))
	must(t, os.WriteFile(filepath.Join(src, "minutes.txt"), []byte("the council met\n"), 0o644))
	before := e.backup(src)
	must(t, os.WriteFile(filepath.Join(src, "agenda.txt"), []byte("next meeting\n"), 0o644))
	after := e.backup(src)
	list := snapshotTimes(t, e)
	alertAt := list[before].end.Add(list[after].start.Sub(list[before].end) / 2)
	line := fmt.Sprintf(`{"time":%q,"scope":"process tree","pid":4242,"command":"locker","signals":[],"files":[]}`+"\n", alertAt.UTC().Format(time.RFC3339Nano))
	must(t, os.WriteFile(alerts, []byte(line), 0o600))

	var res recoverResult
	r := e.must("recover", "--json", "--target", t.TempDir(), src)
	must(t, json.Unmarshal([]byte(r.stdout), &res))
	if res.Choice.Snapshot != before || !strings.Contains(res.Choice.IncidentWhy, "locker (pid 4242)") {
		t.Fatalf("recover chose %+v; want %s, the incident at the alert", res.Choice, before)
	}
	r = e.run("recover", "--target", t.TempDir(), "--snapshot", after[:8], src)
	if r.code == 0 || !strings.Contains(r.stderr, "taken after the incident began (the watcher's alert") {
		t.Fatalf("recover of the snapshot after the alert: exit %d, %s", r.code, r.stderr)
	}
	e.must("recover", "--target", t.TempDir(), "--snapshot", after[:8], "--allow-suspect", src)
	var snaps []struct {
		ID     string `json:"id"`
		Health struct {
			Status string `json:"status"`
			Alerts int    `json:"alerts"`
		} `json:"health"`
	}
	must(t, json.Unmarshal([]byte(e.must("snapshots", "--json").stdout), &snaps))
	for _, s := range snaps {
		want := map[bool]string{true: string(snapshot.Suspect), false: string(snapshot.Clean)}[s.ID == after]
		if s.Health.Status != want || s.ID == after && s.Health.Alerts != 1 {
			t.Errorf("snapshot %s: %+v, want %s", s.ID[:8], s.Health, want)
		}
	}
}

// span is when a backup started and ended.
type span struct{ start, end time.Time }

// snapshotTimes returns when each snapshot's backup ran, by ID.
func snapshotTimes(t *testing.T, e *testEnv) map[string]span {
	t.Helper()
	var snaps []struct {
		ID      string `json:"id"`
		Summary struct {
			Start time.Time `json:"start"`
			End   time.Time `json:"end"`
		} `json:"summary"`
	}
	must(t, json.Unmarshal([]byte(e.must("snapshots", "--json").stdout), &snaps))
	out := map[string]span{}
	for _, s := range snaps {
		out[s.ID] = span{s.Summary.Start, s.Summary.End}
	}
	return out
}

// TestRecoverRefusesHeldTree: a stopped process holding a file open under
// the path blocks a repair in place, named, until --force.
func TestRecoverRefusesHeldTree(t *testing.T) {
	f := newRecoverFixture(t)
	var victim string
	filepath.WalkDir(f.src, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && victim == "" {
			victim = p
		}
		return err
	})
	cmd := exec.Command("sh", "-c", `exec 3<"$1"; kill -STOP $$; sleep 60`, "sh", victim)
	must(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(cmd.Process.Pid, &ws, syscall.WUNTRACED, nil); err != nil || !ws.Stopped() {
		t.Fatalf("the holder did not stop: %v, %v", err, ws)
	}
	r := f.e.run("recover", "--in-place", f.src)
	if r.code == 0 || !strings.Contains(r.stderr, fmt.Sprintf("pid %d", cmd.Process.Pid)) {
		t.Fatalf("recover under a stopped holder: exit %d, %s", r.code, r.stderr)
	}
	if r := f.e.run("recover", "--in-place", "--force", "--quarantine", filepath.Join(t.TempDir(), "q"), f.src); r.code != 0 {
		t.Fatalf("recover --force: exit %d, %s", r.code, r.stderr)
	}
}

package archiver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/drill"
	"github.com/kalaja/kalaja/internal/snapshot"
)

// childEnv marks the test binary re-executed as a drill child process
// (attacks, their workers, the office-save workload).
const childEnv = "KALAJA_ARCHIVER_TEST_DRILL_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		if err := drill.RunChild(context.Background(), os.Args[1:], drillChild(), drill.Policy{Home: os.Getenv("HOME")}, nil); err != nil {
			fmt.Fprintln(os.Stderr, "drill child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func drillChild() drill.Child {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	return drill.Child{Args: []string{exe}, Env: append(os.Environ(), childEnv+"=1")}
}

// TestHealthScenarios runs every scenario of the drill, attacks and
// benign workloads, to completion and without a watcher, between two
// backups of the sandbox: the second must be suspect after an attack, for
// the attack's reasons, and clean after a benign workload.
func TestHealthScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every drill scenario and real programs (git, go build, sqlite3)")
	}
	// The reasons each attack must give (it may give more).
	want := map[string][]snapshot.Signal{
		drill.EncryptRename:  {snapshot.DamagedFiles, snapshot.NewExtension, snapshot.RansomNotes},
		drill.SlowEncrypt:    {snapshot.DamagedFiles, snapshot.NewExtension, snapshot.RansomNotes},
		drill.MultiProcess:   {snapshot.DamagedFiles, snapshot.NewExtension, snapshot.RansomNotes},
		drill.EncryptInPlace: {snapshot.DamagedFiles, snapshot.RansomNotes},
		drill.Intermittent:   {snapshot.DamagedFiles, snapshot.RansomNotes},
		drill.EncodeBase64:   {snapshot.DamagedFiles, snapshot.RansomNotes},
		drill.WipeRandom:     {snapshot.DamagedFiles},
		drill.WipeZero:       {snapshot.DamagedFiles},
		drill.WipeTruncate:   {snapshot.DamagedFiles},
		drill.WipeDelete:     {snapshot.DeletedFiles},
		drill.WipeRaw:        {snapshot.DamagedBytes},
	}
	sb, err := drill.Prepare(filepath.Join(t.TempDir(), "sandbox"), drill.Policy{Home: os.Getenv("HOME")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	for _, sc := range drill.Scenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			ctx := t.Context()
			r := newRepo(t)
			paths := []string{sb.Root()}
			var first *snapshot.Snapshot
			rep, err := drill.Run(ctx, drill.Config{
				Sandbox: sb, Child: drillChild(), Env: os.Environ(),
				Tree: drill.Tree{Files: 80, Seed: 1}, BulkBytes: 8 << 20, SlowInterval: time.Millisecond,
				Scenarios: []string{sc.Name},
				Prepared: func(ctx context.Context, _ drill.Scenario) error {
					var err error
					first, err = Backup(ctx, r, paths, Options{Hostname: "h"})
					return err
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			if res := rep.Results[0]; res.Error != "" {
				if strings.Contains(res.Error, drill.ErrMissingProgram.Error()) {
					t.Skip(res.Error)
				}
				t.Fatalf("scenario: %s", res.Error)
			}
			sn, err := Backup(ctx, r, paths, Options{Hostname: "h", Parent: first, Baseline: []*snapshot.Health{first.Health}})
			if err != nil {
				t.Fatal(err)
			}
			h := sn.Health
			var got []snapshot.Signal
			for _, r := range h.Reasons {
				got = append(got, r.Signal)
			}
			st := h.Stats
			t.Logf("%s %s: %s; files %+v, damaged %d (%d lost format, %d high-entropy, %d zeroed, %d truncated), new extensions %+v, notes %d",
				sc.Kind, sc.Name, h.Verdict(), st.Files, st.Damaged, st.LostFormat, st.HighEntropy, st.Zeroed, st.Truncated, st.NewExtensions, len(st.Notes))
			if first.Health == nil || first.Health.Status != snapshot.Clean || first.Health.Stats.Files.Added == 0 {
				t.Errorf("first backup: %+v", first.Health)
			}
			if sc.Kind == drill.KindBenign {
				if h.Status != snapshot.Clean {
					t.Errorf("benign %s judged %s", sc.Name, h.Verdict())
				}
				return
			}
			if h.Status != snapshot.Suspect {
				t.Fatalf("attack %s judged clean", sc.Name)
			}
			for _, s := range want[sc.Name] {
				if !slices.Contains(got, s) {
					t.Errorf("attack %s: reasons %v lack %s", sc.Name, got, s)
				}
			}
		})
	}
}

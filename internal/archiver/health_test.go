package archiver

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/blob"
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
			if sc.Family == drill.FamilyBackup {
				t.Skip("attacks Kalaja's own files on the host, not the tree a backup judges")
			}
			if sc.Name == drill.MoveFS {
				// The files it moves end on a file system the drill
				// unmounts before the backup: for the host's backup they
				// left the tree, most of this small sandbox, which health
				// reports as it should (deleted_files).
				t.Skip("moves most of the sandbox's files off the host's tree")
			}
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

// dirNodes returns the nodes of dir in sn.
func dirNodes(t *testing.T, r interface {
	LoadTree(context.Context, blob.ID) (*snapshot.Tree, error)
}, sn *snapshot.Snapshot, dir string) map[string]snapshot.Node {
	t.Helper()
	tree, err := r.LoadTree(t.Context(), sn.Tree)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range splitPath(dir) {
		n := tree.Find(part)
		if n == nil || n.Subtree == nil {
			t.Fatalf("snapshot lacks %s", part)
		}
		if tree, err = r.LoadTree(t.Context(), *n.Subtree); err != nil {
			t.Fatal(err)
		}
	}
	out := map[string]snapshot.Node{}
	for _, n := range tree.Nodes {
		out[string(n.Name)] = n
	}
	return out
}

// TestFingerprints: files read are fingerprinted, unchanged files keep
// their fingerprint, ReadAll reads everything and still judges against
// the parent, and excluded files are not deletions.
func TestFingerprints(t *testing.T) {
	ctx := t.Context()
	r := newRepo(t)
	dir := t.TempDir()
	random := make([]byte, 16000)
	mrand.NewChaCha8([32]byte{1}).Read(random) // seeded: a few random blocks in 1000 look like a format
	files := map[string][]byte{
		"a.txt": []byte(strings.Repeat("the council approved the budget\n", 300)), "b.docx": append([]byte("PK\x03\x04"), random...),
		"c.txt": nil, "d.bin": random, "e.txt": []byte("short"), "f.txt": []byte(strings.Repeat("minutes of the meeting\n", 100)),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{"a.txt": "text", "b.docx": "zip+high", "c.txt": "empty", "d.bin": "unknown+high", "e.txt": "text", "f.txt": "text"}
	check := func(sn *snapshot.Snapshot) {
		t.Helper()
		for name, n := range dirNodes(t, r, sn, dir) {
			got := n.Format
			if n.High {
				got += "+high"
			}
			if got != want[name] {
				t.Errorf("%s: fingerprint %q, want %q", name, got, want[name])
			}
		}
	}
	first, err := Backup(ctx, r, []string{dir}, Options{Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	check(first)
	second, err := Backup(ctx, r, []string{dir}, Options{Hostname: "h", Parent: first})
	if err != nil {
		t.Fatal(err)
	}
	if second.Summary.FilesUnchanged != len(files) || second.Health.Stats.Files.Unchanged != int64(len(files)) {
		t.Fatalf("second backup: %+v, health %+v", second.Summary, second.Health.Stats.Files)
	}
	check(second)

	for _, name := range []string{"a.txt", "e.txt", "f.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), random[:len(files[name])], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gone := filepath.Join(dir, "b.docx")
	third, err := Backup(ctx, r, []string{dir}, Options{Hostname: "h", Parent: second, ReadAll: true, Exclude: func(p string) bool { return p == gone }})
	if err != nil {
		t.Fatal(err)
	}
	st := third.Health.Stats
	if third.Summary.FilesUnchanged != 0 || st.Files.Unchanged != 2 || st.Files.Changed != 3 || st.Files.Deleted != 0 || st.LostFormat != 3 ||
		third.Health.Status != snapshot.Suspect || third.Parent == nil || *third.Parent != second.ID {
		t.Fatalf("ReadAll backup: %+v, health %s %+v", third.Summary, third.Health.Verdict(), st)
	}
}

// TestHealthFewerPaths: against a parent of more paths, the paths not
// backed up any more are not deletions.
func TestHealthFewerPaths(t *testing.T) {
	ctx := t.Context()
	r := newRepo(t)
	dir := t.TempDir()
	var paths []string
	for _, d := range []string{"a", "b"} {
		p := filepath.Join(dir, d)
		paths = append(paths, p)
		for i := range 30 {
			f := filepath.Join(p, fmt.Sprint(i, ".txt"))
			os.MkdirAll(filepath.Dir(f), 0o755)
			if err := os.WriteFile(f, []byte(f), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	both, err := Backup(ctx, r, paths, Options{Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	one, err := Backup(ctx, r, paths[:1], Options{Hostname: "h", Parent: both})
	if err != nil {
		t.Fatal(err)
	}
	if st := one.Health.Stats; st.Files != (snapshot.Counts{Unchanged: 30}) || one.Health.Status != snapshot.Clean {
		t.Fatalf("%s %+v", one.Health.Verdict(), st.Files)
	}
}

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/store/local"
)

// ledgerFixture is a repository after three backups, with a copy of its
// ledger directory taken after each.
type ledgerFixture struct {
	e      *testEnv
	src    string
	snaps  []string // snapshot IDs, oldest first
	copies []string // ledger directory after backup i
}

func newLedgerFixture(t *testing.T) *ledgerFixture {
	t.Helper()
	f := &ledgerFixture{e: newEnv(t), src: filepath.Join(t.TempDir(), "src")}
	f.e.must("init")
	must(t, os.MkdirAll(filepath.Join(f.src, "docs"), 0o755))
	for i := range 3 {
		writeFile(t, filepath.Join(f.src, "docs", "report-"+string(rune('a'+i))+".txt"), bytes.Repeat([]byte(rand.Text()+"\n"), 2000))
		writeFile(t, filepath.Join(f.src, "blob.bin"), randomBytes(300<<10))
		f.snaps = append(f.snaps, f.e.backup(f.src))
		cp := filepath.Join(t.TempDir(), "ledger")
		copyTree(t, filepath.Join(f.e.repo, "ledger"), cp)
		f.copies = append(f.copies, cp)
	}
	return f
}

// copyTree copies a directory of regular files.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	out, err := exec.Command("cp", "-a", from, to).CombinedOutput()
	if err != nil {
		t.Fatalf("cp -a %s %s: %v\n%s", from, to, err, out)
	}
}

// replaceLedger puts a copied ledger directory in place of the repository's.
func (f *ledgerFixture) replaceLedger(t *testing.T, copyDir string) {
	t.Helper()
	dir := filepath.Join(f.e.repo, "ledger")
	must(t, os.RemoveAll(dir))
	copyTree(t, copyDir, dir)
}

// verify runs kalaja verify --json and returns its report and exit code.
func verifyJSON(t *testing.T, e *testEnv, args ...string) (ledger.Report, int) {
	t.Helper()
	r := e.run(append([]string{"verify", "--json"}, args...)...)
	var rep ledger.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("verify output %q (stderr %q): %v", r.stdout, r.stderr, err)
	}
	if (r.code == 0) != (len(rep.Problems) == 0) {
		t.Fatalf("verify exited %d with %d problems", r.code, len(rep.Problems))
	}
	return rep, r.code
}

// wantProblems fails unless every problem in rep has the given kind and
// names an object containing object, and one has a message containing msg.
func wantProblems(t *testing.T, rep ledger.Report, kind, object, msg string) {
	t.Helper()
	said := false
	for _, p := range rep.Problems {
		if p.Kind != kind || !strings.Contains(p.Object, object) {
			t.Errorf("problem %+v, want kind %s, object ~%q", p, kind, object)
		}
		said = said || strings.Contains(p.Message, msg)
	}
	if !said {
		t.Errorf("no problem says %q: %+v", msg, rep.Problems)
	}
}

// anyFile returns the path of one file below dir.
func anyFile(t *testing.T, dir string) string {
	t.Helper()
	var found string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && found == "" {
			found = p
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no file below %s", dir)
	}
	return found
}

// reforge rewrites the log as an attacker holding the repository key would:
// it puts the ledger copied after the first backup back, and appends the
// later records again in reverse order, plus extra records.
func (f *ledgerFixture) reforge(t *testing.T, extra int) {
	t.Helper()
	ctx := context.Background()
	st, err := local.Open(f.e.repo)
	must(t, err)
	r, err := repo.Open(ctx, st, []byte("test password"))
	must(t, err)
	lg, err := ledger.Open(ctx, st, r.Config().ID, r.Keys())
	must(t, err)
	all, err := lg.ReadAll(ctx)
	must(t, err)
	f.replaceLedger(t, f.copies[0])
	first, err := lg.ReadAll(ctx)
	must(t, err)
	later := slices.Clone(all.Records[first.N():])
	slices.Reverse(later)
	for range extra {
		later = append(later, later[0])
	}
	if _, _, err := lg.Append(ctx, later, ledger.Checkpoint{}); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyTamper makes each change an attacker who controls the storage
// could make, after real backups, and requires verify to name it.
func TestVerifyTamper(t *testing.T) {
	tests := []struct {
		name       string
		readData   bool
		tamper     func(t *testing.T, f *ledgerFixture)
		kind       string
		object     string
		message    string
		backupFail bool // the next backup must refuse to run
	}{{
		name:   "pack deleted",
		tamper: func(t *testing.T, f *ledgerFixture) { must(t, os.Remove(anyFile(t, filepath.Join(f.e.repo, "data")))) },
		kind:   ledger.ProblemMissing, object: "data/", message: "is missing",
	}, {
		name:     "pack replaced",
		readData: true,
		tamper: func(t *testing.T, f *ledgerFixture) {
			p := anyFile(t, filepath.Join(f.e.repo, "data"))
			fi, err := os.Stat(p)
			must(t, err)
			must(t, os.Chmod(p, 0o600))
			must(t, os.WriteFile(p, randomBytes(int(fi.Size())), 0o600))
		},
		kind: ledger.ProblemChanged, object: "data/", message: "replaced",
	}, {
		name: "snapshot replaced by another",
		tamper: func(t *testing.T, f *ledgerFixture) {
			a := filepath.Join(f.e.repo, "snapshots", f.snaps[0])
			b, err := os.ReadFile(filepath.Join(f.e.repo, "snapshots", f.snaps[1]))
			must(t, err)
			must(t, os.Chmod(a, 0o600))
			must(t, os.WriteFile(a, b, 0o600))
		},
		kind: ledger.ProblemChanged, object: "snapshots/", message: "",
	}, {
		name: "index replaced",
		tamper: func(t *testing.T, f *ledgerFixture) {
			p := anyFile(t, filepath.Join(f.e.repo, "index"))
			b, err := os.ReadFile(p)
			must(t, err)
			b[len(b)/2] ^= 1
			must(t, os.Chmod(p, 0o600))
			must(t, os.WriteFile(p, b, 0o600))
		},
		kind: ledger.ProblemChanged, object: "index/", message: "replaced",
	}, {
		name: "snapshot removed",
		tamper: func(t *testing.T, f *ledgerFixture) {
			must(t, os.Remove(filepath.Join(f.e.repo, "snapshots", f.snaps[1])))
		},
		kind: ledger.ProblemMissing, message: "is missing",
	}, {
		name: "whole repository rolled back",
		tamper: func(t *testing.T, f *ledgerFixture) {
			// An older copy of everything: the snapshots and ledger of the
			// first backup only.
			for _, s := range f.snaps[1:] {
				must(t, os.Remove(filepath.Join(f.e.repo, "snapshots", s)))
			}
			f.replaceLedger(t, f.copies[0])
		},
		kind: ledger.ProblemRollback, message: "rolled back", backupFail: true,
	}, {
		name:   "log truncated and regrown longer",
		tamper: func(t *testing.T, f *ledgerFixture) { f.reforge(t, 2) },
		kind:   ledger.ProblemFork, message: "rewritten", backupFail: true,
	}, {
		name:   "log truncated and regrown to the same size",
		tamper: func(t *testing.T, f *ledgerFixture) { f.reforge(t, 0) },
		kind:   ledger.ProblemFork, message: "two checkpoints of size", backupFail: true,
	}, {
		name: "checkpoint signed by another key",
		tamper: func(t *testing.T, f *ledgerFixture) {
			dir := filepath.Join(f.e.repo, "ledger", "checkpoints")
			ents, err := os.ReadDir(dir)
			must(t, err)
			p := filepath.Join(dir, ents[len(ents)-1].Name())
			b, err := os.ReadFile(p)
			must(t, err)
			text, _, _ := bytes.Cut(b, []byte("\n\n"))
			skey, _, err := ledger.GenerateKey("kalaja-log-" + strings.Split(string(text), "/")[1][:16])
			must(t, err)
			forged := signNote(t, string(text)+"\n", skey)
			must(t, os.Chmod(p, 0o600))
			must(t, os.WriteFile(p, forged, 0o600))
		},
		// Backups go on: a checkpoint that does not verify is passed over,
		// and the log's records still extend what the client saw.
		kind: ledger.ProblemSignature, object: "ledger/checkpoints/", message: "not signed by the log key",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newLedgerFixture(t)
			args := []string{}
			if tt.readData {
				args = append(args, "--read-data")
			}
			if rep, code := verifyJSON(t, f.e, args...); code != 0 {
				t.Fatalf("untouched repository: verify exit %d: %+v", code, rep.Problems)
			}
			tt.tamper(t, f)
			rep, code := verifyJSON(t, f.e, args...)
			wantProblems(t, rep, tt.kind, tt.object, tt.message)
			if code != exitTampered {
				t.Errorf("verify of a tampered repository exited %d, want %d (tampering)", code, exitTampered)
			}
			for _, p := range rep.Problems {
				t.Logf("%s %s: %s", p.Kind, p.Object, p.Message)
			}
			if tt.backupFail {
				r := f.e.run("backup", f.src)
				if r.code != exitTampered {
					t.Errorf("backup on the tampered repository exited %d, want %d (tampering)", r.code, exitTampered)
				}
				t.Logf("backup: %s", strings.TrimSpace(r.stderr))
			}
		})
	}
}

// signNote signs text with a note private key, as an attacker would.
func signNote(t *testing.T, text, skey string) []byte {
	t.Helper()
	msg, err := signWith(text, skey)
	must(t, err)
	return msg
}

// TestVerifySnapshotNotLogged stores a snapshot the way a host that skips
// the ledger would, and requires verify to report it; the next backup
// then logs it, and verify passes.
func TestVerifySnapshotNotLogged(t *testing.T) {
	f := newLedgerFixture(t)
	ctx := context.Background()
	st, err := local.Open(f.e.repo)
	must(t, err)
	r, err := repo.Open(ctx, st, []byte("test password"))
	must(t, err)
	sn, err := r.LoadSnapshot(ctx, mustParseID(t, f.snaps[0]))
	must(t, err)
	sn.Tags = []string{"injected"}
	id, err := r.SaveSnapshot(ctx, sn)
	must(t, err)
	rep, _ := verifyJSON(t, f.e)
	wantProblems(t, rep, ledger.ProblemUnlogged, "snapshots/"+id.String(), "not in the ledger")
	f.e.backup(f.src)
	if rep, code := verifyJSON(t, f.e); code != 0 {
		t.Errorf("after the next backup: %+v", rep.Problems)
	}
}

// TestVerifyConcurrentHosts: two hosts, each with its own client state,
// back up at the same time, repeatedly; verify finds nothing wrong from
// either.
func TestVerifyConcurrentHosts(t *testing.T) {
	a := newEnv(t)
	a.must("init")
	b := envAt(t, a.repo)
	srcs := []string{filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")}
	for _, s := range srcs {
		must(t, os.Mkdir(s, 0o755))
	}
	for round := range 4 {
		var procs []*proc
		for i, e := range []*testEnv{a, b} {
			writeFile(t, filepath.Join(srcs[i], rand.Text()), randomBytes(2<<20))
			procs = append(procs, e.start("backup", "--host", []string{"host-a", "host-b"}[i], srcs[i]))
		}
		for _, p := range procs {
			if err := p.cmd.Wait(); err != nil {
				t.Fatalf("round %d: backup: %v\n%s", round, err, &p.stderr)
			}
		}
	}
	for _, e := range []*testEnv{a, b} {
		if rep, code := verifyJSON(t, e); code != 0 || rep.Snapshots != 8 {
			t.Errorf("verify: exit %d, %d snapshots, problems %+v", code, rep.Snapshots, rep.Problems)
		}
	}
}

// TestWitness runs a witness against a repository: it co-signs while the
// log grows, refuses a rolled-back and a forked log, and verify --witness
// demands its co-signature.
func TestWitness(t *testing.T) {
	f := newLedgerFixture(t)
	w := *f.e
	w.vars = append(slices.Clone(f.e.vars[:1]), "KALAJA_WITNESS_DIR="+filepath.Join(t.TempDir(), "witness"))
	wkey := strings.TrimSpace(w.must("witness", "init", "--name", "witness.example.org").stdout)
	logKey := strings.TrimSpace(f.e.must("ledger", "key").stdout)

	if rep, _ := verifyJSON(t, f.e, "--witness", wkey); len(rep.Problems) != 1 || rep.Problems[0].Kind != ledger.ProblemWitness {
		t.Errorf("verify --witness before the witness ran: %+v", rep.Problems)
	}
	w.must("witness", "cosign", "--log-key", logKey)
	if rep, code := verifyJSON(t, f.e, "--witness", wkey); code != 0 {
		t.Errorf("verify --witness: %+v", rep.Problems)
	}
	f.e.backup(f.src)
	w.must("witness", "cosign")
	good := filepath.Join(t.TempDir(), "ledger")
	copyTree(t, filepath.Join(f.e.repo, "ledger"), good)

	f.replaceLedger(t, f.copies[1])
	r := w.run("witness", "cosign")
	if r.code == 0 || !strings.Contains(r.stderr, "rollback") {
		t.Errorf("witness co-signed a rolled-back log: exit %d, %s", r.code, r.stderr)
	}
	f.replaceLedger(t, good)
	f.reforge(t, 3)
	// The attacker's rewrite dropped the witness's co-signatures; the
	// witness publishes them elsewhere too, so put them back.
	ws, err := filepath.Glob(filepath.Join(good, "witness", "*"))
	must(t, err)
	for _, p := range ws {
		copyTree(t, p, filepath.Join(f.e.repo, "ledger", "witness", filepath.Base(p)))
	}
	r = w.run("witness", "cosign")
	if r.code == 0 || !strings.Contains(r.stderr, "rewritten") {
		t.Errorf("witness co-signed a forked log: exit %d, %s", r.code, r.stderr)
	}
	rep, _ := verifyJSON(t, f.e, "--witness", wkey)
	found := false
	for _, p := range rep.Problems {
		found = found || (p.Kind == ledger.ProblemFork && strings.Contains(p.Message, "witness"))
	}
	if !found {
		t.Errorf("verify --witness on the forked log: %+v", rep.Problems)
	}
}

// signWith signs a note text with a private note key.
func signWith(text, skey string) ([]byte, error) {
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, err
	}
	return note.Sign(&note.Note{Text: text}, s)
}

func mustParseID(t *testing.T, s string) blob.ID {
	t.Helper()
	id, err := blob.ParseID(s)
	must(t, err)
	return id
}

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// kalajaBin is the binary built once for the end-to-end tests.
var kalajaBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kalaja-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kalajaBin = filepath.Join(dir, "kalaja")
	// Tests that make their own environment share this index cache (one
	// directory per repository ID) rather than the user's.
	os.Setenv("KALAJA_CACHE_DIR", filepath.Join(dir, "cache"))
	out, err := exec.Command("go", "build", "-o", kalajaBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build kalaja: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testEnv is one test repository: its path and password, and the environment
// every kalaja run gets.
type testEnv struct {
	t    testing.TB
	repo string
	vars []string
}

// newEnv makes a repository path (not yet initialised) in a temporary dir.
func newEnv(t testing.TB) *testEnv {
	t.Helper()
	return envAt(t, filepath.Join(t.TempDir(), "repo"))
}

// envAt returns an environment for the repository at repo, with a client
// state directory of its own.
func envAt(t testing.TB, repo string) *testEnv {
	return &testEnv{t: t, repo: repo, vars: []string{"KALAJA_REPOSITORY=" + repo, "KALAJA_PASSWORD=test password",
		"KALAJA_STATE_DIR=" + filepath.Join(t.TempDir(), "state"), "KALAJA_CACHE_DIR=" + filepath.Join(t.TempDir(), "cache")}}
}

// orphanScanDue makes the next backup list the store's packs for packs no
// index lists, as it does a day after the last listing: it removes the
// record of that listing from the client's cache.
func (e *testEnv) orphanScanDue() {
	e.t.Helper()
	for _, v := range e.vars {
		if dir, ok := strings.CutPrefix(v, "KALAJA_CACHE_DIR="); ok {
			marks, err := filepath.Glob(filepath.Join(dir, "*", "backups", "scanned"))
			if err != nil || len(marks) == 0 {
				e.t.Fatalf("no record of a listing of packs in %s (%v)", dir, err)
			}
			for _, m := range marks {
				if err := os.Remove(m); err != nil {
					e.t.Fatal(err)
				}
			}
		}
	}
}

// result is what one run of kalaja did.
type result struct {
	stdout, stderr string
	code           int
}

// run runs kalaja with args and returns its output and exit code.
func (e *testEnv) run(args ...string) result {
	e.t.Helper()
	cmd := exec.Command(kalajaBin, args...)
	cmd.Env = append(os.Environ(), e.vars...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run kalaja %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// must runs kalaja and fails the test unless it exits 0.
func (e *testEnv) must(args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("kalaja %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// backup runs a backup of paths and returns the new snapshot's ID.
func (e *testEnv) backup(paths ...string) string {
	e.t.Helper()
	r := e.must(append([]string{"backup", "--json"}, paths...)...)
	var v struct {
		Snapshot string `json:"snapshot"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Snapshot == "" {
		e.t.Fatalf("backup output %q: %v", r.stdout, err)
	}
	return v.Snapshot
}

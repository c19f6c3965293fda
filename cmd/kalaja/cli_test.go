package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRoundTripSmall(t *testing.T) {
	e := newEnv(t)
	e.must("init")
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(filepath.Join(src, "d"), 0o755)
	os.WriteFile(filepath.Join(src, "d", "f"), []byte("hello"), 0o644)
	id := e.backup(src)
	out := filepath.Join(t.TempDir(), "out")
	e.must("restore", id[:8], "--target", out)
	b, err := os.ReadFile(filepath.Join(out, src, "d", "f"))
	if err != nil || string(b) != "hello" {
		t.Fatalf("restored %q, %v", b, err)
	}
	if r := e.must("ls", "latest", src); !strings.Contains(r.stdout, filepath.Join(src, "d", "f")) {
		t.Fatalf("ls: %s", r.stdout)
	}
}

func TestExitCodes(t *testing.T) {
	e := newEnv(t)
	if r := e.run("snapshots"); r.code != exitNoRepo || !strings.Contains(r.stderr, "repository does not exist") {
		t.Fatalf("missing repository: exit %d, %s", r.code, r.stderr)
	}
	e.must("init")
	if r := e.run("init"); r.code != exitFailure || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("second init: exit %d, %s", r.code, r.stderr)
	}
	wrong := &testEnv{t: t, repo: e.repo, vars: []string{"KALAJA_REPOSITORY=" + e.repo, "KALAJA_PASSWORD=nope"}}
	if r := wrong.run("snapshots"); r.code != exitWrongPass || !strings.Contains(r.stderr, "wrong password") {
		t.Fatalf("wrong password: exit %d, %s", r.code, r.stderr)
	}
	if r := e.run("restore", "latest"); r.code != exitUsage {
		t.Fatalf("restore without target: exit %d", r.code)
	}
	if r := e.run("backup", "--no-such-flag", "x"); r.code != exitUsage {
		t.Fatalf("unknown flag: exit %d", r.code)
	}
	if r := e.run("restore", "abcd", "--target", t.TempDir()); r.code != exitFailure || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("unknown snapshot: exit %d %s", r.code, r.stderr)
	}
}

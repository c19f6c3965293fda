package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/kalaja/kalaja/internal/store/s3/s3test"
	"github.com/kalaja/kalaja/internal/testtree"
)

// s3Server returns the base of s3: locations on the S3 test server named by
// KALAJA_TEST_S3_ENDPOINT (scripts/minio.sh starts one; scripts/test.sh
// does it around go test), and a client with the test credentials from
// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, which kalaja also reads.
// Without a server the test is skipped, or fails when CI is set.
func s3Server(t *testing.T) (base string, admin *minio.Client) {
	t.Helper()
	srv := s3test.Open(t)
	return "s3:" + srv.Endpoint, srv.Client
}

// s3Bucket makes a bucket, with Object Lock when locked, and returns its
// name.
func s3Bucket(t *testing.T, admin *minio.Client, locked bool) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	name := "kalaja-cli-" + hex.EncodeToString(b)
	if err := admin.MakeBucket(t.Context(), name, minio.MakeBucketOptions{ObjectLocking: locked}); err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
	return name
}

// TestS3RoundTrip runs kalaja against a locked bucket: init, backup,
// restore, check, a second backup and verify of the ledger; then, with the client's credentials, hides every object
// of the repository behind a delete marker (what deleting looks like to a
// client on a locked bucket), and restores and checks again.
func TestS3RoundTrip(t *testing.T) {
	base, admin := s3Server(t)
	bucket := s3Bucket(t, admin, true)
	e := envAt(t, base+"/"+bucket+"/host-1?retention=1h")
	e.must("init")
	if r := e.run("init"); r.code != exitFailure || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("second init: exit %d, %s", r.code, r.stderr)
	}

	dir := t.TempDir()
	src, out1, out2 := filepath.Join(dir, "src"), filepath.Join(dir, "out1"), filepath.Join(dir, "out2")
	generate(t, src, testtree.Options{Seed: 11, Files: 60, MaxFileSize: 1 << 20})
	for _, d := range []string{out1, out2} {
		must(t, os.Mkdir(d, 0o700))
		t.Cleanup(func() { testtree.MakeRemovable(d) })
	}
	snap := e.backup(src)
	e.must("restore", snap, "--target", out1)
	assertSameTree(t, src, filepath.Join(out1, src))
	e.must("check", "--read-data")
	e.backup(src)
	e.must("verify", "--read-data")

	n := 0
	for obj := range admin.ListObjectsIter(t.Context(), bucket, minio.ListObjectsOptions{Prefix: "host-1/", Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		if err := admin.RemoveObject(t.Context(), bucket, obj.Key, minio.RemoveObjectOptions{}); err != nil {
			t.Fatalf("remove %s: %v", obj.Key, err)
		}
		n++
	}
	if n < 5 {
		t.Fatalf("the repository has %d objects", n)
	}
	e.must("restore", snap, "--target", out2)
	assertSameTree(t, src, filepath.Join(out2, src))
	e.must("check", "--read-data")
	e.must("verify", "--read-data")
}

// TestS3Init checks which buckets and locations init accepts.
func TestS3Init(t *testing.T) {
	base, admin := s3Server(t)
	unlocked := s3Bucket(t, admin, false)
	tests := []struct {
		name     string
		location string
		args     []string
		code     int
		want     string // part of stderr
	}{
		{"unlocked bucket", base + "/" + unlocked + "/a", nil, exitFailure, "--no-lock"},
		{"unlocked bucket, --no-lock", base + "/" + unlocked + "/b", []string{"--no-lock"}, exitOK, ""},
		{"credentials in the location", strings.Replace(base, "//", "//key:hunter2@", 1) + "/" + unlocked, nil, exitUsage, "credentials do not belong"},
		{"bad option", base + "/" + unlocked + "/c?retention=forever", nil, exitUsage, "retention"},
		{"--no-lock on a directory", filepath.Join(t.TempDir(), "repo"), []string{"--no-lock"}, exitUsage, "s3:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := envAt(t, tt.location)
			r := e.run(append([]string{"init"}, tt.args...)...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("init: exit %d, want %d; stderr:\n%s", r.code, tt.code, r.stderr)
			}
			if strings.Contains(r.stderr, "hunter2") {
				t.Fatalf("init printed the secret from the location: %s", r.stderr)
			}
			if tt.code == exitOK {
				e.must("snapshots")
			}
		})
	}
}

// TestS3DriveLost takes one drive away from an erasure-coded MinIO (one
// server over four drives, EC:2: scripts/minio.sh with
// KALAJA_MINIO_DRIVES=4, which names the drives in KALAJA_TEST_S3_DRIVES)
// while a backup runs, then backs up twice more on the three drives left:
// every snapshot whose backup was acknowledged (exit 0) restores
// byte-identical, check --read-data passes, and Object Lock still refuses
// to delete any version of any object. The drive is renamed away, with a
// file in its place (MinIO runs as the same user, often root, so a chmod
// would not stop it), and put back at the end; that MinIO wrote without
// it is checked on the drives themselves. Skipped on a single-drive MinIO.
func TestS3DriveLost(t *testing.T) {
	base, admin := s3Server(t)
	drives := strings.Fields(os.Getenv("KALAJA_TEST_S3_DRIVES"))
	if len(drives) != 4 {
		t.Skip("no erasure-coded S3 test server: KALAJA_MINIO_DRIVES=4 scripts/minio.sh start")
	}
	bucket := s3Bucket(t, admin, true)
	e := envAt(t, base+"/"+bucket+"/host-1?retention=1h")
	e.must("init")
	dir := t.TempDir()
	srcs := make([]string, 4)
	for i := range srcs {
		srcs[i] = filepath.Join(dir, fmt.Sprintf("src%d", i))
		generate(t, srcs[i], testtree.Options{Seed: int64(20 + i), Files: 80, MaxFileSize: 2 << 20})
	}
	snaps := map[string]string{} // snapshot -> the tree it holds
	snaps[e.backup(srcs[0])] = srcs[0]

	// The second backup runs while the drive goes; whether MinIO notices
	// before, during or after it, only an acknowledged snapshot counts.
	cmd := exec.Command(kalajaBin, "backup", "--json", srcs[1])
	cmd.Env = append(os.Environ(), e.vars...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	packs := func() int {
		n := 0
		for obj := range admin.ListObjectsIter(t.Context(), bucket, minio.ListObjectsOptions{Prefix: "host-1/data/", Recursive: true}) {
			must(t, obj.Err)
			n++
		}
		return n
	}
	before := packs()
	must(t, cmd.Start())
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	// Take the drive once the backup stored its first pack, or when it
	// ended (then the loss came after it, which the test also accepts).
	var backupErr error
	ended := false
	for !ended && packs() == before {
		select {
		case backupErr = <-waited:
			ended = true
		case <-time.After(20 * time.Millisecond):
		}
	}
	// A file in the drive's place: MinIO would make a missing drive's
	// directory again, as a fresh drive to heal onto.
	gone := drives[1] + ".gone"
	must(t, os.Rename(drives[1], gone))
	must(t, os.WriteFile(drives[1], nil, 0o600))
	t.Cleanup(func() {
		_ = os.Remove(drives[1])
		_ = os.Rename(gone, drives[1])
	})
	if !ended {
		backupErr = <-waited
	} else {
		t.Log("the backup ended before the drive went")
	}
	if err := backupErr; err != nil {
		t.Logf("the backup during the loss failed (not acknowledged, so allowed): %v\n%s", err, errb.String())
	} else {
		var v struct {
			Snapshot string `json:"snapshot"`
		}
		must(t, json.Unmarshal(out.Bytes(), &v))
		snaps[v.Snapshot] = srcs[1]
	}
	// One drive short, MinIO still has its write quorum (three of four).
	snaps[e.backup(srcs[2])] = srcs[2]
	snaps[e.backup(srcs[3])] = srcs[3]

	// MinIO wrote without the drive: it lacks what the later backups
	// stored, which the three others hold alike.
	metas := make([]int, len(drives))
	for i, d := range drives {
		if i == 1 {
			d = gone
		}
		metas[i] = countNamed(t, filepath.Join(d, bucket), "xl.meta")
	}
	if metas[1] >= metas[0] || metas[0] != metas[2] || metas[0] != metas[3] {
		t.Fatalf("object parts (xl.meta) per drive, the second taken away: %v", metas)
	}
	t.Logf("object parts (xl.meta) per drive, the second taken away: %v", metas)

	for snap, src := range snaps {
		target := filepath.Join(dir, "out-"+snap)
		must(t, os.Mkdir(target, 0o700))
		t.Cleanup(func() { testtree.MakeRemovable(target) })
		e.must("restore", snap, "--target", target)
		assertSameTree(t, src, filepath.Join(target, src))
	}
	e.must("check", "--read-data")

	n := 0
	for obj := range admin.ListObjectsIter(t.Context(), bucket, minio.ListObjectsOptions{Prefix: "host-1/", Recursive: true, WithVersions: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		err := admin.RemoveObject(t.Context(), bucket, obj.Key, minio.RemoveObjectOptions{VersionID: obj.VersionID, GovernanceBypass: true})
		if err == nil {
			t.Fatalf("deleted %s version %s with a drive gone", obj.Key, obj.VersionID)
		}
		n++
	}
	if n < 10 {
		t.Fatalf("the repository has %d object versions", n)
	}
}

// countNamed returns how many files named name are under dir.
func countNamed(t *testing.T, dir, name string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == name {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestS3ServeRenews is the fault of a repository on S3 whose Object Lock
// retention lapsed (written with 2 s, and no prune or server extended it):
// the storage credential could then delete any of its objects. kalaja
// serve over that bucket, with a location of an hour's retention, extends
// every object's lock at start, before any host connects: then no version
// can be deleted, and the snapshot restores through the server.
func TestS3ServeRenews(t *testing.T) {
	base, admin := s3Server(t)
	bucket := s3Bucket(t, admin, true)
	e := envAt(t, base+"/"+bucket+"/srv?retention=2s")
	e.must("init")
	dir := t.TempDir()
	src, out := filepath.Join(dir, "src"), filepath.Join(dir, "out")
	generate(t, src, testtree.Options{Seed: 31, Files: 40, MaxFileSize: 1 << 20})
	must(t, os.Mkdir(out, 0o700))
	t.Cleanup(func() { testtree.MakeRemovable(out) })
	snap := e.backup(src)

	type version struct{ key, id string }
	var versions []version
	for obj := range admin.ListObjectsIter(t.Context(), bucket, minio.ListObjectsOptions{Prefix: "srv/", Recursive: true, WithVersions: true}) {
		must(t, obj.Err)
		versions = append(versions, version{obj.Key, obj.VersionID})
	}
	if len(versions) < 5 {
		t.Fatalf("the repository has %d object versions", len(versions))
	}
	lockedUntil := func(v version) time.Time {
		t.Helper()
		_, until, err := admin.GetObjectRetention(t.Context(), bucket, v.key, v.id)
		if err != nil || until == nil {
			t.Fatalf("retention of %s version %s: %v, %v", v.key, v.id, until, err)
		}
		return *until
	}
	deadline := time.Now().Add(2*time.Second + 2*time.Second) // retain-until is in whole seconds
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond) // waiting for a date, not for an event
	}
	for _, v := range versions {
		if until := lockedUntil(v); until.After(time.Now()) {
			t.Fatalf("%s is locked until %v: the fault needs its retention lapsed", v.key, until)
		}
	}

	// A pass every half retention or more could let an object lapse.
	r := envAt(t, "").run("serve", "--dir", base+"/"+bucket+"/srv?retention=1h", "--server-dir", filepath.Join(dir, "server"),
		"--listen", "127.0.0.1:0", "--renew-every", "30m")
	if r.code != exitUsage || !strings.Contains(r.stderr, "half the location's retention") {
		t.Fatalf("serve --renew-every 30m with 1h retention: exit %d, %s", r.code, r.stderr)
	}
	s := startServerAt(t, base+"/"+bucket+"/srv?retention=1h", filepath.Join(dir, "server"), "127.0.0.1:0")
	if !strings.Contains(s.banner, "extending Object Lock retention every 7m30s") {
		t.Fatalf("kalaja serve over a locked bucket with 1h retention printed:\n%s", s.banner)
	}
	for !strings.Contains(s.log(), "retention renewed") {
		if strings.Contains(s.log(), "retention renewal failed") {
			t.Fatalf("kalaja serve:\n%s", s.log())
		}
		time.Sleep(50 * time.Millisecond) // polling the server's log for its first pass
	}
	for _, v := range versions {
		if until := lockedUntil(v); until.Before(time.Now().Add(30 * time.Minute)) {
			t.Fatalf("%s is locked until %v after the server's renewal", v.key, until)
		}
		if err := admin.RemoveObject(t.Context(), bucket, v.key, minio.RemoveObjectOptions{VersionID: v.id, GovernanceBypass: true}); err == nil {
			t.Fatalf("deleted %s version %s after the server's renewal", v.key, v.id)
		}
	}
	_, tokenFile := s.addToken(t, "host-1")
	s.client(t, tokenFile).must("restore", snap, "--target", out)
	assertSameTree(t, src, filepath.Join(out, src))
}

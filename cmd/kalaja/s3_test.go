package main

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/kalaja/kalaja/internal/testtree"
)

// s3Server returns the base of s3: locations on the S3 test server named by
// KALAJA_TEST_S3_ENDPOINT (scripts/minio.sh starts one; scripts/test.sh
// does it around go test), and a client with the test credentials from
// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, which kalaja also reads.
// Without a server the test is skipped, or fails when CI is set.
func s3Server(t *testing.T) (base string, admin *minio.Client) {
	t.Helper()
	raw := os.Getenv("KALAJA_TEST_S3_ENDPOINT")
	if raw == "" {
		msg := "no S3 test server: run eval \"$(scripts/minio.sh start)\" first (scripts/test.sh does)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg + "; in CI the S3 tests must run")
		}
		t.Skip(msg)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		t.Fatalf("KALAJA_TEST_S3_ENDPOINT=%q: want http://HOST:PORT", raw)
	}
	creds := credentials.NewStaticV4(os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), "")
	admin, err = minio.New(u.Host, &minio.Options{Creds: creds, Secure: u.Scheme == "https"})
	if err != nil {
		t.Fatal(err)
	}
	return "s3:" + raw, admin
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

package s3

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"github.com/kalaja/kalaja/internal/store/s3/s3test"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/storetest"
)

// testServer is the S3 server the tests run against: the MinIO that
// scripts/minio.sh starts (scripts/test.sh does it around go test).
type testServer struct {
	endpoint string
	insecure bool
	creds    *credentials.Credentials
	admin    *minio.Client
}

// server returns the test server named by KALAJA_TEST_S3_ENDPOINT, with the
// credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. Without one
// the test is skipped, or fails when CI is set: CI must run these tests.
func server(t *testing.T) *testServer {
	t.Helper()
	srv := s3test.Open(t)
	if _, err := srv.Client.ListBuckets(t.Context()); err != nil {
		t.Fatalf("S3 test server %s: %v", srv.Endpoint, err)
	}
	return &testServer{endpoint: srv.URL.Host, insecure: srv.URL.Scheme != "https", creds: srv.Creds, admin: srv.Client}
}

// bucketKind is how a test bucket is made.
type bucketKind int

const (
	plain     bucketKind = iota // no versioning, no lock
	versioned                   // versioning, no lock
	locked                      // versioning and Object Lock
)

// randomName returns prefix followed by random lowercase hex.
func randomName(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// bucket makes a new bucket. Its objects stay: locked ones cannot be
// removed, and the server's data directory is temporary.
func (srv *testServer) bucket(t *testing.T, kind bucketKind) string {
	t.Helper()
	ctx := t.Context()
	name := randomName("kalaja-test-")
	if err := srv.admin.MakeBucket(ctx, name, minio.MakeBucketOptions{ObjectLocking: kind == locked}); err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
	if kind == versioned {
		if err := srv.admin.EnableVersioning(ctx, name); err != nil {
			t.Fatalf("enable versioning on %s: %v", name, err)
		}
	}
	return name
}

// location returns a location in bucket under a fresh prefix.
func (srv *testServer) location(bucket string) Location {
	return Location{Endpoint: srv.endpoint, Insecure: srv.insecure, Bucket: bucket, Prefix: randomName("repo-")}
}

func (srv *testServer) options(t *testing.T) Options {
	return Options{Creds: srv.creds, TempDir: t.TempDir()}
}

// create returns a new store at loc, failing the test on error.
func (srv *testServer) create(t *testing.T, loc Location, noLock bool) *Store {
	t.Helper()
	s, err := Create(t.Context(), loc, srv.options(t), noLock)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// appendOnly hides a store's Remover, which a locked bucket refuses.
type appendOnly struct {
	store.Store
	store.Stager
}

func TestS3Conformance(t *testing.T) {
	srv := server(t)
	tests := []struct {
		name   string
		kind   bucketKind
		remove bool // run storetest's Remove tests
	}{
		{"locked", locked, false},
		{"versioned", versioned, true},
		{"plain", plain, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bucket := srv.bucket(t, tt.kind)
			storetest.Run(t, func(t *testing.T) store.Store {
				s := srv.create(t, srv.location(bucket), tt.kind != locked)
				if !tt.remove {
					return appendOnly{s, s}
				}
				return s
			})
		})
	}
}

// versions returns the IDs of key's versions, newest first, and whether
// each is a delete marker.
func (srv *testServer) versions(t *testing.T, bucket, key string) (ids []string, markers []bool) {
	t.Helper()
	for obj := range srv.admin.ListObjectsIter(t.Context(), bucket, minio.ListObjectsOptions{Prefix: key, WithVersions: true, Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		if obj.Key == key {
			ids = append(ids, obj.VersionID)
			markers = append(markers, obj.IsDeleteMarker)
		}
	}
	return ids, markers
}

// TestS3ObjectLock plays what an attacker holding the client's credentials
// can try against a locked bucket: each attempt fails or leaves the
// object as it was first saved.
func TestS3ObjectLock(t *testing.T) {
	srv := server(t)
	bucket := srv.bucket(t, locked)
	first, second := []byte("first bytes"), []byte("attacker's bytes, longer")
	h := store.Handle{Type: store.Snapshots, Name: blob.Hash(first).String()}

	// setup saves first as h in a new store and returns the store and the
	// object's key.
	setup := func(t *testing.T) (*Store, string) {
		s := srv.create(t, srv.location(bucket), false)
		if err := s.Save(t.Context(), h, first); err != nil {
			t.Fatal(err)
		}
		return s, s.key(h)
	}
	// intact checks, through s and a store without s's cache, that h is
	// still first.
	intact := func(t *testing.T, s *Store) {
		t.Helper()
		fresh, err := Open(t.Context(), s.loc, srv.options(t))
		if !errors.Is(err, blob.ErrNotFound) && err != nil {
			t.Fatal(err)
		}
		if fresh == nil {
			fresh = s
		}
		for _, st := range []*Store{s, fresh} {
			got, err := st.Load(t.Context(), h)
			if err != nil || !bytes.Equal(got, first) {
				t.Fatalf("Load = %q, %v; want the first bytes", got, err)
			}
			fi, err := st.Stat(t.Context(), h)
			if err != nil || fi.Size != int64(len(first)) {
				t.Fatalf("Stat = %+v, %v; want the first object's size %d", fi, err, len(first))
			}
			var listed []store.FileInfo
			err = st.List(t.Context(), h.Type, func(fi store.FileInfo) error {
				listed = append(listed, fi)
				return nil
			})
			// The stamp is the first version's, in List as in Stat.
			if err != nil || len(listed) != 1 || listed[0] != (store.FileInfo{Name: h.Name, Size: int64(len(first)), Stamp: fi.Stamp}) {
				t.Fatalf("List = %+v, %v; want just the first object", listed, err)
			}
		}
	}

	t.Run("retention", func(t *testing.T) {
		now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		for _, mode := range []string{"", Compliance, Governance} {
			loc := srv.location(bucket)
			loc.Mode, loc.Retention = mode, 2*day
			opts := srv.options(t)
			opts.Now = func() time.Time { return now }
			s, err := Create(t.Context(), loc, opts, false)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Save(t.Context(), h, first); err != nil {
				t.Fatal(err)
			}
			ids, _ := srv.versions(t, bucket, s.key(h))
			gotMode, until, err := srv.admin.GetObjectRetention(t.Context(), bucket, s.key(h), ids[0])
			if err != nil {
				t.Fatal(err)
			}
			wantMode := minio.Compliance
			if mode == Governance {
				wantMode = minio.Governance
			}
			if *gotMode != wantMode || !until.Equal(now.Add(2*day)) {
				t.Errorf("lock=%q: the object is retained %s until %v, want %s until %v", mode, *gotMode, until, wantMode, now.Add(2*day))
			}
		}
	})

	t.Run("overwrite", func(t *testing.T) {
		s, key := setup(t)
		if err := s.Save(t.Context(), h, second); !errors.Is(err, store.ErrExists) {
			t.Fatalf("Save over an existing object = %v, want store.ErrExists", err)
		}
		if ids, _ := srv.versions(t, bucket, key); len(ids) != 1 {
			t.Fatalf("a refused Save left %d versions: the server ignored If-None-Match", len(ids))
		}
		// A client that does not ask for the condition adds a version.
		if _, err := srv.admin.PutObject(t.Context(), bucket, key, bytes.NewReader(second), int64(len(second)), minio.PutObjectOptions{}); err != nil {
			t.Fatalf("unconditional PutObject: %v", err)
		}
		intact(t, s)
	})

	t.Run("delete marker", func(t *testing.T) {
		s, key := setup(t)
		if err := srv.admin.RemoveObject(t.Context(), bucket, key, minio.RemoveObjectOptions{}); err != nil {
			t.Fatalf("RemoveObject without a version: %v", err)
		}
		if _, markers := srv.versions(t, bucket, key); len(markers) != 2 || !markers[0] {
			t.Fatalf("RemoveObject did not add a delete marker: %v", markers)
		}
		intact(t, s)
		// A Save now passes the condition (the newest version is a delete
		// marker), and must still not count.
		if err := s.Save(t.Context(), h, second); !errors.Is(err, store.ErrExists) {
			t.Fatalf("Save over a hidden object = %v, want store.ErrExists", err)
		}
		intact(t, s)
	})

	t.Run("delete version", func(t *testing.T) {
		s, key := setup(t)
		ids, _ := srv.versions(t, bucket, key)
		for _, opts := range []minio.RemoveObjectOptions{
			{VersionID: ids[0]},
			{VersionID: ids[0], GovernanceBypass: true},
		} {
			if err := srv.admin.RemoveObject(t.Context(), bucket, key, opts); err == nil {
				t.Fatalf("RemoveObject(%+v) of a locked version succeeded", opts)
			}
		}
		if err := s.Remove(t.Context(), h); err == nil || !strings.Contains(err.Error(), bucket) {
			t.Fatalf("Remove of a locked object = %v, want an error naming the bucket", err)
		}
		intact(t, s)
	})

	t.Run("shorten retention", func(t *testing.T) {
		s, key := setup(t)
		ids, _ := srv.versions(t, bucket, key)
		mode, soon := minio.Governance, time.Now().Add(time.Minute)
		for _, opts := range []minio.PutObjectRetentionOptions{
			{VersionID: ids[0], Mode: &mode, RetainUntilDate: &soon},
			{VersionID: ids[0], Mode: &mode, RetainUntilDate: &soon, GovernanceBypass: true},
		} {
			if err := srv.admin.PutObjectRetention(t.Context(), bucket, key, opts); err == nil {
				t.Fatalf("PutObjectRetention(%+v) shortened a COMPLIANCE retention", opts)
			}
		}
		intact(t, s)
	})
}

func TestS3Create(t *testing.T) {
	srv := server(t)
	buckets := map[bucketKind]string{}
	for _, k := range []bucketKind{plain, versioned, locked} {
		buckets[k] = srv.bucket(t, k)
	}
	tests := []struct {
		name      string
		kind      bucketKind
		noLock    bool
		retention time.Duration
		want      string // part of the error; "" for success
	}{
		{"locked", locked, false, 0, ""},
		{"locked, --no-lock", locked, true, 0, ""},
		{"locked, retention", locked, false, time.Hour, ""},
		{"plain", plain, false, 0, "does not have versioning and Object Lock"},
		{"versioned", versioned, false, 0, "does not have Object Lock"},
		{"plain, --no-lock", plain, true, 0, ""},
		{"versioned, --no-lock", versioned, true, 0, ""},
		{"plain, --no-lock, retention", plain, true, time.Hour, "retention"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc := srv.location(buckets[tt.kind])
			loc.Retention = tt.retention
			s, err := Create(t.Context(), loc, srv.options(t), tt.noLock)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), loc.Bucket) {
					t.Fatalf("Create = %v, want an error naming the bucket and saying %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Open(t.Context(), loc, srv.options(t)); !errors.Is(err, blob.ErrNotFound) {
				t.Fatalf("Open before the config is saved = %v, want blob.ErrNotFound", err)
			}
			if err := s.Save(t.Context(), store.Handle{Type: store.Config}, []byte("config")); err != nil {
				t.Fatal(err)
			}
			if _, err := Create(t.Context(), loc, srv.options(t), true); err == nil || !strings.Contains(err.Error(), "already exists") {
				t.Fatalf("Create over a repository = %v, want an error", err)
			}
			if _, err := Open(t.Context(), loc, srv.options(t)); err != nil {
				t.Fatalf("Open: %v", err)
			}
		})
	}
	t.Run("no such bucket", func(t *testing.T) {
		loc := srv.location("kalaja-no-such-bucket")
		_, err := Create(t.Context(), loc, srv.options(t), true)
		if err == nil || !strings.Contains(err.Error(), "kalaja-no-such-bucket does not exist") {
			t.Fatalf("Create = %v, want an error naming the missing bucket", err)
		}
	})
}

// TestS3Errors checks that errors name the object and the bucket.
func TestS3Errors(t *testing.T) {
	srv := server(t)
	bucket := srv.bucket(t, locked)
	s := srv.create(t, srv.location(bucket), false)
	h := store.Handle{Type: store.Index, Name: blob.Hash([]byte("index")).String()}
	_, err := s.Load(t.Context(), h)
	if !errors.Is(err, blob.ErrNotFound) || !strings.Contains(err.Error(), s.key(h)) || !strings.Contains(err.Error(), bucket) {
		t.Fatalf("Load of a missing object = %v, want blob.ErrNotFound naming %s and %s", err, s.key(h), bucket)
	}
	if err := s.Save(t.Context(), h, nil); err != nil {
		t.Fatal(err)
	}
	err = s.Save(t.Context(), h, nil)
	if !errors.Is(err, store.ErrExists) || !strings.Contains(err.Error(), s.key(h)) || !strings.Contains(err.Error(), bucket) {
		t.Fatalf("second Save = %v, want store.ErrExists naming %s and %s", err, s.key(h), bucket)
	}
}

// TestS3StagePack commits a pack of the size the repository writes, larger
// than minio-go's smallest multipart part, in one conditional PUT.
func TestS3StagePack(t *testing.T) {
	if testing.Short() {
		t.Skip("17 MiB upload")
	}
	srv := server(t)
	s := srv.create(t, srv.location(srv.bucket(t, locked)), false)
	data := make([]byte, 17<<20)
	rand.Read(data)
	st, err := s.Stage(store.Packs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(data); err != nil {
		t.Fatal(err)
	}
	h := store.Handle{Type: store.Packs, Name: blob.Hash(data).String()}
	if err := st.Commit(t.Context(), h.Name); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(t.Context(), h)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Load after Commit: %d bytes, %v", len(got), err)
	}
	if ents, _ := os.ReadDir(s.tempDir); len(ents) != 0 {
		t.Fatalf("staging left %d files in the temporary directory", len(ents))
	}
}

// TestS3Renew: an object written with a short retention gets the store's
// longer one when its retention runs low; one with plenty left, and any
// object on a bucket without Object Lock, is left as it is.
func TestS3Renew(t *testing.T) {
	srv := server(t)
	ctx := t.Context()
	loc := srv.location(srv.bucket(t, locked))
	loc.Retention = time.Hour
	short := srv.create(t, loc, false)
	h := store.Handle{Type: store.Snapshots, Name: blob.Hash([]byte("renew me")).String()}
	for _, h := range []store.Handle{{Type: store.Config}, h} {
		if err := short.Save(ctx, h, []byte("renew me")); err != nil {
			t.Fatal(err)
		}
	}
	until := func() time.Time {
		t.Helper()
		v, err := short.first(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		_, u, err := srv.admin.GetObjectRetention(ctx, loc.Bucket, short.key(h), v.id)
		if err != nil || u == nil {
			t.Fatalf("retention of %v: %v, %v", h, u, err)
		}
		return *u
	}
	written := until()
	if ok, err := short.Renew(ctx, h); err != nil || ok {
		t.Errorf("Renew with the whole hour left = %v, %v; want nothing done", ok, err)
	}

	loc.Retention = 4 * time.Hour
	long, err := Open(ctx, loc, srv.options(t))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := long.Renew(ctx, h); err != nil || !ok {
		t.Fatalf("Renew with 1 h of 4 left = %v, %v; want extended", ok, err)
	}
	if got := until(); got.Sub(written) < 2*time.Hour {
		t.Errorf("retention until %v after Renew, was %v: want about 3 h later", got, written)
	}

	plainLoc := srv.location(srv.bucket(t, plain))
	p := srv.create(t, plainLoc, true)
	if err := p.Save(ctx, h, []byte("renew me")); err != nil {
		t.Fatal(err)
	}
	if ok, err := p.Renew(ctx, h); err != nil || ok {
		t.Errorf("Renew without Object Lock = %v, %v; want nothing done", ok, err)
	}
}

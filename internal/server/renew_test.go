package server

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/s3"
	"github.com/kalaja/kalaja/internal/store/s3/s3test"
)

// s3Store returns a store in a new locked bucket of the S3 test server
// (KALAJA_TEST_S3_ENDPOINT, scripts/minio.sh) whose objects are locked for
// retention, with the clock now; it skips without a server, or fails when
// CI is set.
func s3Store(t *testing.T, retention time.Duration, now func() time.Time) *s3.Store {
	t.Helper()
	srv := s3test.Open(t)
	c, u, creds := srv.Client, srv.URL, srv.Creds
	b := make([]byte, 6)
	rand.Read(b)
	bucket := "kalaja-server-" + hex.EncodeToString(b)
	if err := c.MakeBucket(t.Context(), bucket, minio.MakeBucketOptions{ObjectLocking: true}); err != nil {
		t.Fatalf("make bucket %s: %v", bucket, err)
	}
	loc := s3.Location{Endpoint: u.Host, Insecure: u.Scheme != "https", Bucket: bucket, Prefix: "repo", Retention: retention}
	st, err := s3.Create(t.Context(), loc, s3.Options{Creds: creds, TempDir: t.TempDir(), Now: now}, false)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestRenewS3 is the fault of a server in front of S3 that never extends
// Object Lock retention: an object the repository still needs is
// protected only for the retention it was written with, after which the
// storage credential deletes it. With Renew, the same deletion is refused
// after that date; an object a signed request condemned is not renewed.
//
// The retention is short (3 s) and Renew runs on a store clock set an
// hour ahead, so that it extends to an hour from now: the test waits for
// the original dates to pass, never for a renewal to happen in time.
func TestRenewS3(t *testing.T) {
	const retention = 3 * time.Second
	var ahead atomic.Int64 // how far the store's clock is ahead, ns
	st := s3Store(t, retention, func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) })
	ctx := t.Context()
	dir := t.TempDir()
	signer, vkey := newKey(t, "kalaja-admin")
	f := newFixture(t, func(o *Options) {
		o.Store = st
		o.AdminKey = vkey
		o.CondemnedFile = filepath.Join(dir, "condemned")
		o.Now = time.Now
		o.Retention = time.Hour // the server's own: keeps the condemned object now
	})
	put := func(content string) store.Handle {
		t.Helper()
		b := []byte(content)
		if w := f.do(http.MethodPut, "/v1/snapshots/"+sha(b), b); w.Code != http.StatusCreated {
			t.Fatalf("PUT: %d %s", w.Code, w.Body)
		}
		return store.Handle{Type: store.Snapshots, Name: sha(b)}
	}
	a := &adminFixture{fixture: f, signer: signer, vkey: vkey, now: new(time.Time)}
	*a.now = time.Now()

	if w := f.do(http.MethodPut, "/v1/config", []byte("config")); w.Code != http.StatusCreated {
		t.Fatalf("PUT config: %d %s", w.Code, w.Body)
	}
	needed := put("a snapshot the repository still needs")
	doomed := put("a snapshot forget deleted")
	res := result(t, a.post(a.sign(a.request(doomed))))
	if len(res.Kept) != 1 || res.Kept[0].Reason != "retention" {
		t.Fatalf("delete within the server's retention: %+v", res)
	}
	ahead.Store(int64(time.Hour))
	if n, err := f.srv.Renew(ctx); err != nil || n != 2 {
		t.Fatalf("Renew: %d, %v; want 2 (the config and the needed snapshot)", n, err)
	}
	ahead.Store(0)
	// Written after the renewal: what every object is without one.
	unrenewed := put("a snapshot no renewal reached")

	deadline := time.Now().Add(retention + 2*time.Second) // retain-until is in whole seconds
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond) // waiting for a date, not for an event
	}
	if err := st.Remove(ctx, unrenewed); err != nil {
		t.Fatalf("remove an object whose retention lapsed: %v (the fault this test shows needs it to work)", err)
	}
	if err := st.Remove(ctx, needed); err == nil {
		t.Fatal("the storage credential deleted an object the server renewed, after its original retention")
	}
	if _, err := st.Load(ctx, needed); err != nil {
		t.Fatalf("renewed object after a refused delete: %v", err)
	}
	if err := st.Remove(ctx, doomed); err != nil {
		t.Fatalf("a condemned object was renewed: %v", err)
	}

	// The condemned set survives a restart; a later request that finds
	// the object gone releases it.
	f2 := newFixture(t, func(o *Options) {
		o.Store = st
		o.AdminKey = vkey
		o.CondemnedFile = filepath.Join(dir, "condemned")
		o.Now = time.Now
	})
	if !f2.srv.condemned.has(doomed) || f2.srv.condemned.has(needed) {
		t.Fatalf("condemned after a restart: %v", f2.srv.condemned.set)
	}
	a2 := &adminFixture{fixture: f2, signer: signer, vkey: vkey, now: a.now}
	if res := result(t, a2.post(a2.sign(a2.request(doomed)))); len(res.Kept) != 1 || res.Kept[0].Reason != "missing" {
		t.Fatalf("delete of a removed object: %+v", res)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "condemned")); err != nil || string(b) != condemnedHeader+"\n" {
		t.Fatalf("condemned file after the release: %q, %v", b, err)
	}
}

// TestRenewLocal: a backend without retention of its own extends nothing.
func TestRenewLocal(t *testing.T) {
	f := newFixture(t, nil)
	if w := f.do(http.MethodPut, "/v1/snapshots/"+sha([]byte("s")), []byte("s")); w.Code != http.StatusCreated {
		t.Fatalf("PUT: %d %s", w.Code, w.Body)
	}
	if n, err := f.srv.Renew(t.Context()); n != 0 || err != nil {
		t.Fatalf("Renew: %d, %v", n, err)
	}
}

// TestCondemnedFile refuses a condemned file the server did not write.
func TestCondemnedFile(t *testing.T) {
	for _, tc := range []struct{ name, text string }{
		{"header", "# kalaja server condemned v2\n"},
		{"object", condemnedHeader + "\nconfig\n"},
		{"name", condemnedHeader + "\nsnapshots/XYZ\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "condemned")
			if err := os.WriteFile(p, []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := loadCondemned(p); err == nil {
				t.Fatalf("loaded %q", tc.text)
			}
		})
	}
}

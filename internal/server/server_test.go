package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/local"
)

// fixture is a server over a local store, with one host's token.
type fixture struct {
	t     *testing.T
	srv   *Server
	st    *local.Local
	token string
	opts  Options
}

func newFixture(t *testing.T, change func(*Options)) *fixture {
	t.Helper()
	dir := t.TempDir()
	st, err := local.Create(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := OpenTokens(filepath.Join(dir, "tokens"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := tokens.Add("host-1")
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Store: st, Tokens: tokens, UsageFile: filepath.Join(dir, "usage.json"),
		Now: func() time.Time { return time.Unix(1_800_000_000, 0) }}
	if change != nil {
		change(&o)
	}
	srv, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, srv: srv, st: st, token: token, opts: o}
}

// do sends a request with the host's token and returns the response.
func (f *fixture) do(method, path string, body []byte, header ...string) *httptest.ResponseRecorder {
	f.t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	req.Header.Set("Authorization", "Bearer "+f.token)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	f.srv.ServeHTTP(w, req)
	return w
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestServerAttacks sends what a host holding a valid token could try against
// objects that exist, and checks each is refused and changes nothing.
func TestServerAttacks(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Quota = 1 << 20 })
	ctx := t.Context()
	pack := []byte("the first pack")
	packPath := "/v1/data/" + sha(pack)
	existing := map[string][]byte{
		packPath:                         pack,
		"/v1/config":                     []byte("config"),
		"/v1/keys/" + sha([]byte("key")): []byte("key"),
		"/v1/ledger/checkpoints/00000000000000000001": []byte("checkpoint 1"),
	}
	for p, b := range existing {
		if w := f.do(http.MethodPut, p, b); w.Code != http.StatusCreated {
			t.Fatalf("PUT %s: %d %s", p, w.Code, w.Body)
		}
	}
	other := []byte("other bytes")
	tests := []struct {
		name   string
		method string
		path   string
		body   []byte
		header []string
		want   int
	}{
		{"overwrite pack", http.MethodPut, packPath, other, nil, http.StatusConflict},
		{"overwrite pack with itself", http.MethodPut, packPath, pack, nil, http.StatusConflict},
		{"overwrite config", http.MethodPut, "/v1/config", other, nil, http.StatusConflict},
		{"overwrite key", http.MethodPut, "/v1/keys/" + sha([]byte("key")), other, nil, http.StatusConflict},
		{"overwrite checkpoint", http.MethodPut, "/v1/ledger/checkpoints/00000000000000000001", other, nil, http.StatusConflict},
		{"pack under another's hash", http.MethodPut, "/v1/data/" + sha([]byte("x")), other, nil, http.StatusUnprocessableEntity},
		{"snapshot under another's hash", http.MethodPut, "/v1/snapshots/" + sha([]byte("x")), other, nil, http.StatusUnprocessableEntity},
		{"index not named by a hash", http.MethodPut, "/v1/index/latest", other, nil, http.StatusBadRequest},
		{"uppercase hash name", http.MethodPut, "/v1/data/" + strings.ToUpper(sha(other)), other, nil, http.StatusBadRequest},
		{"delete", http.MethodDelete, packPath, nil, nil, http.StatusMethodNotAllowed},
		{"delete config", http.MethodDelete, "/v1/config", nil, nil, http.StatusMethodNotAllowed},
		{"post", http.MethodPost, packPath, other, nil, http.StatusMethodNotAllowed},
		{"patch", http.MethodPatch, packPath, other, nil, http.StatusMethodNotAllowed},
		{"put a listing", http.MethodPut, "/v1/data/", other, nil, http.StatusMethodNotAllowed},
		{"delete a listing", http.MethodDelete, "/v1/data/", nil, nil, http.StatusMethodNotAllowed},
		{"dot-dot kind", http.MethodPut, "/v1/../config", other, nil, http.StatusNotFound},
		{"escaped slash", http.MethodPut, "/v1/keys/..%2fconfig", other, nil, http.StatusBadRequest},
		{"escaped dot-dot", http.MethodGet, "/v1/keys/%2e%2e", nil, nil, http.StatusBadRequest},
		{"hidden name", http.MethodPut, "/v1/keys/.hidden", other, nil, http.StatusBadRequest},
		{"dot-dot name", http.MethodGet, "/v1/keys/..", nil, nil, http.StatusBadRequest},
		{"name too long", http.MethodPut, "/v1/keys/" + strings.Repeat("a", 256), other, nil, http.StatusBadRequest},
		{"nested name", http.MethodPut, "/v1/data/ab/" + sha(other), other, nil, http.StatusNotFound},
		{"tmp kind", http.MethodPut, "/v1/tmp/x", other, nil, http.StatusNotFound},
		{"unknown kind", http.MethodGet, "/v1/secrets/", nil, nil, http.StatusNotFound},
		{"ledger prefix alone", http.MethodGet, "/v1/ledger/", nil, nil, http.StatusNotFound},
		{"no version", http.MethodGet, "/data/" + sha(pack), nil, nil, http.StatusNotFound},
		{"future version", http.MethodGet, "/v2/config", nil, nil, http.StatusNotFound},
		{"config with a name", http.MethodPut, "/v1/config/x", other, nil, http.StatusNotFound},
		{"bad range", http.MethodGet, packPath, nil, []string{"Range", "bytes=5-2"}, http.StatusRequestedRangeNotSatisfiable},
		{"two ranges", http.MethodGet, packPath, nil, []string{"Range", "bytes=0-1,3-4"}, http.StatusRequestedRangeNotSatisfiable},
		{"range past the end", http.MethodGet, packPath, nil, []string{"Range", "bytes=100-"}, http.StatusRequestedRangeNotSatisfiable},
		{"missing object", http.MethodGet, "/v1/index/" + sha(other), nil, nil, http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := f.do(tt.method, tt.path, tt.body, tt.header...)
			if w.Code != tt.want {
				t.Fatalf("%s %s: %d %q, want %d", tt.method, tt.path, w.Code, w.Body, tt.want)
			}
		})
	}
	for p, b := range existing {
		h := handleOf(t, p)
		got, err := f.st.Load(ctx, h)
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s after the attacks: %q, %v; want %q", p, got, err, b)
		}
	}
	for _, ft := range store.Listable {
		n := 0
		f.st.List(ctx, ft, func(store.FileInfo) error { n++; return nil })
		if want := count(existing, ft); n != want {
			t.Errorf("%s holds %d objects after the attacks, want %d", ft, n, want)
		}
	}
}

func count(objs map[string][]byte, ft store.FileType) int {
	n := 0
	for p := range objs {
		if strings.HasPrefix(p, "/v1/"+string(ft)+"/") {
			n++
		}
	}
	return n
}

func handleOf(t *testing.T, path string) store.Handle {
	t.Helper()
	req, err := parseRequest(http.MethodGet, path)
	if err != nil {
		t.Fatal(err)
	}
	return req.h
}

func TestServerAuth(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		name, header string
	}{
		{"none", ""},
		{"empty bearer", "Bearer "},
		{"wrong token", "Bearer wrong-token-hunter2"},
		{"basic", "Basic " + f.token},
		{"token with a suffix", "Bearer " + f.token + "x"},
		{"token prefix", "Bearer " + f.token[:20]},
		{"oversized", "Bearer " + strings.Repeat("x", 10000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
				req := httptest.NewRequest(method, "/v1/config", strings.NewReader("x"))
				if tt.header != "" {
					req.Header.Set("Authorization", tt.header)
				}
				w := httptest.NewRecorder()
				f.srv.ServeHTTP(w, req)
				if w.Code != http.StatusUnauthorized {
					t.Fatalf("%s: %d, want 401", method, w.Code)
				}
				if strings.Contains(w.Body.String(), "hunter2") || strings.Contains(w.Body.String(), f.token[:20]) {
					t.Fatalf("the answer %q repeats the token", w.Body)
				}
				if w.Header().Get("WWW-Authenticate") == "" {
					t.Fatal("no WWW-Authenticate header")
				}
			}
		})
	}
	if _, err := f.st.Stat(t.Context(), store.Handle{Type: store.Config}); err == nil {
		t.Fatal("an unauthenticated PUT stored the config")
	}
}

// keyPath is the path of a key file's object.
var keyPath = "/v1/keys/" + sha([]byte("key file"))

func TestServerLimits(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		name   string
		path   string
		length int64 // declared
		body   []byte
		want   int
	}{
		{"oversized key", keyPath, 4<<20 + 1, nil, http.StatusRequestEntityTooLarge},
		{"oversized pack", "/v1/data/" + sha(nil), 64<<20 + 1, nil, http.StatusRequestEntityTooLarge},
		{"no length", keyPath, -1, []byte("x"), http.StatusLengthRequired},
		{"short body", keyPath, 10, []byte("abc"), http.StatusBadRequest},
		{"short pack body", "/v1/data/" + sha([]byte("abc")), 10, []byte("abc"), http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPut, tt.path, bytes.NewReader(tt.body))
			req.ContentLength = tt.length
			req.Header.Set("Authorization", "Bearer "+f.token)
			w := httptest.NewRecorder()
			f.srv.ServeHTTP(w, req)
			if w.Code != tt.want {
				t.Fatalf("%d %q, want %d", w.Code, w.Body, tt.want)
			}
			if _, err := f.st.Stat(t.Context(), handleOf(t, tt.path)); err == nil {
				t.Fatal("the refused object was stored")
			}
		})
	}
}

func TestServerQuota(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Quota = 100 })
	a, b := bytes.Repeat([]byte("a"), 60), bytes.Repeat([]byte("b"), 60)
	if w := f.do(http.MethodPut, "/v1/data/"+sha(a), a); w.Code != http.StatusCreated {
		t.Fatalf("first PUT: %d %s", w.Code, w.Body)
	}
	if w := f.do(http.MethodPut, "/v1/data/"+sha(b), b); w.Code != http.StatusInsufficientStorage {
		t.Fatalf("PUT over quota: %d %s, want 507", w.Code, w.Body)
	}
	// Refused and existing objects do not count.
	if w := f.do(http.MethodPut, "/v1/data/"+sha(a), a); w.Code != http.StatusConflict {
		t.Fatalf("PUT of an existing object: %d", w.Code)
	}
	if w := f.do(http.MethodPut, keyPath, b[:40]); w.Code != http.StatusCreated {
		t.Fatalf("PUT within quota: %d %s", w.Code, w.Body)
	}
	// The count survives a restart.
	srv, err := New(f.opts)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	if w := f.do(http.MethodPut, "/v1/keys/"+sha([]byte("key 2")), []byte("x")); w.Code != http.StatusInsufficientStorage {
		t.Fatalf("PUT over quota after a restart: %d %s, want 507", w.Code, w.Body)
	}
}

func TestServerReadAndList(t *testing.T) {
	f := newFixture(t, nil)
	data := []byte("0123456789")
	p := "/v1/index/" + sha(data)
	if w := f.do(http.MethodPut, p, data); w.Code != http.StatusCreated {
		t.Fatalf("PUT: %d %s", w.Code, w.Body)
	}
	tests := []struct {
		rng    string
		status int
		body   string
		cr     string
	}{
		{"", http.StatusOK, "0123456789", ""},
		{"bytes=0-0", http.StatusPartialContent, "0", "bytes 0-0/10"},
		{"bytes=2-5", http.StatusPartialContent, "2345", "bytes 2-5/10"},
		{"bytes=7-", http.StatusPartialContent, "789", "bytes 7-9/10"},
		{"bytes=8-100", http.StatusPartialContent, "89", "bytes 8-9/10"},
		{"bytes=-3", http.StatusPartialContent, "789", "bytes 7-9/10"},
		{"bytes=-30", http.StatusPartialContent, "0123456789", "bytes 0-9/10"},
		{"bytes=10-", http.StatusRequestedRangeNotSatisfiable, "", "bytes */10"},
	}
	for _, tt := range tests {
		t.Run(tt.rng, func(t *testing.T) {
			var h []string
			if tt.rng != "" {
				h = []string{"Range", tt.rng}
			}
			w := f.do(http.MethodGet, p, nil, h...)
			if w.Code != tt.status || w.Header().Get("Content-Range") != tt.cr {
				t.Fatalf("%d %q, Content-Range %q; want %d %q", w.Code, w.Body, w.Header().Get("Content-Range"), tt.status, tt.cr)
			}
			if tt.status/100 == 2 && w.Body.String() != tt.body {
				t.Fatalf("body %q, want %q", w.Body, tt.body)
			}
		})
	}
	fi, err := f.st.Stat(t.Context(), handleOf(t, p))
	if err != nil {
		t.Fatal(err)
	}
	stamp := fi.Stamp.UTC().Format(time.RFC3339Nano)
	if w := f.do(http.MethodHead, p, nil); w.Code != http.StatusOK || w.Header().Get("Content-Length") != "10" ||
		w.Header().Get("Kalaja-Stamp") != stamp || w.Header().Get("Last-Modified") != fi.Stamp.UTC().Format(http.TimeFormat) {
		t.Fatalf("HEAD: %d, Content-Length %q, Kalaja-Stamp %q, Last-Modified %q; want stamp %s",
			w.Code, w.Header().Get("Content-Length"), w.Header().Get("Kalaja-Stamp"), w.Header().Get("Last-Modified"), stamp)
	}
	w := f.do(http.MethodGet, "/v1/index/", nil)
	want := fmt.Sprintf("{\"name\":%q,\"size\":10,\"time\":%q}\n{\"end\":true}\n", sha(data), stamp)
	if w.Code != http.StatusOK || w.Body.String() != want {
		t.Fatalf("list: %d %q, want %q", w.Code, w.Body, want)
	}
	if w := f.do(http.MethodGet, "/v1/snapshots/", nil); w.Body.String() != "{\"end\":true}\n" {
		t.Fatalf("empty list: %q", w.Body)
	}
}

// memoryStore hides the local store's Stager, so uploads go through memory.
type memoryStore struct{ store.Store }

func TestServerWithoutStager(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Store = memoryStore{o.Store} })
	pack := []byte("pack bytes")
	if w := f.do(http.MethodPut, "/v1/data/"+sha(pack), pack); w.Code != http.StatusCreated {
		t.Fatalf("PUT: %d %s", w.Code, w.Body)
	}
	if w := f.do(http.MethodPut, "/v1/data/"+sha([]byte("x")), pack); w.Code != http.StatusUnprocessableEntity {
		t.Fatalf("PUT under a wrong hash: %d %s", w.Code, w.Body)
	}
	if w := f.do(http.MethodPut, "/v1/data/"+sha(pack), pack); w.Code != http.StatusConflict {
		t.Fatalf("second PUT: %d %s", w.Code, w.Body)
	}
	if got, _ := f.st.Load(context.Background(), handleOf(t, "/v1/data/"+sha(pack))); !bytes.Equal(got, pack) {
		t.Fatalf("stored %q", got)
	}
}

func TestServerMetrics(t *testing.T) {
	f := newFixture(t, nil)
	snap := []byte("snapshot")
	f.do(http.MethodPut, "/v1/snapshots/"+sha(snap), snap)
	f.do(http.MethodPut, "/v1/snapshots/"+sha(snap), snap)
	f.do(http.MethodDelete, "/v1/snapshots/"+sha(snap), nil)
	req := httptest.NewRequest(http.MethodGet, "/v1/config", nil)
	f.srv.ServeHTTP(httptest.NewRecorder(), req)
	if err := f.srv.Count(t.Context()); err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	f.srv.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, want := range []string{
		`kalaja_server_objects{kind="snapshots"} 1`,
		`kalaja_server_bytes{kind="snapshots"} 8`,
		`kalaja_server_refused_requests_total{reason="exists"} 1`,
		`kalaja_server_refused_requests_total{reason="method"} 1`,
		`kalaja_server_refused_requests_total{reason="unauthorized"} 1`,
		`kalaja_server_refused_requests_total{reason="quota"} 0`,
		`kalaja_server_host_bytes{host="host-1"} 8`,
		`kalaja_server_host_last_snapshot_timestamp_seconds{host="host-1"} 1.8e+09`,
	} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(w.Body.String(), f.token) {
		t.Error("metrics show the token")
	}
}

func TestServerTokens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	a, err := OpenTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	tok1, err := a.Add("web-01")
	if err != nil {
		t.Fatal(err)
	}
	// Another process adds a token; a sees it.
	b, err := OpenTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	tok2, err := b.Add("db-01")
	if err != nil {
		t.Fatal(err)
	}
	for tok, want := range map[string]string{tok1: "web-01", tok2: "db-01"} {
		if c, ok, err := a.Lookup(tok); err != nil || !ok || c != (Credential{want, RoleHost}) {
			t.Errorf("Lookup = %v, %v, %v; want %s", c, ok, err, want)
		}
	}
	changed := "x" + tok1[1:]
	if tok1[0] == 'x' { // a random token can start with x already
		changed = "y" + tok1[1:]
	}
	if _, ok, _ := a.Lookup(changed); ok {
		t.Error("a changed token was accepted")
	}
	if _, err := a.Add("web-01"); err == nil {
		t.Error("a second token for one host was added")
	}
	for _, bad := range []string{"", "-x", ".x", "a b", "a/b", strings.Repeat("h", 65)} {
		if _, err := a.Add(bad); err == nil {
			t.Errorf("Add(%q) succeeded", bad)
		}
	}
	hosts, err := a.Hosts()
	if err != nil || strings.Join(hosts, ",") != "web-01,db-01" {
		t.Fatalf("Hosts = %v, %v", hosts, err)
	}
	raw, err := os.ReadFile(path)
	if err != nil || bytes.Contains(raw, []byte(tok1)) || bytes.Contains(raw, []byte(tok2)) {
		t.Fatalf("the tokens file holds a token (or cannot be read: %v)", err)
	}
}

// TestServerTokenRemove revokes a token through another Tokens (as kalaja
// serve token remove does) and checks that the running server refuses it.
func TestServerTokenRemove(t *testing.T) {
	f := newFixture(t, nil)
	if w := f.do(http.MethodGet, "/v1/keys/", nil); w.Code != http.StatusOK {
		t.Fatalf("before removal: %d", w.Code)
	}
	other, err := OpenTokens(f.opts.Tokens.path)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Remove("host-1"); err != nil {
		t.Fatal(err)
	}
	if err := other.Remove("host-1"); err == nil || !strings.Contains(err.Error(), "no token") {
		t.Fatalf("second Remove = %v", err)
	}
	if w := f.do(http.MethodGet, "/v1/keys/", nil); w.Code != http.StatusUnauthorized {
		t.Fatalf("after removal: %d, want 401", w.Code)
	}
	if hosts, err := f.opts.Tokens.Hosts(); err != nil || len(hosts) != 0 {
		t.Fatalf("Hosts after removal = %v, %v", hosts, err)
	}
}

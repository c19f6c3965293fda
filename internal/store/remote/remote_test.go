package remote

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/server"
	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/local"
	"github.com/kalaja/kalaja/internal/store/storetest"
)

// backend is a server over a new local store, behind a TLS test server.
type backend struct {
	local *local.Local
	url   string
	pin   []byte // the server's certificate, PEM
	token string
}

// newBackend starts a server; wrap, if not nil, wraps its handler.
func newBackend(t *testing.T, skipHash bool, wrap func(http.Handler) http.Handler) *backend {
	t.Helper()
	dir := t.TempDir()
	st, err := local.Create(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := server.OpenTokens(filepath.Join(dir, "tokens"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := tokens.Add("host-1")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Store: st, Tokens: tokens, SkipContentChecks: skipHash})
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = srv
	if wrap != nil {
		h = wrap(srv)
	}
	ts := httptest.NewUnstartedServer(h)
	ts.EnableHTTP2 = true
	ts.StartTLS()
	t.Cleanup(ts.Close)
	pin := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	return &backend{local: st, url: ts.URL + "/", pin: pin, token: token}
}

func (b *backend) client(t *testing.T) *Store {
	t.Helper()
	s, err := New(b.url, Options{Token: b.token, PinnedCert: b.pin, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRemoteConformance runs the store conformance suite through a server.
// Its objects are not named by their hashes, so the server is told not to
// check them; TestRemoteHashNames covers the check.
func TestRemoteConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return newBackend(t, true, nil).client(t)
	})
}

func name(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestRemoteHashNames(t *testing.T) {
	s := newBackend(t, false, nil).client(t)
	ctx := t.Context()
	data := []byte("pack bytes")
	if err := s.Save(ctx, store.Handle{Type: store.Packs, Name: name(data)}, data); err != nil {
		t.Fatal(err)
	}
	err := s.Save(ctx, store.Handle{Type: store.Packs, Name: name([]byte("other"))}, data)
	if err == nil || !strings.Contains(err.Error(), "422") {
		t.Fatalf("Save under another hash = %v, want a 422", err)
	}
	st, err := s.Stage(store.Snapshots)
	if err != nil {
		t.Fatal(err)
	}
	st.Write(data)
	if err := st.Commit(ctx, name(data)); err != nil {
		t.Fatalf("Commit of a staged snapshot: %v", err)
	}
}

// TestRemoteListSkipsStrays has a server list names the rule of names
// refuses (an older server over a backend with stray files): the client
// reports only the objects, and a malformed entry is still an error.
func TestRemoteListSkipsStrays(t *testing.T) {
	obj := name([]byte("index"))
	listing := "{\"name\":\"latest\",\"size\":3}\n{\"name\":\"" + obj + "\",\"size\":5}\n" +
		"{\"name\":\"" + strings.ToUpper(obj) + "\",\"size\":5}\n{\"end\":true}\n"
	b := newBackend(t, false, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/v1/index/":
				io.WriteString(w, listing)
			case "/v1/snapshots/":
				io.WriteString(w, "{\"name\":\""+obj+"\",\"size\":-1}\n{\"end\":true}\n")
			default:
				h.ServeHTTP(w, r)
			}
		})
	})
	s := b.client(t)
	var got []string
	if err := s.List(t.Context(), store.Index, func(fi store.FileInfo) error {
		got = append(got, fi.Name)
		return nil
	}); err != nil || len(got) != 1 || got[0] != obj {
		t.Fatalf("List = %v, %v; want just %s", got, err, obj)
	}
	if err := s.List(t.Context(), store.Snapshots, func(store.FileInfo) error { return nil }); err == nil {
		t.Fatal("List accepted an entry of negative size")
	}
}

// TestRemoteRetry makes the first attempt of every request fail, before
// or after the server handled it, and checks the client's results.
func TestRemoteRetry(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{}
	lose := false // handle the first attempt, then lose its answer
	b := newBackend(t, false, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key := r.Method + " " + r.URL.Path + " " + r.Header.Get("Range")
			mu.Lock()
			first := !seen[key]
			seen[key] = true
			l := lose
			mu.Unlock()
			if first && l {
				h.ServeHTTP(httptest.NewRecorder(), r)
			}
			if first {
				http.Error(w, "try again", http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	s := b.client(t)
	ctx := t.Context()
	data := []byte("some pack")
	pack := store.Handle{Type: store.Packs, Name: name(data)}
	if err := s.Save(ctx, pack, data); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if got, err := s.Load(ctx, pack); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Load: %q, %v", got, err)
	}
	p := make([]byte, 4)
	if err := s.ReadAt(ctx, pack, p, 2); err != nil || string(p) != "me p" {
		t.Fatalf("ReadAt: %q, %v", p, err)
	}
	if fi, err := s.Stat(ctx, pack); err != nil || fi.Size != int64(len(data)) {
		t.Fatalf("Stat: %+v, %v", fi, err)
	}
	n := 0
	if err := s.List(ctx, store.Packs, func(store.FileInfo) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("List: %d, %v", n, err)
	}

	mu.Lock()
	lose = true
	mu.Unlock()
	tests := []struct {
		name    string
		h       store.Handle
		stored  []byte // already there before the Save, if not nil
		data    []byte
		wantErr error
	}{
		{"pack stored by the lost attempt", store.Handle{Type: store.Packs, Name: name([]byte("p2"))}, nil, []byte("p2"), nil},
		{"ledger object stored by the lost attempt", store.Handle{Type: store.LedgerCheckpoints, Name: "00000000000000000007"}, nil, []byte("c7"), nil},
		{"config stored by the lost attempt", store.Handle{Type: store.Config}, nil, []byte("config"), nil},
		{"ledger object that was there with other bytes", store.Handle{Type: store.LedgerEntries, Name: "00000000000000000001"}, []byte("theirs"), []byte("mine"), store.ErrExists},
		{"ledger object that was there with the same bytes", store.Handle{Type: store.LedgerTiles, Name: "0-0"}, []byte("same"), []byte("same"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.stored != nil {
				if err := b.local.Save(ctx, tt.h, tt.stored); err != nil {
					t.Fatal(err)
				}
			}
			err := s.Save(ctx, tt.h, tt.data)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Save = %v, want %v", err, tt.wantErr)
			}
			want := tt.data
			if tt.stored != nil {
				want = tt.stored
			}
			if got, _ := b.local.Load(ctx, tt.h); !bytes.Equal(got, want) {
				t.Fatalf("the server holds %q, want %q", got, want)
			}
		})
	}
}

func TestRemoteRefusals(t *testing.T) {
	b := newBackend(t, false, nil)
	ctx := t.Context()
	cfg := store.Handle{Type: store.Config}

	wrong, err := New(b.url, Options{Token: "wrong-hunter2", PinnedCert: b.pin})
	if err != nil {
		t.Fatal(err)
	}
	_, err = wrong.Stat(ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "refused the token") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Stat with a wrong token = %v", err)
	}
	if _, err := Open(ctx, b.url, Options{Token: b.token, PinnedCert: b.pin}); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Open of an empty server = %v, want blob.ErrNotFound", err)
	}

	other, _, err := server.SelfSignedCert(t.TempDir(), nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	otherPin := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Certificate[0]})
	s, err := New(b.url, Options{Token: b.token, PinnedCert: otherPin})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, cfg); err == nil || !strings.Contains(err.Error(), "pinned") {
		t.Fatalf("Stat against another certificate = %v, want a pinning error", err)
	}
	// Without a pin the test server's certificate has no trusted root.
	s, err = New(b.url, Options{Token: b.token, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, cfg); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Stat without a pin = %v, want a certificate error", err)
	}
}

func TestParseLocation(t *testing.T) {
	tests := []struct {
		in, want string // want: the Location, or a part of the error
		ok       bool
	}{
		{"https://vault.example.org:8443/", "https://vault.example.org:8443", true},
		{"https://vault.example.org", "https://vault.example.org", true},
		{"https://10.0.0.1:8443/kalaja/", "https://10.0.0.1:8443/kalaja", true},
		{"https://[::1]:8443", "https://[::1]:8443", true},
		{"http://vault:8443/", "https://", false},
		{"https://user:hunter2@vault/", "credentials", false},
		{"https:///x", "no host", false},
		{"https://vault/?token=hunter2", "query", false},
		{"https://vault/#x", "fragment", false},
		{"https://vault/a%2Fb", "escaped", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, err := New(tt.in, Options{Token: "t"})
			if !tt.ok {
				if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("New(%q) = %v, want an error about %q", tt.in, err, tt.want)
				}
				return
			}
			if err != nil || s.Location() != tt.want {
				t.Fatalf("New(%q): %v, location %q, want %q", tt.in, err, s.Location(), tt.want)
			}
		})
	}
}

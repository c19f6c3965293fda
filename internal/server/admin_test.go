package server

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/kalaja/kalaja/internal/admin"
	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/remote"
)

// adminFixture is a server with an administrator key and a clock the
// test sets.
type adminFixture struct {
	*fixture
	signer note.Signer
	vkey   string
	now    *time.Time
}

func newKey(t *testing.T, name string) (note.Signer, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s, vkey
}

func newAdminFixture(t *testing.T, withKey bool) *adminFixture {
	t.Helper()
	a := &adminFixture{now: new(time.Time)}
	*a.now = time.Now().Truncate(time.Second)
	a.signer, a.vkey = newKey(t, "kalaja-admin")
	dir := t.TempDir()
	a.fixture = newFixture(t, func(o *Options) {
		o.AdminFile = filepath.Join(dir, "admin.json")
		o.AdminKeyFile = filepath.Join(dir, "admin.pub")
		if withKey {
			o.AdminKey = a.vkey
		}
		o.Now = func() time.Time { return *a.now }
	})
	return a
}

// request returns a request for this server with the next seq, expiring
// in an hour.
func (a *adminFixture) request(deletes ...store.Handle) admin.Request {
	st := a.srv.State()
	return admin.Request{Server: st.Server, Seq: st.Seq + 1, Expires: a.now.Add(time.Hour), Delete: deletes}
}

func (a *adminFixture) sign(r admin.Request) []byte {
	a.t.Helper()
	msg, err := r.Sign(a.signer)
	if err != nil {
		a.t.Fatal(err)
	}
	return msg
}

// post sends a signed request without a token.
func (a *adminFixture) post(msg []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/v1/admin", bytes.NewReader(msg))
	w := httptest.NewRecorder()
	a.srv.ServeHTTP(w, req)
	return w
}

// object stores a snapshot and sets its stamp (the file's modification
// time) to at.
func (a *adminFixture) object(content string, at time.Time) store.Handle {
	a.t.Helper()
	b := []byte(content)
	if w := a.do(http.MethodPut, "/v1/snapshots/"+sha(b), b); w.Code != http.StatusCreated {
		a.t.Fatalf("PUT: %d %s", w.Code, w.Body)
	}
	h := store.Handle{Type: store.Snapshots, Name: sha(b)}
	a.age(h, at)
	return h
}

func (a *adminFixture) age(h store.Handle, at time.Time) {
	a.t.Helper()
	p := filepath.Join(a.st.Location(), string(h.Type), h.Name)
	if err := os.Chtimes(p, at, at); err != nil {
		a.t.Fatal(err)
	}
}

func (a *adminFixture) exists(h store.Handle) bool {
	_, err := a.st.Stat(a.t.Context(), h)
	return err == nil
}

func (a *adminFixture) metrics() string {
	w := httptest.NewRecorder()
	a.srv.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return w.Body.String()
}

func result(t *testing.T, w *httptest.ResponseRecorder) admin.Result {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("POST /v1/admin: %d %s", w.Code, w.Body)
	}
	var res admin.Result
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
		t.Fatalf("result %s: %v", w.Body, err)
	}
	return res
}

const day = 24 * time.Hour

// TestAdminDelete deletes an object older than the retention, keeps a
// younger one and reports a missing one, then refuses replays.
func TestAdminDelete(t *testing.T) {
	a := newAdminFixture(t, true)
	if err := a.srv.Count(t.Context()); err != nil {
		t.Fatal(err)
	}
	old := a.object("old snapshot", a.now.Add(-31*day))
	young := a.object("young snapshot", a.now.Add(-10*day))
	missing := store.Handle{Type: store.Snapshots, Name: sha([]byte("never stored"))}
	msg := a.sign(a.request(old, young, missing))

	res := result(t, a.post(msg))
	youngStamp := a.now.Add(-10 * day)
	want := admin.Result{Deleted: []store.Handle{old}, Kept: []admin.Kept{
		{Object: young, Reason: "retention", Until: youngStamp.Add(DefaultRetention).UTC()},
		{Object: missing, Reason: "missing"},
	}}
	if got, _ := json.Marshal(res); !bytes.Equal(got, must(json.Marshal(want))) {
		t.Fatalf("result %s, want %s", got, must(json.Marshal(want)))
	}
	if a.exists(old) || !a.exists(young) {
		t.Fatalf("after the request: old exists %v, young exists %v", a.exists(old), a.exists(young))
	}
	if st := a.srv.State(); st.Seq != 1 {
		t.Fatalf("seq %d after the first request", st.Seq)
	}

	// The same request again, even once young is old enough: refused.
	a.age(young, a.now.Add(-40*day))
	w := a.post(msg)
	if w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "replayed or out-of-order request: seq 1, last accepted 1") {
		t.Fatalf("replay: %d %q, want 409", w.Code, w.Body)
	}
	if !a.exists(young) {
		t.Fatal("the replay deleted an object")
	}
	// A later request deletes it; then an earlier seq is refused.
	r := a.request(young)
	r.Seq = 5
	if res := result(t, a.post(a.sign(r))); len(res.Deleted) != 1 || a.exists(young) {
		t.Fatalf("seq 5: %+v", res)
	}
	r.Seq = 4
	r.Delete = []store.Handle{missing}
	if w := a.post(a.sign(r)); w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "seq 4, last accepted 5") {
		t.Fatalf("lower seq: %d %q, want 409", w.Code, w.Body)
	}
	m := a.metrics()
	for _, want := range []string{
		`kalaja_server_admin_requests_total{result="accepted"} 2`,
		`kalaja_server_admin_requests_total{result="refused"} 2`,
		`kalaja_server_deleted_objects_total{kind="snapshots"} 2`,
		`kalaja_server_refused_requests_total{reason="admin_replay"} 2`,
		`kalaja_server_objects{kind="snapshots"} 0`,
		`kalaja_server_bytes{kind="snapshots"} 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestAdminRefusals sends requests that must be refused and checks that
// each changes nothing.
func TestAdminRefusals(t *testing.T) {
	a := newAdminFixture(t, true)
	obj := a.object("snapshot", a.now.Add(-100*day))
	other, _ := newKey(t, "kalaja-admin")
	good := a.request(obj)
	signed := a.sign(good)
	with := func(change func(*admin.Request)) []byte {
		r := a.request(obj)
		change(&r)
		return a.sign(r)
	}
	otherSigned, err := good.Sign(other)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		body   []byte
		length int64 // 0: the body's
		status int
		reason string
	}{
		{"other server", with(func(r *admin.Request) { r.Server = strings.Repeat("0", 32) }), 0, http.StatusForbidden, reasonAdminServer},
		{"expired", with(func(r *admin.Request) { r.Expires = a.now.Add(-time.Second) }), 0, http.StatusForbidden, reasonAdminExpired},
		{"expires now", with(func(r *admin.Request) { r.Expires = *a.now }), 0, http.StatusForbidden, reasonAdminExpired},
		{"expires too late", with(func(r *admin.Request) { r.Expires = a.now.Add(8 * day) }), 0, http.StatusForbidden, reasonAdminExpired},
		{"another key", otherSigned, 0, http.StatusForbidden, reasonAdminSignature},
		{"tampered", bytes.Replace(signed, []byte("seq 1"), []byte("seq 2"), 1), 0, http.StatusForbidden, reasonAdminSignature},
		{"another object", bytes.Replace(signed, []byte(obj.Name[:8]), []byte("00000000"), 1), 0, http.StatusForbidden, reasonAdminSignature},
		{"unsigned", signed[:bytes.Index(signed, []byte("\n\n"))+1], 0, http.StatusBadRequest, reasonAdminMalformed},
		{"garbage", []byte("delete everything\n"), 0, http.StatusBadRequest, reasonAdminMalformed},
		{"oversized", nil, admin.MaxSize + 1, http.StatusRequestEntityTooLarge, reasonTooLarge},
		{"no length", signed, -1, http.StatusLengthRequired, reasonLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/v1/admin", bytes.NewReader(tt.body))
			if tt.length != 0 {
				req.ContentLength = tt.length
			}
			w := httptest.NewRecorder()
			a.srv.ServeHTTP(w, req)
			if w.Code != tt.status || strings.Count(w.Body.String(), "\n") != 1 {
				t.Fatalf("%d %q, want %d and one line", w.Code, w.Body, tt.status)
			}
			if m := a.metrics(); !strings.Contains(m, `kalaja_server_refused_requests_total{reason="`+tt.reason+`"} `) ||
				strings.Contains(m, `kalaja_server_refused_requests_total{reason="`+tt.reason+`"} 0`) {
				t.Errorf("no refusal counted for %s", tt.reason)
			}
			if !a.exists(obj) || a.srv.State().Seq != 0 {
				t.Fatal("a refused request changed the server")
			}
		})
	}
	// Other methods, and the state without a token.
	w := httptest.NewRecorder()
	a.srv.ServeHTTP(w, httptest.NewRequest(http.MethodDelete, "/v1/admin", nil))
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, POST" {
		t.Fatalf("DELETE /v1/admin: %d, Allow %q", w.Code, w.Header().Get("Allow"))
	}
	// Finally the good request is accepted.
	if res := result(t, a.post(signed)); len(res.Deleted) != 1 {
		t.Fatalf("the good request: %+v", res)
	}
}

func TestAdminNoKey(t *testing.T) {
	a := newAdminFixture(t, false)
	obj := a.object("snapshot", a.now.Add(-100*day))
	w := a.post(a.sign(a.request(obj)))
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "no administrator key") {
		t.Fatalf("POST without a key: %d %q", w.Code, w.Body)
	}
	if !a.exists(obj) {
		t.Fatal("deleted without a key")
	}
	w = httptest.NewRecorder()
	a.srv.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/admin", nil))
	var st admin.State
	if err := json.Unmarshal(w.Body.Bytes(), &st); w.Code != http.StatusOK || err != nil || st.Key != "" ||
		admin.CheckServerID(st.Server) != nil || st.Retention != DefaultRetention {
		t.Fatalf("GET /v1/admin: %d %s (%v)", w.Code, w.Body, err)
	}
}

// TestAdminRestart changes the retention by a signed request and checks
// that it, the seq and the key survive a restart, and that the retention
// and key cannot be changed by the server's options.
func TestAdminRestart(t *testing.T) {
	a := newAdminFixture(t, true)
	r := a.request()
	r.Retention = 2 * day
	msg := a.sign(r)
	if res := result(t, a.post(msg)); len(res.Deleted)+len(res.Kept) != 0 {
		t.Fatalf("a retention change deleted or kept objects: %+v", res)
	}
	before := a.srv.State()
	o := a.opts
	o.AdminKey = "" // the key comes from admin.pub
	srv, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	a.srv = srv
	if st := srv.State(); st != before || st.Retention != 2*day || st.Seq != 1 || st.Key != a.vkey {
		t.Fatalf("state after a restart %+v, want %+v", st, before)
	}
	if w := a.post(msg); w.Code != http.StatusConflict {
		t.Fatalf("replay after a restart: %d %q, want 409", w.Code, w.Body)
	}
	// The new retention applies: 3 days is old enough.
	obj := a.object("snapshot", a.now.Add(-3*day))
	if res := result(t, a.post(a.sign(a.request(obj)))); len(res.Deleted) != 1 {
		t.Fatalf("delete under the new retention: %+v", res)
	}

	o.Retention = DefaultRetention
	if _, err := New(o); err == nil || !strings.Contains(err.Error(), "signed") {
		t.Fatalf("restart with another retention: %v", err)
	}
	o.Retention = 2 * day
	if _, err := New(o); err != nil {
		t.Fatalf("restart with the same retention: %v", err)
	}
	_, otherKey := newKey(t, "kalaja-admin")
	o.AdminKey = otherKey
	if _, err := New(o); err == nil || !strings.Contains(err.Error(), "can only be changed by editing") {
		t.Fatalf("restart with another key: %v", err)
	}
	if b, err := os.ReadFile(a.opts.AdminKeyFile); err != nil || strings.TrimSpace(string(b)) != a.vkey {
		t.Fatalf("admin.pub holds %q (%v)", b, err)
	}
	var f adminFile
	if b, err := os.ReadFile(a.opts.AdminFile); err != nil || json.Unmarshal(b, &f) != nil ||
		f.Version != 1 || f.Seq != 2 || f.Server != before.Server || f.Retention != "48h0m0s" {
		t.Fatalf("admin.json: %s (%v)", b, err)
	}
}

// TestAdminRemote drives stamps and administrator requests through the
// remote client over TLS.
func TestAdminRemote(t *testing.T) {
	a := newAdminFixture(t, true)
	ts := httptest.NewTLSServer(a.srv)
	t.Cleanup(ts.Close)
	pin := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	rs, err := remote.New(ts.URL, remote.Options{Token: a.token, PinnedCert: pin, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	obj := a.object("snapshot", time.Date(2020, 1, 2, 3, 4, 5, 6789, time.UTC))
	want, err := a.st.Stat(ctx, obj)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := rs.Stat(ctx, obj); err != nil || !fi.Stamp.Equal(want.Stamp) {
		t.Fatalf("remote Stat stamp %v (%v), want %v", fi.Stamp, err, want.Stamp)
	}
	err = rs.List(ctx, store.Snapshots, func(fi store.FileInfo) error {
		if !fi.Stamp.Equal(want.Stamp) {
			t.Errorf("remote List stamp %v, want %v", fi.Stamp, want.Stamp)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	st, err := rs.AdminState(ctx)
	if err != nil || st != a.srv.State() {
		t.Fatalf("AdminState = %+v, %v; want %+v", st, err, a.srv.State())
	}
	msg := a.sign(admin.Request{Server: st.Server, Seq: st.Seq + 1, Expires: a.now.Add(time.Hour), Delete: []store.Handle{obj}})
	res, err := rs.Admin(ctx, msg)
	if err != nil || len(res.Deleted) != 1 || res.Deleted[0] != obj {
		t.Fatalf("Admin = %+v, %v", res, err)
	}
	if _, err := rs.Admin(ctx, msg); err == nil || !strings.Contains(err.Error(), "replayed") || !strings.Contains(err.Error(), "409") {
		t.Fatalf("Admin replay = %v, want the server's 409 message", err)
	}
}

package server

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/store"
)

// dashFixture is a fixture with a dashboard credential "ops" and a
// dashboard handler that counts the requests it is handed.
type dashFixture struct {
	*fixture
	dashToken string
	served    []string // paths the dashboard handler saw
}

func newDashFixture(t *testing.T) *dashFixture {
	t.Helper()
	d := &dashFixture{}
	d.fixture = newFixture(t, func(o *Options) {
		o.Dashboard = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d.served = append(d.served, r.URL.Path)
			w.WriteHeader(http.StatusOK)
		})
	})
	var err error
	if d.dashToken, err = d.opts.Tokens.AddDashboard("ops"); err != nil {
		t.Fatal(err)
	}
	return d
}

func basic(user, token string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+token))
}

// send sends a request with the given Authorization header ("" for none).
func (f *fixture) send(method, path, auth string, body []byte) *httptest.ResponseRecorder {
	f.t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	f.srv.ServeHTTP(w, req)
	return w
}

// TestDashboardCredentialOnAPI sends every method to every endpoint of the
// API with a dashboard credential, as Bearer and as Basic, and checks that
// each is refused with 403 and that nothing changed: objects, listings,
// the administrator state.
func TestDashboardCredentialOnAPI(t *testing.T) {
	f := newDashFixture(t)
	ctx := t.Context()
	existing := map[string][]byte{"/v1/config": []byte("config")}
	for _, k := range store.Listable {
		b := []byte("object of " + string(k))
		name := sha(b)
		if k == store.LedgerEntries || k == store.LedgerCheckpoints {
			name = "00000000000000000001"
		}
		if k == store.LedgerEntries { // the server takes only a batch readers accept
			rec := ledger.Record{Kind: ledger.KindPack, ID: blob.ID{1}, Size: 1, Time: time.Unix(1_800_000_000, 0), Host: "host-1"}
			b = append([]byte("kalaja ledger batch v1 1 1\n"), append(rec.Marshal(), '\n')...)
		}
		switch k {
		case store.LedgerTiles:
			name = "0-1.p3"
		case store.LedgerWitness:
			name = "00000000000000000001.0123abcd"
		case store.LedgerKeys:
			name = "verifier"
		}
		existing["/v1/"+string(k)+"/"+name] = b
	}
	for p, b := range existing {
		if w := f.do(http.MethodPut, p, b); w.Code != http.StatusCreated {
			t.Fatalf("PUT %s: %d %s", p, w.Code, w.Body)
		}
	}
	admin := f.do(http.MethodGet, "/v1/admin", nil).Body.String()
	paths := []string{"/v1/config", "/v1/admin", "/v1/events", "/v1/", "/v1/unknown", "/v1/keys/..%2fconfig"}
	for p := range existing {
		paths = append(paths, p)
	}
	for _, k := range store.Listable {
		fresh := []byte("new " + string(k))
		paths = append(paths, "/v1/"+string(k)+"/", "/v1/"+string(k)+"/"+sha(fresh))
	}
	methods := []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost, http.MethodDelete,
		http.MethodPatch, http.MethodOptions, "BREW"}
	for _, auth := range []struct{ name, header string }{
		{"bearer", "Bearer " + f.dashToken}, {"basic", basic("ops", f.dashToken)},
	} {
		for _, p := range paths {
			for _, m := range methods {
				t.Run(auth.name+" "+m+" "+p, func(t *testing.T) {
					body := []byte("new " + strings.TrimPrefix(p, "/v1/"))
					if w := f.send(m, p, auth.header, body); w.Code != http.StatusForbidden {
						t.Fatalf("%d %q, want 403", w.Code, w.Body)
					}
				})
			}
		}
	}
	for p, b := range existing {
		got, err := f.st.Load(ctx, handleOf(t, p))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s after the attempts: %q, %v; want %q", p, got, err, b)
		}
	}
	for _, ft := range store.Listable {
		n := 0
		f.st.List(ctx, ft, func(store.FileInfo) error { n++; return nil })
		if want := count(existing, ft); n != want {
			t.Errorf("%s holds %d objects after the attempts, want %d", ft, n, want)
		}
	}
	if got := f.do(http.MethodGet, "/v1/admin", nil).Body.String(); got != admin {
		t.Errorf("administrator state changed: %s, was %s", got, admin)
	}
	if len(f.served) != 0 {
		t.Errorf("the dashboard handler was called for %v", f.served)
	}
}

// TestDashboardAuth checks who may read the dashboard: the dashboard
// credential (Basic with its name, or Bearer); a host token is 403 however
// presented; anything else is 401 with a Basic challenge, and the
// dashboard handler is never called for a refused request.
func TestDashboardAuth(t *testing.T) {
	f := newDashFixture(t)
	paths := []string{"/dashboard/", "/dashboard", "/dashboard/alerts", "/dashboard/host/host-1", "/dashboard/style.css"}
	tests := []struct {
		name, header string
		want         int
	}{
		{"dashboard basic", basic("ops", f.dashToken), http.StatusOK},
		{"dashboard bearer", "Bearer " + f.dashToken, http.StatusOK},
		{"host bearer", "Bearer " + f.token, http.StatusForbidden},
		{"host basic", basic("host-1", f.token), http.StatusForbidden},
		{"none", "", http.StatusUnauthorized},
		{"dashboard token, wrong user", basic("admin", f.dashToken), http.StatusUnauthorized},
		{"dashboard token as the host's", basic("host-1", f.dashToken), http.StatusUnauthorized},
		{"host token as the dashboard's", basic("ops", f.token), http.StatusUnauthorized},
		{"wrong password", basic("ops", "hunter2"), http.StatusUnauthorized},
		{"empty password", basic("ops", ""), http.StatusUnauthorized},
		{"no colon", "Basic " + base64.StdEncoding.EncodeToString([]byte("ops"+f.dashToken)), http.StatusUnauthorized},
		{"not base64", "Basic !!!", http.StatusUnauthorized},
		{"raw token as basic", "Basic " + f.dashToken, http.StatusUnauthorized},
		{"token prefix", basic("ops", f.dashToken[:20]), http.StatusUnauthorized},
		{"oversized", basic("ops", strings.Repeat("x", 10000)), http.StatusUnauthorized},
		{"unknown scheme", "Digest " + f.dashToken, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		for _, p := range paths {
			for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
				t.Run(tt.name+" "+m+" "+p, func(t *testing.T) {
					before := len(f.served)
					w := f.send(m, p, tt.header, nil)
					if w.Code != tt.want {
						t.Fatalf("%d %q, want %d", w.Code, w.Body, tt.want)
					}
					if called := len(f.served) > before; called != (tt.want == http.StatusOK) {
						t.Errorf("dashboard handler called: %v", called)
					}
					if tt.want == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") != dashboardRealm {
						t.Errorf("WWW-Authenticate = %q", w.Header().Get("WWW-Authenticate"))
					}
					if strings.Contains(w.Body.String(), f.token) || strings.Contains(w.Body.String(), f.dashToken) {
						t.Error("the answer repeats a token")
					}
				})
			}
		}
	}
	if f.served[0] != "/" || f.served[len(f.served)-1] != "/style.css" {
		t.Errorf("the dashboard saw %v; want paths without /dashboard", f.served[:5])
	}
}

// TestDashboardNone checks that a server without a dashboard answers 404
// under /dashboard/, even to a dashboard credential.
func TestDashboardNone(t *testing.T) {
	f := newFixture(t, nil)
	tok, err := f.opts.Tokens.AddDashboard("ops")
	if err != nil {
		t.Fatal(err)
	}
	if w := f.send(http.MethodGet, "/dashboard/", basic("ops", tok), nil); w.Code != http.StatusNotFound {
		t.Fatalf("%d, want 404", w.Code)
	}
}

// TestTokensRoles checks the version 2 file: roles, unique names across
// roles, a version 1 file read as hosts and rewritten as version 2.
func TestTokensRoles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	v1 := tokensHeaderV1 + "\nweb-01 " + strings.Repeat("ab", 32) + "\n"
	if err := os.WriteFile(path, []byte(v1), 0o600); err != nil {
		t.Fatal(err)
	}
	tk, err := OpenTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	if all, err := tk.List(); err != nil || len(all) != 1 || all[0] != (Credential{"web-01", RoleHost}) {
		t.Fatalf("List of a v1 file = %v, %v", all, err)
	}
	dash, err := tk.AddDashboard("ops")
	if err != nil {
		t.Fatal(err)
	}
	host, err := tk.Add("db-01")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ops", "web-01"} {
		if _, err := tk.Add(name); err == nil {
			t.Errorf("Add(%s) succeeded: names are unique across roles", name)
		}
		if _, err := tk.AddDashboard(name); err == nil {
			t.Errorf("AddDashboard(%s) succeeded", name)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	if len(lines) != 5 || lines[0] != tokensHeader || lines[1] != "web-01 "+strings.Repeat("ab", 32)+" host" ||
		!strings.HasPrefix(lines[2], "ops ") || !strings.HasSuffix(lines[2], " dashboard") ||
		!strings.HasPrefix(lines[3], "db-01 ") || !strings.HasSuffix(lines[3], " host") {
		t.Errorf("file after Add:\n%s", raw)
	}
	other, err := OpenTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	for tok, want := range map[string]Credential{dash: {"ops", RoleDashboard}, host: {"db-01", RoleHost}} {
		if c, ok, err := other.Lookup(tok); err != nil || !ok || c != want {
			t.Errorf("Lookup = %v, %v, %v; want %v", c, ok, err, want)
		}
	}
	if hosts, err := other.Hosts(); err != nil || strings.Join(hosts, ",") != "web-01,db-01" {
		t.Errorf("Hosts = %v, %v", hosts, err)
	}
	if err := other.Remove("ops"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := tk.Lookup(dash); ok {
		t.Error("a removed dashboard credential is accepted")
	}
	for _, bad := range []string{
		tokensHeader + "\nweb-01 " + strings.Repeat("ab", 32) + "\n",        // v2 without a role
		tokensHeader + "\nweb-01 " + strings.Repeat("ab", 32) + " admin\n",  // unknown role
		tokensHeaderV1 + "\nweb-01 " + strings.Repeat("ab", 32) + " host\n", // v1 with a role
		tokensHeader + "\na " + strings.Repeat("ab", 32) + " host\na " + strings.Repeat("cd", 32) + " dashboard\n",
	} {
		if _, err := parseTokens([]byte(bad)); err == nil {
			t.Errorf("parseTokens accepted %q", bad)
		}
	}
}

package dashboard

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/fleet"
)

func get(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, "/dashboard"+path, nil))
	return w
}

func newTest(f Fleet) http.Handler {
	return http.StripPrefix("/dashboard", New(f, func() time.Time { return now }))
}

// TestPages renders every page of a fleet under attack and checks what
// each shows.
func TestPages(t *testing.T) {
	h := newTest(attackedFleet())
	tests := []struct {
		path string
		want []string
	}{
		{"/", []string{`data-host="fs-01"`, `data-host="web-02"`, `data-host="lab-07"`, `data-host="db-01"`,
			">silent<", "since 2026-12-06 21:15 UTC (45m ago)", ">overdue<", ">suspect<", "entropy, rename-burst",
			">never<", `id="attention">3<`, "1.9 TiB", "21 GiB/day", "2027-01-04 (in 29 days)",
			"witness.example.org", ">OK<", "size 1834", ">behind<", "encryptor", `href="host/fs-01"`, `http-equiv="refresh" content="30"`,
			`href="style.css"`}},
		{"/alerts", []string{"encryptor", "pid 4242", "host's clock: 2026-12-06 19:00:00 UTC",
			"/srv/share/hr/contracts.pdf", "<summary>2 more</summary>", `href="host/fs-01"`}},
		{"/host/fs-01", []string{"fs-01", "5ee5ee5ee5ee", "3.0 GiB", ">suspect<", "rename-burst", "encryptor",
			"/srv/share", "kalaja 0.19.0", `href="../style.css"`, `href="../alerts"`}},
		{"/host/lab-07", []string{">overdue<", ">unknown<", "No alerts.", "never"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			w := get(t, h, http.MethodGet, tt.path)
			if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
				t.Fatalf("%d %s", w.Code, w.Header().Get("Content-Type"))
			}
			for _, s := range tt.want {
				if !strings.Contains(w.Body.String(), s) {
					t.Errorf("page lacks %q", s)
				}
			}
		})
	}
	// The overview lists the hosts that need attention first.
	body := get(t, h, http.MethodGet, "/").Body.String()
	if i, j := strings.Index(body, `data-host="lab-07"`), strings.Index(body, `data-host="db-01"`); i > j {
		t.Error("db-01, healthy, is listed before lab-07, overdue")
	}
}

// TestEscaping checks that what hosts send renders inert: a process name,
// a path and a host name that carry markup appear escaped, never as tags.
func TestEscaping(t *testing.T) {
	f := attackedFleet()
	f.hosts = append(f.hosts, fleet.Host{Name: `"><script>alert(2)</script>`, Watcher: fleet.Never})
	f.alerts[0].Host = `"><script>alert(2)</script>`
	h := newTest(f)
	for _, path := range []string{"/", "/alerts", "/host/fs-01", "/host/%22%3E%3Cscript%3Ealert%282%29%3C%2Fscript%3E"} {
		w := get(t, h, http.MethodGet, path)
		if w.Code != http.StatusOK {
			t.Fatalf("%s: %d", path, w.Code)
		}
		b := w.Body.String()
		if strings.Contains(b, "<script") || strings.Contains(b, "<img") {
			t.Errorf("%s holds markup from a host:\n%s", path, b)
		}
		if path != "/host/fs-01" && !strings.Contains(b, "&lt;script&gt;") {
			t.Errorf("%s lacks the escaped name", path)
		}
	}
}

// TestReadOnly checks the methods, the headers and the unknown paths.
func TestReadOnly(t *testing.T) {
	h := newTest(attackedFleet())
	for _, path := range []string{"/", "/alerts", "/host/fs-01", "/style.css", "", "/nope"} {
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions, "BREW"} {
			w := get(t, h, m, path)
			if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d, Allow %q", m, path, w.Code, w.Header().Get("Allow"))
			}
		}
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			w := get(t, h, m, path)
			for k, v := range map[string]string{"Content-Security-Policy": "default-src 'self'",
				"X-Frame-Options": "DENY", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"} {
				if !strings.HasPrefix(w.Header().Get(k), v) {
					t.Errorf("%s %s: %s = %q", m, path, k, w.Header().Get(k))
				}
			}
		}
	}
	for path, want := range map[string]int{"": http.StatusMovedPermanently, "/nope": http.StatusNotFound,
		"/host/nobody": http.StatusNotFound, "/host/": http.StatusNotFound, "/style.css": http.StatusOK,
		"/host/fs-01/x": http.StatusNotFound} {
		if w := get(t, h, http.MethodGet, path); w.Code != want {
			t.Errorf("GET %q: %d, want %d", path, w.Code, want)
		}
	}
	if w := get(t, h, http.MethodGet, ""); w.Header().Get("Location") != "dashboard/" {
		t.Errorf("redirect to %q", w.Header().Get("Location"))
	}
}

// TestEmpty renders a vault with no hosts, alerts, ledger or storage data.
func TestEmpty(t *testing.T) {
	h := newTest(&fakeFleet{storage: fleet.Storage{Free: -1}})
	for _, path := range []string{"/", "/alerts"} {
		w := get(t, h, http.MethodGet, path)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "No ") {
			t.Errorf("%s: %d\n%s", path, w.Code, w.Body)
		}
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 59 * time.Second: "59s", 90 * time.Second: "1m", 3*time.Hour + 5*time.Minute: "3h 5m",
		50 * time.Hour: "2d 2h", -2 * time.Minute: "in the future: 2m",
	} {
		if got := duration(d); got != want {
			t.Errorf("duration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestLedgerVerify checks the overview's verify tile and row for each
// outcome of the server's last verify.
func TestLedgerVerify(t *testing.T) {
	tests := []struct {
		name string
		v    fleet.Verify
		want []string
	}{
		{"never", fleet.Verify{}, []string{`<div class="v">—</div>`, ">never<"}},
		{"ok", fleet.Verify{Time: now.Add(-time.Hour), OK: true}, []string{`tile ok"><div class="k">Ledger verify</div><div class="v">OK<`}},
		{"failed", fleet.Verify{Time: now.Add(-time.Hour), Problems: 3}, []string{`tile bad"><div class="k">Ledger verify</div><div class="v">FAILED<`, "3 problems"}},
		{"error", fleet.Verify{Time: now.Add(-time.Hour), Error: "no <verifier> key"}, []string{">ERROR<", "could not run: no &lt;verifier&gt; key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := attackedFleet()
			f.ledger.LastVerify = tt.v
			b := get(t, newTest(f), http.MethodGet, "/").Body.String()
			for _, w := range tt.want {
				if !strings.Contains(b, w) {
					t.Errorf("overview lacks %q", w)
				}
			}
		})
	}
}

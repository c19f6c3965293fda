package dashboard

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/server"
	"github.com/kalaja/kalaja/internal/store/local"
)

// chromium returns the path of Debian's chromium (scripts/chromium.sh
// installs it). Without it the browser tests skip, but fail in CI, where
// they must run.
func chromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: no browser")
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("CI: chromium is not installed (scripts/chromium.sh), and the browser tests must run")
		}
		t.Skip("chromium is not installed (scripts/chromium.sh)")
	}
	return p
}

// browse runs headless chromium on u with extra flags and returns its
// standard output.
func browse(t *testing.T, bin, u string, flags ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--ignore-certificate-errors", "--user-data-dir=" + t.TempDir(), "--hide-scrollbars"}, flags...)
	cmd := exec.CommandContext(ctx, bin, append(args, u)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", flags, err, errb.Bytes())
	}
	return out.String()
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// vault starts a real server over a local repository with the dashboard
// of f, and returns the dashboard's URL with a dashboard credential in its
// user information, and the server's request log.
func vault(t *testing.T, f Fleet) (*url.URL, *syncBuffer) {
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
	token, err := tokens.AddDashboard("ops")
	if err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	srv, err := server.New(server.Options{Store: st, Tokens: tokens, Logger: slog.New(slog.NewTextHandler(log, nil)),
		Dashboard: New(f, func() time.Time { return now })})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewTLSServer(srv)
	t.Cleanup(ts.Close)
	u, err := url.Parse(ts.URL + "/dashboard/")
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("ops", token)
	return u, log
}

// TestBrowser loads the dashboard of a fleet with an attacked, a silent
// and an overdue host in headless Chromium, through a real server with
// the dashboard credential, checks what the pages show, with and without
// JavaScript, and saves screenshots in the test's artifact directory
// (go test -artifacts) and, if KALAJA_SCREENSHOTS names a directory, there.
func TestBrowser(t *testing.T) {
	bin := chromium(t)
	u, log := vault(t, attackedFleet())
	// Each host's row, as the browser parsed it: its state cells in order.
	rows := map[string][]string{
		"fs-01":  {"watching", "suspect", "entropy, rename-burst", ">2<"},
		"web-02": {"silent", "since 2026-12-06 21:15 UTC"},
		"lab-07": {"never", "overdue", "unknown"},
		"db-01":  {"watching", "clean"},
	}
	// Without JavaScript a browser shows the page as served: Chromium
	// cannot dump a page with scripts off (--blink-settings=
	// scriptEnabled=false stops --dump-dom and --screenshot, and it
	// ignores --disable-javascript), so the served HTML is checked for the
	// same essentials, and for holding no script at all.
	served := fetch(t, u)
	if strings.Contains(served, "<script") {
		t.Error("the served page holds a script")
	}
	for _, page := range []struct{ name, dom string }{
		{"chromium", browse(t, bin, u.String(), "--dump-dom")}, {"served", served},
	} {
		dom := page.dom
		for host, want := range rows {
			row := rowOf(dom, host)
			if row == "" {
				t.Fatalf("%s: no row for %s in\n%s", page.name, host, dom)
			}
			for _, w := range want {
				if !strings.Contains(row, w) {
					t.Errorf("%s: row of %s lacks %q:\n%s", page.name, host, w, row)
				}
			}
			if bad := strings.Contains(row, `class="bad"`); bad != (host != "db-01") {
				t.Errorf("%s: row of %s marked bad: %v", page.name, host, bad)
			}
		}
		for _, w := range []string{`id="attention">3<`, "&lt;script&gt;alert(", "witness.example.org"} {
			if !strings.Contains(dom, w) {
				t.Errorf("%s: the overview lacks %q", page.name, w)
			}
		}
		if strings.Contains(dom, "<script") || strings.Contains(dom, "<img") {
			t.Errorf("%s: a host's process or path became an element", page.name)
		}
	}
	host := *u
	host.Path += "host/fs-01"
	if dom := browse(t, bin, host.String(), "--dump-dom"); !strings.Contains(dom, "5ee5ee5ee5ee") || !strings.Contains(dom, "rename-burst") {
		t.Errorf("the page of fs-01 lacks its suspect snapshot:\n%s", dom)
	}
	alerts := *u
	alerts.Path += "alerts"
	shots := map[string][]string{
		"overview.png":       {u.String(), "1280,1150"},
		"overview-phone.png": {u.String(), "390,1600"},
		"host-fs-01.png":     {host.String(), "1280,800"},
		"alerts.png":         {alerts.String(), "1280,600"},
	}
	dirs := []string{t.ArtifactDir()}
	if d := os.Getenv("KALAJA_SCREENSHOTS"); d != "" {
		dirs = append(dirs, d)
	}
	for name, s := range shots {
		p := filepath.Join(dirs[0], name)
		browse(t, bin, s[0], "--screenshot="+p, "--window-size="+s[1])
		b, err := os.ReadFile(p)
		if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		for _, d := range dirs[1:] {
			if err := os.WriteFile(filepath.Join(d, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("screenshot %s", p)
	}
	// The browser fetched the stylesheet with the credential it was given
	// for the page: the screenshots are of the styled page.
	if l := log.String(); !strings.Contains(l, `host=ops method=GET kind=dashboard name=/style.css status=200`) {
		t.Errorf("the browser did not fetch the stylesheet; server log:\n%s", l)
	}
}

// fetch GETs u with the credential in its user information, as a browser
// without JavaScript would, and returns the body.
func fetch(t *testing.T, u *url.URL) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pass, _ := u.User.Password()
	req.SetBasicAuth(u.User.Username(), pass)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", u.Redacted(), resp.StatusCode, err)
	}
	return string(b)
}

// rowOf returns the table row of host on the overview, "" if none.
func rowOf(dom, host string) string {
	i := strings.LastIndex(dom[:max(strings.Index(dom, `data-host="`+host+`"`), 0)], "<tr")
	if i < 0 {
		return ""
	}
	j := strings.Index(dom[i:], "</tr>")
	if j < 0 {
		return ""
	}
	return dom[i : i+j]
}

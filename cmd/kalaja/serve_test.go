package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/remote"
	"github.com/kalaja/kalaja/internal/testtree"
)

// served is a running kalaja serve.
type served struct {
	url    string // https://127.0.0.1:PORT/
	cert   string // the generated certificate's file
	repo   string // the directory it serves
	dir    string // its server directory
	banner string // what it printed on stdout up to its serving line
	cmd    *exec.Cmd
	killed bool // kill ended it: the test's end has nothing to stop
	mu     sync.Mutex
	stderr bytes.Buffer
}

func (s *served) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// lockedWriter appends to the server's stderr buffer under its lock.
type lockedWriter struct{ s *served }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.stderr.Write(p)
}

// startServer runs kalaja serve on a free port of 127.0.0.1 over a new
// directory and waits until it listens; the test's end stops it.
func startServer(t *testing.T, extra ...string) *served {
	t.Helper()
	dir := t.TempDir()
	return startServerAt(t, filepath.Join(dir, "repo"), filepath.Join(dir, "server"), "127.0.0.1:0", extra...)
}

// startServerAt runs kalaja serve over the repository directory repo with
// the server directory dir, listening on listen (host:port, port 0 for a
// free one), and waits until it listens; the test's end stops it unless
// kill did. Started again on the same directories and address, it serves
// the same repository with the same certificate.
func startServerAt(t *testing.T, repo, dir, listen string, extra ...string) *served {
	t.Helper()
	s := &served{repo: repo, dir: dir}
	cmd := exec.Command(kalajaBin, append([]string{"serve", "--dir", s.repo, "--server-dir", s.dir,
		"--listen", listen}, extra...)...)
	s.cmd = cmd
	cmd.Env = os.Environ()
	cmd.Stderr = lockedWriter{s}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var lines []string
	for s.url == "" && sc.Scan() {
		line := sc.Text()
		lines = append(lines, line)
		if _, u, ok := strings.Cut(line, " on "); ok && strings.HasPrefix(line, "serving ") {
			s.url = u
		}
	}
	if s.url == "" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("kalaja serve did not start:\n%s\n%s", strings.Join(lines, "\n"), s.log())
	}
	if !strings.Contains(strings.Join(lines, "\n"), "certificate fingerprint sha256:") {
		t.Errorf("kalaja serve printed no fingerprint:\n%s", strings.Join(lines, "\n"))
	}
	s.banner = strings.Join(lines, "\n")
	s.cert = filepath.Join(s.dir, "tls", "cert.pem")
	go func() {
		for sc.Scan() {
		}
	}()
	t.Cleanup(func() {
		if s.killed {
			return
		}
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("kalaja serve: %v\n%s", err, s.log())
		}
	})
	return s
}

// kill ends the server with SIGKILL, as a crash would, and waits for it
// to be gone.
func (s *served) kill(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill kalaja serve: %v", err)
	}
	s.cmd.Wait() // "signal: killed"
	s.killed = true
}

// addToken runs kalaja serve token add and writes the token to a file.
func (s *served) addToken(t *testing.T, host string) (token, file string) {
	t.Helper()
	e := envAt(t, "")
	r := e.must("serve", "token", "add", host, "--server-dir", s.dir)
	token = strings.TrimSpace(r.stdout)
	if len(token) != 43 {
		t.Fatalf("token add printed %q", r.stdout)
	}
	file = filepath.Join(t.TempDir(), "token")
	must(t, os.WriteFile(file, []byte(token+"\n"), 0o600))
	return token, file
}

// client returns an environment for the served repository with a token.
func (s *served) client(t *testing.T, tokenFile string) *testEnv {
	e := envAt(t, s.url)
	e.vars = append(e.vars, "KALAJA_SERVER_CERT="+s.cert, "KALAJA_SERVER_TOKEN_FILE="+tokenFile)
	return e
}

// https returns an HTTP client that trusts the server's certificate, as
// a host that pinned it does, for raw requests to the server.
func (s *served) https(t *testing.T) *http.Client {
	t.Helper()
	pin, err := os.ReadFile(s.cert)
	must(t, err)
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pin) {
		t.Fatalf("no certificate in %s", s.cert)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
}

// TestServeRoundTrip backs up through kalaja serve and restores, checks and
// verifies through it, then tries what a host's token cannot do.
func TestServeRoundTrip(t *testing.T) {
	s := startServer(t, "--quota-per-host", "1GiB")
	token, tokenFile := s.addToken(t, "host-1")
	e := s.client(t, tokenFile)
	e.must("init")
	if r := e.run("init"); r.code != exitFailure || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("second init: exit %d, %s", r.code, r.stderr)
	}

	dir := t.TempDir()
	src, out := filepath.Join(dir, "src"), filepath.Join(dir, "out")
	generate(t, src, testtree.Options{Seed: 21, Files: 60, MaxFileSize: 2 << 20})
	must(t, os.Mkdir(out, 0o700))
	t.Cleanup(func() { testtree.MakeRemovable(out) })
	snap := e.backup(src)
	e.must("restore", snap, "--target", out)
	assertSameTree(t, src, filepath.Join(out, src))
	e.must("check", "--read-data")
	e.backup(src)
	e.must("verify", "--read-data")
	if r := e.must("snapshots", "--json"); !strings.Contains(r.stdout, snap) {
		t.Fatalf("snapshots does not list %s: %s", snap, r.stdout)
	}

	// What the host's token cannot do.
	ctx := t.Context()
	pin, err := os.ReadFile(s.cert)
	must(t, err)
	rs, err := remote.New(s.url, remote.Options{Token: token, PinnedCert: pin})
	must(t, err)
	var snaps []string
	must(t, rs.List(ctx, store.Snapshots, func(fi store.FileInfo) error {
		snaps = append(snaps, fi.Name)
		return nil
	}))
	if len(snaps) != 2 {
		t.Fatalf("the server lists %d snapshots, want 2", len(snaps))
	}
	h := store.Handle{Type: store.Snapshots, Name: snaps[0]}
	before, err := rs.Load(ctx, h)
	must(t, err)
	if err := rs.Save(ctx, h, []byte("forged")); !errors.Is(err, store.ErrExists) {
		t.Fatalf("overwriting a snapshot: %v, want store.ErrExists", err)
	}
	if err := rs.Save(ctx, store.Handle{Type: store.Config}, []byte("{}")); !errors.Is(err, store.ErrExists) {
		t.Fatalf("overwriting the config: %v, want store.ErrExists", err)
	}
	hc := s.https(t)
	for _, target := range []string{"v1/snapshots/" + snaps[0], "v1/config", "v1/data/"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, s.url+target, nil)
		must(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("DELETE %s: %s, want 405", target, resp.Status)
		}
	}
	after, err := os.ReadFile(filepath.Join(s.repo, "snapshots", snaps[0]))
	must(t, err)
	if !bytes.Equal(before, after) {
		t.Fatal("the snapshot changed")
	}
	e.must("check")

	// A wrong token is refused, and never printed.
	bad := s.client(t, tokenFile)
	bad.vars = append(bad.vars, "KALAJA_SERVER_TOKEN_FILE=", "KALAJA_SERVER_TOKEN=wrong-hunter2")
	if r := bad.run("snapshots"); r.code != exitFailure || !strings.Contains(r.stderr, "refused the token") || strings.Contains(r.stderr, "hunter2") {
		t.Fatalf("snapshots with a wrong token: exit %d, %s", r.code, r.stderr)
	}
	// Without the pinned certificate the self-signed one is not trusted.
	unpinned := s.client(t, tokenFile)
	unpinned.vars = append(unpinned.vars, "KALAJA_SERVER_CERT=")
	if r := unpinned.run("snapshots"); r.code != exitFailure || !strings.Contains(r.stderr, "certificate") {
		t.Fatalf("snapshots without the certificate: exit %d, %s", r.code, r.stderr)
	}
	if r := e.must("serve", "token", "list", "--server-dir", s.dir); strings.TrimSpace(r.stdout) != "host-1" {
		t.Fatalf("token list: %q", r.stdout)
	}
	if log := s.log(); strings.Contains(log, token) || strings.Contains(log, "hunter2") {
		t.Fatal("the server's log holds a token")
	}
	if raw, err := os.ReadFile(filepath.Join(s.dir, "tokens")); err != nil || bytes.Contains(raw, []byte(token)) {
		t.Fatalf("the tokens file holds the token (or: %v)", err)
	}
}

// TestServeDashboard makes a dashboard credential with kalaja serve token
// add --dashboard and checks, on a running server, that it reads the
// dashboard and nothing of the API, and that a host's token cannot read
// the dashboard.
func TestServeDashboard(t *testing.T) {
	s := startServer(t)
	hostToken, _ := s.addToken(t, "host-1")
	e := envAt(t, "")
	r := e.must("serve", "token", "add", "--dashboard", "ops", "--server-dir", s.dir)
	dash := strings.TrimSpace(r.stdout)
	if len(dash) != 43 {
		t.Fatalf("token add --dashboard printed %q", r.stdout)
	}
	if r := e.must("serve", "token", "list", "--server-dir", s.dir); r.stdout != "host-1\nops (dashboard)\n" {
		t.Fatalf("token list: %q", r.stdout)
	}
	hc := s.https(t)
	get := func(path, user, token string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.url+path, nil)
		must(t, err)
		req.SetBasicAuth(user, token)
		resp, err := hc.Do(req)
		must(t, err)
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	if code, body := get("dashboard/", "ops", dash); code != http.StatusOK || !strings.Contains(body, `data-host="host-1"`) {
		t.Fatalf("dashboard: %d\n%s", code, body)
	}
	if code, _ := get("dashboard/", "host-1", hostToken); code != http.StatusForbidden {
		t.Errorf("dashboard with a host token: %d, want 403", code)
	}
	if code, _ := get("v1/config", "ops", dash); code != http.StatusForbidden {
		t.Errorf("the API with the dashboard credential: %d, want 403", code)
	}
}

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/kalaja/kalaja/internal/admin"
	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/remote"
)

// TestAdminKeygen makes an administrator key, gives its public half to a
// server, and deletes an old object there with a request signed by the
// secret half.
func TestAdminKeygen(t *testing.T) {
	dir := t.TempDir()
	e := envAt(t, "")
	secret := filepath.Join(dir, "admin.key")
	r := e.must("admin", "keygen", "--name", "kalaja-admin-test", "--out", secret)
	vkey := strings.TrimSpace(r.stdout)
	if _, err := note.NewVerifier(vkey); err != nil || !strings.HasPrefix(vkey, "kalaja-admin-test+") {
		t.Fatalf("keygen printed %q: %v", r.stdout, err)
	}
	fi, err := os.Stat(secret)
	must(t, err)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("the secret key file has mode %v, want 0600", fi.Mode().Perm())
	}
	b, err := os.ReadFile(secret)
	must(t, err)
	signer, err := note.NewSigner(strings.TrimSpace(string(b)))
	must(t, err)
	if strings.Contains(r.stdout, strings.TrimSpace(string(b))) {
		t.Fatal("keygen printed the secret key")
	}

	if r := e.run("admin", "keygen", "--name", "other", "--out", secret); r.code != exitFailure || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("keygen over an existing file: exit %d, %s", r.code, r.stderr)
	}
	if b2, _ := os.ReadFile(secret); string(b2) != string(b) {
		t.Fatal("keygen overwrote the key")
	}
	for _, bad := range [][]string{{"--out", filepath.Join(dir, "x")}, {"--name", "a b", "--out", filepath.Join(dir, "y")}, {"--name", "n"}} {
		if r := e.run(append([]string{"admin", "keygen"}, bad...)...); r.code != exitUsage {
			t.Errorf("keygen %v: exit %d, want %d", bad, r.code, exitUsage)
		}
	}
	r = e.must("admin", "keygen", "--name", "second", "--out", filepath.Join(dir, "second.key"), "--json")
	var out struct {
		Name     string `json:"name"`
		Verifier string `json:"verifier_key"`
		File     string `json:"secret_key_file"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Name != "second" || !strings.HasPrefix(out.Verifier, "second+") {
		t.Fatalf("keygen --json: %q (%v)", r.stdout, err)
	}

	// The server takes the public key and honours a signed delete.
	pub := filepath.Join(dir, "admin.pub")
	must(t, os.WriteFile(pub, []byte(vkey+"\n"), 0o644))
	s := startServer(t, "--admin-key", pub, "--retention", "7d")
	if stored, err := os.ReadFile(filepath.Join(s.dir, "admin.pub")); err != nil || strings.TrimSpace(string(stored)) != vkey {
		t.Fatalf("SERVER-DIR/admin.pub holds %q (%v)", stored, err)
	}
	token, _ := s.addToken(t, "host-1")
	pin, err := os.ReadFile(s.cert)
	must(t, err)
	rs, err := remote.New(s.url, remote.Options{Token: token, PinnedCert: pin})
	must(t, err)
	ctx := t.Context()
	h := store.Handle{Type: store.Keys, Name: blob.Hash([]byte("key file")).String()}
	must(t, rs.Save(ctx, h, []byte("key file")))
	old := time.Now().Add(-8 * 24 * time.Hour)
	must(t, os.Chtimes(filepath.Join(s.repo, "keys", h.Name), old, old))

	st, err := rs.AdminState(ctx)
	must(t, err)
	if st.Key != vkey || st.Seq != 0 || st.Retention != 7*24*time.Hour {
		t.Fatalf("AdminState = %+v", st)
	}
	signed, err := admin.Request{Server: st.Server, Seq: 1, Expires: time.Now().Add(time.Hour), Delete: []store.Handle{h}}.Sign(signer)
	must(t, err)
	res, err := rs.Admin(ctx, signed)
	if err != nil || len(res.Deleted) != 1 {
		t.Fatalf("Admin = %+v, %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(s.repo, "keys", h.Name)); !os.IsNotExist(err) {
		t.Fatalf("the deleted object is still there: %v", err)
	}
	if _, err := rs.Admin(ctx, signed); err == nil || !strings.Contains(err.Error(), "replayed") {
		t.Fatalf("replay: %v", err)
	}
	if log := s.log(); !strings.Contains(log, "administrator request accepted") || !strings.Contains(log, h.String()) {
		t.Errorf("the server did not log the request and the deletion:\n%s", log)
	}

	// A second server over the same directory cannot change the
	// retention or the key from its command line.
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--retention", "1d"}, "signed"},
		{[]string{"--admin-key", filepath.Join(dir, "other.pub")}, "can only be changed by editing"},
	} {
		if len(tt.args) == 2 && tt.args[0] == "--admin-key" {
			must(t, os.WriteFile(tt.args[1], []byte(out.Verifier+"\n"), 0o644))
		}
		r := e.run(append([]string{"serve", "--dir", s.repo, "--server-dir", s.dir, "--listen", "127.0.0.1:0"}, tt.args...)...)
		if r.code != exitFailure || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("serve %v: exit %d, %s; want an error about %q", tt.args, r.code, r.stderr, tt.want)
		}
	}
}

// TestServeTokenRemove revokes a host's token while the server runs.
func TestServeTokenRemove(t *testing.T) {
	s := startServer(t)
	token, _ := s.addToken(t, "host-1")
	s.addToken(t, "host-2")
	pin, err := os.ReadFile(s.cert)
	must(t, err)
	rs, err := remote.New(s.url, remote.Options{Token: token, PinnedCert: pin})
	must(t, err)
	ctx := t.Context()
	list := func() error {
		return rs.List(ctx, store.Keys, func(store.FileInfo) error { return nil })
	}
	must(t, list())
	e := envAt(t, "")
	e.must("serve", "token", "remove", "host-1", "--server-dir", s.dir)
	if err := list(); err == nil || !strings.Contains(err.Error(), "refused the token") || !strings.Contains(err.Error(), "401") {
		t.Fatalf("a revoked token: %v, want 401", err)
	}
	if r := e.run("serve", "token", "remove", "host-1", "--server-dir", s.dir); r.code != exitFailure || !strings.Contains(r.stderr, "no token") {
		t.Fatalf("second remove: exit %d, %s", r.code, r.stderr)
	}
	if r := e.must("serve", "token", "list", "--server-dir", s.dir); strings.TrimSpace(r.stdout) != "host-2" {
		t.Fatalf("token list after remove: %q", r.stdout)
	}
}

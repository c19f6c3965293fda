package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/pack"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/remote"
	"github.com/kalaja/kalaja/internal/testtree"
)

// TestWriteOnlyHostStealsNothing is the attack of a thief who holds
// everything a write-only host holds: its key's password, its server
// token and its state directory (ledger pin and parent cache). Every
// command of the client, and every raw object fetched through the server
// with the token (decrypted with the host's keys wherever they open it),
// must yield no file content, file name or tree of any snapshot, the
// host's own included: a search for unique markers in names and content
// finds nothing in anything printed, written or fetched. The host's
// backups are incremental, and the recovery key restores them byte for
// byte.
func TestWriteOnlyHostStealsNothing(t *testing.T) {
	s := startServer(t)
	_, opTokenFile := s.addToken(t, "recovery")
	hostToken, hostTokenFile := s.addToken(t, "host-1")

	// The operator, with the full key (the recovery key), makes the
	// repository and the host's write-only key.
	op := s.client(t, opTokenFile)
	op.vars = append(op.vars, "KALAJA_PASSWORD=recovery password")
	op.must("init")
	pwFile := filepath.Join(t.TempDir(), "host-password")
	must(t, os.WriteFile(pwFile, []byte("host password\n"), 0o600))
	if r := op.must("key", "add", "--write-only", "--host", "host-1", "--new-password-file", pwFile); !strings.Contains(r.stdout, "write-only") {
		t.Fatalf("key add --write-only printed %q", r.stdout)
	}

	// The host backs up two trees with markers in names and content, and
	// one of them again after a change.
	forms := map[string]string{}
	mk := func(what string) string {
		m := marker()
		forms[m] = what
		forms[base64.StdEncoding.EncodeToString([]byte(m))] = what + " (base64)"
		return m
	}
	host := s.client(t, hostTokenFile)
	host.vars = append(host.vars, "KALAJA_PASSWORD=host password")
	stateDir := filepath.Join(t.TempDir(), "host-state")
	host.vars = append(host.vars, "KALAJA_STATE_DIR="+stateDir)
	dir := t.TempDir()
	src := []string{filepath.Join(dir, "a"), filepath.Join(dir, "b")}
	for i, p := range src {
		generate(t, p, testtree.Options{Seed: int64(70 + i), Files: 40, MaxFileSize: 256 << 10})
		sub := filepath.Join(p, "dir-"+mk("directory name"))
		must(t, os.Mkdir(sub, 0o755))
		must(t, os.WriteFile(filepath.Join(sub, mk("file name")+".txt"), []byte(strings.Repeat(mk("content")+" text\n", 2000)), 0o644))
		must(t, os.WriteFile(filepath.Join(p, "small"), []byte(mk("small content")), 0o644))
	}
	a1 := host.backup(src[0])
	b1 := host.backup(src[1])
	added := mk("added file name")
	must(t, os.WriteFile(filepath.Join(src[0], added), []byte(mk("added content")), 0o644))
	r := host.must("backup", src[0])
	if !strings.Contains(r.stdout, "1 new, 0 changed") || strings.Contains(r.stdout, ", 0 unmodified") {
		t.Errorf("the host's second backup was not incremental:\n%s", r.stdout)
	}
	a2 := strings.Fields(r.stdout[strings.Index(r.stdout, "snapshot "):])[1]

	// Every command, as the thief runs it.
	out := t.TempDir()
	exportFile := filepath.Join(out, "export.json")
	cmds := []struct {
		args []string
		code int
	}{
		{[]string{"snapshots"}, exitWriteOnly},
		{[]string{"snapshots", "--json"}, exitWriteOnly},
		{[]string{"ls", "latest"}, exitWriteOnly},
		{[]string{"ls", a1}, exitWriteOnly},
		{[]string{"ls", "--json", a2}, exitWriteOnly},
		{[]string{"diff", a1, a2}, exitWriteOnly},
		{[]string{"restore", a1, "--target", filepath.Join(out, "restore")}, exitWriteOnly},
		{[]string{"restore", "latest", "--target", filepath.Join(out, "restore")}, exitWriteOnly},
		{[]string{"recover", src[0], "--target", filepath.Join(out, "recover")}, exitWriteOnly},
		{[]string{"watch", "--heal", src[0]}, exitWriteOnly},
		{[]string{"check"}, exitWriteOnly},
		{[]string{"check", "--read-data"}, exitWriteOnly},
		{[]string{"forget", "--keep-last", "1", "--dry-run"}, exitWriteOnly},
		{[]string{"prune", "--dry-run"}, exitWriteOnly},
		{[]string{"ledger", "proof", a1}, exitWriteOnly},
		{[]string{"ledger", "show", "--all"}, exitOK},
		{[]string{"ledger", "show", "--json", "--all"}, exitOK},
		{[]string{"ledger", "export", "--all", "-o", exportFile}, exitOK},
		{[]string{"ledger", "key"}, exitOK},
		{[]string{"verify", "--read-data"}, exitOK},
		{[]string{"key", "list"}, exitOK},
		{[]string{"key", "list", "--json"}, exitOK},
		{[]string{"backup", "--json", src[1]}, exitOK},
	}
	var printed strings.Builder
	for _, c := range cmds {
		r := host.run(c.args...)
		if r.code != c.code {
			t.Errorf("kalaja %v: exit %d, want %d\n%s%s", c.args, r.code, c.code, r.stdout, r.stderr)
		}
		if c.code == exitWriteOnly && (!strings.Contains(r.stderr, "write-only") || !strings.Contains(r.stderr, "recovery key")) {
			t.Errorf("kalaja %v: the refusal names neither the missing right nor the remedy: %s", c.args, r.stderr)
		}
		printed.WriteString(r.stdout + r.stderr)
		if testing.Verbose() && c.code == exitWriteOnly {
			t.Logf("kalaja %s: %s", c.args[0], strings.TrimSpace(r.stderr))
		}
	}
	list := host.must("key", "list").stdout
	if !strings.Contains(list, "write-only") || !strings.Contains(list, "full") {
		t.Errorf("key list does not show the rights:\n%s", list)
	}
	for form, what := range forms {
		if strings.Contains(printed.String(), form) {
			t.Errorf("the thief's commands printed %s", what)
		}
	}
	if ents, _ := os.ReadDir(out); len(ents) != 1 {
		t.Errorf("the thief's commands wrote %d files, want the export only", len(ents))
	}
	export, err := os.ReadFile(exportFile)
	must(t, err)
	for form, what := range forms {
		if bytes.Contains(export, []byte(form)) {
			t.Errorf("the ledger export holds %s", what)
		}
	}
	var state []string
	must(t, filepath.WalkDir(stateDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			state = append(state, strings.TrimPrefix(p, stateDir))
			b, err := os.ReadFile(p)
			must(t, err)
			for form, what := range forms {
				if bytes.Contains(b, []byte(form)) {
					t.Errorf("the host's state file %s holds %s", p, what)
				}
			}
		}
		return err
	}))
	if !strings.Contains(strings.Join(state, " "), "/parents/") {
		t.Errorf("no parent cache among the host's state files %q", state)
	}

	// Every raw object through the server with the host's token, opened
	// with the host's keys wherever they open it.
	ctx := t.Context()
	pin, err := os.ReadFile(s.cert)
	must(t, err)
	rs, err := remote.New(s.url, remote.Options{Token: hostToken, PinnedCert: pin})
	must(t, err)
	wo, err := repo.Open(ctx, rs, []byte("host password"))
	must(t, err)
	keys := wo.Keys()
	if keys.CanRead() {
		t.Fatal("the host's key reads")
	}
	var fetched bytes.Buffer
	objects := 0
	for _, typ := range store.Listable {
		var names []string
		must(t, rs.List(ctx, typ, func(fi store.FileInfo) error { names = append(names, fi.Name); return nil }))
		for _, name := range names {
			b, err := rs.Load(ctx, store.Handle{Type: typ, Name: name})
			must(t, err)
			objects++
			fetched.Write(b)
			switch typ {
			case store.Index:
				plain, err := keys.OpenObject("index", b)
				must(t, err)
				fetched.Write(plain)
			case store.Snapshots:
				if _, err := keys.OpenObject("snapshot", b); !errors.Is(err, crypto.ErrWriteOnly) {
					t.Errorf("snapshot %s: the host's key: %v", name[:8], err)
				}
			case store.Packs:
				if _, err := pack.ReadHeader(keys, bytes.NewReader(b), int64(len(b))); !errors.Is(err, crypto.ErrWriteOnly) {
					t.Errorf("pack %s: the host's key: %v", name[:8], err)
				}
			case store.LedgerKeys:
				if name == "signer" {
					if _, err := keys.OpenObject("ledger-signer", b); !errors.Is(err, crypto.ErrWriteOnly) {
						t.Errorf("sealed ledger signer: the host's key: %v", err)
					}
				}
			}
		}
	}
	b, err := rs.Load(ctx, store.Handle{Type: store.Config})
	must(t, err)
	fetched.Write(b)
	if objects < 10 {
		t.Fatalf("only %d objects fetched", objects)
	}
	for form, what := range forms {
		if bytes.Contains(fetched.Bytes(), []byte(form)) {
			t.Errorf("the objects fetched with the host's token hold %s", what)
		}
	}
	// The search would find them: the recovery key lists the names.
	if ls := op.must("ls", a2).stdout; !strings.Contains(ls, added) {
		t.Fatalf("the recovery key's ls does not show %s:\n%s", added, ls)
	}

	// The recovery key restores every snapshot the host made, byte for byte.
	for _, c := range []struct{ snap, src string }{{a2, src[0]}, {b1, src[1]}} {
		target := filepath.Join(t.TempDir(), "restore")
		must(t, os.Mkdir(target, 0o700))
		t.Cleanup(func() { testtree.MakeRemovable(target) })
		op.must("restore", c.snap, "--target", target)
		assertSameTree(t, c.src, filepath.Join(target, c.src))
	}
	target := filepath.Join(t.TempDir(), "restore")
	must(t, os.Mkdir(target, 0o700))
	t.Cleanup(func() { testtree.MakeRemovable(target) })
	op.must("restore", a1, "--target", target)
	for _, d := range testtree.Compare(src[0], filepath.Join(target, src[0]), testtree.CompareOptions{Sparse: true}) {
		if d.Path == added && d.What == "missing" || d.Path == "" && d.What == "mtime" {
			continue // what the second backup added
		}
		t.Error(d)
	}
	op.must("check", "--read-data")
	op.must("verify", "--read-data")
}

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/kalaja/kalaja/internal/admin"
	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/local"
	"github.com/kalaja/kalaja/internal/store/remote"
)

// forgetOutput is forget --json.
type forgetOutput struct {
	Snapshots []struct {
		ID      string   `json:"id"`
		Keep    bool     `json:"keep"`
		Reasons []string `json:"reasons"`
	} `json:"snapshots"`
	Retained []keptLine `json:"retained"`
}

func parseForget(t *testing.T, r result) forgetOutput {
	t.Helper()
	var out forgetOutput
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("forget --json printed %q: %v", r.stdout, err)
	}
	return out
}

// decisions maps snapshot IDs to keep (true) or remove (false).
func (f forgetOutput) decisions() map[string]bool {
	m := map[string]bool{}
	for _, s := range f.Snapshots {
		m[s.ID] = s.Keep
	}
	return m
}

// history backs up src n times, changing it each time, and returns the
// snapshot IDs with a copy of what each one saved.
func history(t *testing.T, e *testEnv, src string, n int) (ids, copies []string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Join(src, "log"), 0o755))
	writeFile(t, filepath.Join(src, "stable.txt"), []byte(strings.Repeat("kept in every snapshot\n", 5000)))
	for i := range n {
		writeFile(t, filepath.Join(src, "round.bin"), randomBytes(600<<10))
		writeFile(t, filepath.Join(src, "log", fmt.Sprintf("%03d", i)), randomBytes(50<<10))
		ids = append(ids, e.backup(src))
		cp := filepath.Join(t.TempDir(), "copy")
		copyTree(t, src, cp)
		copies = append(copies, cp)
	}
	return ids, copies
}

// restoresAs restores snapshot id and compares what it saved of src with
// the copy taken when it was made.
func restoresAs(t *testing.T, e *testEnv, id, src, copy string) {
	t.Helper()
	target := t.TempDir()
	e.must("restore", id, "--target", target)
	assertSameTree(t, copy, filepath.Join(target, src))
}

// adminKeys makes an administrator's key pair and returns the secret
// key's file and the public key.
func adminKeys(t *testing.T) (secret, public string) {
	t.Helper()
	secret = filepath.Join(t.TempDir(), "admin.key")
	public = strings.TrimSpace(envAt(t, "").must("admin", "keygen", "--name", "kalaja-admin", "--out", secret).stdout)
	return secret, public
}

func TestForgetPruneLocal(t *testing.T) {
	e := newEnv(t)
	e.must("init")
	src := filepath.Join(t.TempDir(), "src")
	ids, copies := history(t, e, src, 3)
	secret, public := adminKeys(t)

	for _, args := range [][]string{{"forget"}, {"forget", ids[0], "--keep-last", "1"}, {"prune", "--max-unused", "150%"},
		{"forget", "--keep-last", "1"}} {
		if r := e.run(args...); r.code != 2 {
			t.Errorf("kalaja %v: exit %d, want 2 (usage)\n%s", args, r.code, r.stderr)
		}
	}

	dry := parseForget(t, e.must("forget", "--keep-last", "1", "--dry-run", "--json"))
	if want := map[string]bool{ids[0]: false, ids[1]: false, ids[2]: true}; !mapsEqual(dry.decisions(), want) {
		t.Fatalf("forget --keep-last 1 decided %v, want %v", dry.decisions(), want)
	}
	packs := countFiles(t, filepath.Join(e.repo, "data"))
	if n := countFiles(t, filepath.Join(e.repo, "snapshots")); n != 3 {
		t.Fatalf("a dry run left %d snapshots, want 3", n)
	}

	e.must("forget", "--keep-last", "1", "--prune", "--max-unused", "0", "--grace", "0s", "--admin-key", secret)
	if n := countFiles(t, filepath.Join(e.repo, "snapshots")); n != 1 {
		t.Errorf("%d snapshots after forget, want 1", n)
	}
	if after := countFiles(t, filepath.Join(e.repo, "data")); after >= packs {
		t.Errorf("%d packs after prune, %d before: nothing was reclaimed", after, packs)
	}
	e.must("check", "--read-data")
	// Without the administrator's public key verify cannot tell the
	// removals from a thief's: each is unauthorised, its object missing.
	if r := e.run("verify"); r.code != 13 || !strings.Contains(r.stdout, "unauthorised-removal") {
		t.Errorf("verify without the administrator's key: exit %d, want 13 naming unauthorised-removal\n%s%s", r.code, r.stdout, r.stderr)
	}
	var v struct {
		Removed  int `json:"removed"`
		Problems []any
	}
	if err := json.Unmarshal([]byte(e.must("verify", "--json", "--admin-pub", public).stdout), &v); err != nil || v.Removed == 0 || len(v.Problems) != 0 {
		t.Errorf("verify after prune: %+v, %v; want removed objects and no problem", v, err)
	}
	restoresAs(t, e, ids[2], src, copies[2])

	// A backup after prune stores what prune deleted again if it needs it.
	writeFile(t, filepath.Join(src, "round.bin"), randomBytes(100<<10))
	e.backup(src)
	e.must("check", "--read-data")
	e.must("verify")
}

// TestForgetFlood: a host's credential (with the repository password) is
// stolen, and the thief floods the server with snapshots that claim future
// dates, hoping that the administrator's next forget keeps those and drops
// the real ones (what restic's append-only mode allows). Forget reads the
// server's stamps: every real snapshot the policy covers stays, the fakes
// are named suspect, and deleting them waits for the server's retention.
func TestForgetFlood(t *testing.T) {
	keyDir := t.TempDir()
	secret := filepath.Join(keyDir, "admin.key")
	vkey := strings.TrimSpace(envAt(t, "").must("admin", "keygen", "--name", "kalaja-admin", "--out", secret).stdout)
	pub := filepath.Join(keyDir, "admin.pub")
	must(t, os.WriteFile(pub, []byte(vkey+"\n"), 0o644))
	s := startServer(t, "--admin-key", pub, "--retention", "48h")
	token, tokenFile := s.addToken(t, "db-01")
	e := s.client(t, tokenFile)
	e.must("init")
	src := filepath.Join(t.TempDir(), "src")
	ids, copies := history(t, e, src, 5)

	// The real snapshots were made a day apart, the newest an hour ago:
	// the server's stamps say so (its files' times are its clock).
	now := time.Now()
	must(t, filepath.Walk(s.repo, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			err = os.Chtimes(p, now.AddDate(0, 0, -6), now.AddDate(0, 0, -6))
		}
		return err
	}))
	for i, id := range ids {
		at := now.Add(-time.Hour).AddDate(0, 0, i-len(ids)+1)
		must(t, os.Chtimes(filepath.Join(s.repo, "snapshots", id), at, at))
	}

	pin, err := os.ReadFile(s.cert)
	must(t, err)
	rs, err := remote.New(s.url, remote.Options{Token: token, PinnedCert: pin})
	must(t, err)
	fakes := flood(t, rs, ids[len(ids)-1], 30)

	// The administrator's forget, from a machine with its own token and
	// the administrator's key: keep one a day for three days. (The real
	// snapshots claim the time they were really made, minutes ago, ahead
	// of the stamps this test gave them by up to five days: --max-skew
	// allows for that; the thief's year is beyond it.)
	_, adminToken := s.addToken(t, "admin-ws")
	a := s.client(t, adminToken)
	out := parseForget(t, a.must("forget", "--keep-daily", "3", "--max-skew", "168h", "--admin-key", secret, "--json"))
	got := out.decisions()
	for i, id := range ids {
		if want := i >= len(ids)-3; got[id] != want {
			t.Errorf("real snapshot %d (%s): keep %v, want %v", i, id[:8], got[id], want)
		}
	}
	for _, f := range out.Snapshots {
		if slices.Contains(fakes, f.ID) && (!f.Keep || !strings.HasPrefix(strings.Join(f.Reasons, ","), "suspect")) {
			t.Errorf("fake snapshot %s: keep %v, reasons %q; want kept as suspect", f.ID[:8], f.Keep, f.Reasons)
		}
	}
	if len(out.Retained) != 0 {
		t.Errorf("the server retained %v: the forgotten snapshots are older than its retention", out.Retained)
	}
	for i := len(ids) - 3; i < len(ids); i++ {
		restoresAs(t, a, ids[i], src, copies[i])
	}

	// Forgetting the fakes by ID is signed and accepted, but the server's
	// retention (48 h) keeps what it stamped minutes ago.
	out = parseForget(t, a.must(append([]string{"forget", "--admin-key", secret, "--json"}, fakes...)...))
	if len(out.Retained) != len(fakes) {
		t.Errorf("forget of %d fresh snapshots: %d retained, want all", len(fakes), len(out.Retained))
	}
	// Without the administrator's key there is no deleting at all.
	if r := e.run("forget", fakes[0]); r.code != 2 || !strings.Contains(r.stderr, "--admin-key") {
		t.Errorf("forget without the administrator's key: exit %d, %s", r.code, r.stderr)
	}

	// Prune through the server: the old snapshots' data goes, the rest
	// restores and checks.
	a.must("prune", "--admin-key", secret, "--max-unused", "0", "--grace", "1h")
	a.must("check", "--read-data")
	for i := len(ids) - 3; i < len(ids); i++ {
		restoresAs(t, a, ids[i], src, copies[i])
	}
	// verify names the thief's snapshots: nobody logged them.
	rv := a.run("verify")
	if rv.code == 0 || !strings.Contains(rv.stdout+rv.stderr, "unlogged-snapshot") {
		t.Errorf("verify after the flood: exit %d\n%s%s", rv.code, rv.stdout, rv.stderr)
	}
}

// flood is the thief's attack: it stores n copies of snapshot id that
// claim each of n days a year from now, and returns their IDs.
func flood(t *testing.T, st store.Store, id string, n int) []string {
	t.Helper()
	r, err := repo.Open(t.Context(), st, []byte("test password"))
	must(t, err)
	newest, err := blob.ParseID(id)
	must(t, err)
	var fakes []string
	for d := range n {
		sn, err := r.LoadSnapshot(t.Context(), newest)
		must(t, err)
		sn.Time = time.Now().AddDate(1, 0, d)
		fake, err := r.SaveSnapshot(t.Context(), sn)
		must(t, err)
		fakes = append(fakes, fake.String())
	}
	return fakes
}

// TestForgetFloodS3 is TestForgetFlood on a locked S3 bucket, where the
// thief holds the host's S3 credential and the administrator's forget uses
// one allowed to delete versions (the test server's root): the flood is
// suspect, the real snapshots the policy covers stay, and what Object Lock
// retains is reported, not deleted.
func TestForgetFloodS3(t *testing.T) {
	base, s3admin := s3Server(t)
	bucket := s3Bucket(t, s3admin, true)
	location := base + "/" + bucket + "/db-01?retention=1h"
	e := envAt(t, location)
	e.must("init")
	src := filepath.Join(t.TempDir(), "src")
	ids, copies := history(t, e, src, 3)
	st, err := openS3(t.Context(), location)
	must(t, err)
	fakes := flood(t, st, ids[len(ids)-1], 10)

	secret, _ := adminKeys(t)
	out := parseForget(t, e.must("forget", "--keep-last", "2", "--json", "--admin-key", secret))
	got := out.decisions()
	for i, id := range ids {
		if want := i >= 1; got[id] != want {
			t.Errorf("real snapshot %d (%s): keep %v, want %v", i, id[:8], got[id], want)
		}
	}
	for _, f := range fakes {
		if !got[f] {
			t.Errorf("fake snapshot %s was not kept as suspect", f[:8])
		}
	}
	// The one real snapshot outside the policy is under Object Lock for an
	// hour: the bucket refuses, forget reports it.
	if len(out.Retained) != 1 || out.Retained[0].Object != "snapshots/"+ids[0] {
		t.Errorf("retained %v, want snapshots/%s", out.Retained, ids[0][:8])
	}
	// Prune with a credential that may delete: the lock keeps every old
	// pack and index file for its hour, and prune says so.
	var pr pruneReport
	must(t, json.Unmarshal([]byte(e.must("prune", "--grace", "0s", "--max-unused", "0", "--json", "--admin-key", secret).stdout), &pr))
	if pr.Removed != 0 || len(pr.Retained) == 0 {
		t.Errorf("prune under Object Lock: removed %d, retained %d; want all retained", pr.Removed, len(pr.Retained))
	}
	for i := 1; i < len(ids); i++ {
		restoresAs(t, e, ids[i], src, copies[i])
	}
	e.must("check", "--read-data")
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	must(t, filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n++
		}
		return err
	}))
	return n
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestForgetOwnerClaim: a host's token (web-07) is stolen, and the thief
// stores snapshots that claim the victim's hostname and paths (copies of
// the victim's newest, dated now), hoping that the administrator's
// forget --keep-last 1 keeps one of those in the victim's group and drops
// the victim's real ones, or keeps the thief's junk under the victim's
// policy. The server recorded which token stored each snapshot, and
// forget groups by that: the victim's newest stays, the thief's copies
// are one group of their own.
func TestForgetOwnerClaim(t *testing.T) {
	secret, public := adminKeys(t)
	pub := filepath.Join(t.TempDir(), "admin.pub")
	must(t, os.WriteFile(pub, []byte(public+"\n"), 0o644))
	s := startServer(t, "--admin-key", pub, "--retention", "1s")
	_, victimToken := s.addToken(t, "db-01")
	e := s.client(t, victimToken)
	e.must("init")
	src := filepath.Join(t.TempDir(), "src")
	ids, copies := history(t, e, src, 3)

	thiefToken, _ := s.addToken(t, "web-07")
	pin, err := os.ReadFile(s.cert)
	must(t, err)
	rs, err := remote.New(s.url, remote.Options{Token: thiefToken, PinnedCert: pin})
	must(t, err)
	r, err := repo.Open(t.Context(), rs, []byte("test password"))
	must(t, err)
	newest, err := blob.ParseID(ids[len(ids)-1])
	must(t, err)
	var fakes []string
	for i := range 3 {
		sn, err := r.LoadSnapshot(t.Context(), newest)
		must(t, err)
		sn.Time = time.Now().Add(time.Duration(i) * time.Second)
		id, err := r.SaveSnapshot(t.Context(), sn)
		must(t, err)
		fakes = append(fakes, id.String())
	}

	_, adminToken := s.addToken(t, "admin-ws")
	a := s.client(t, adminToken)
	out := parseForget(t, a.must("forget", "--keep-last", "1", "--admin-key", secret, "--json", "--dry-run"))
	got := out.decisions()
	for i, id := range ids {
		if want := i == len(ids)-1; got[id] != want {
			t.Errorf("victim's snapshot %d (%s): keep %v, want %v", i, id[:8], got[id], want)
		}
	}
	for i, id := range fakes {
		if want := i == len(fakes)-1; got[id] != want {
			t.Errorf("thief's snapshot %d (%s): keep %v, want %v (web-07's own group)", i, id[:8], got[id], want)
		}
	}
	// The victim's policy covers the victim's snapshots only.
	out = parseForget(t, a.must("forget", "--keep-last", "1", "--host", "db-01", "--admin-key", secret, "--json"))
	if len(out.Snapshots) != len(ids) {
		t.Errorf("forget --host db-01 decided on %d snapshots, want the victim's %d", len(out.Snapshots), len(ids))
	}
	restoresAs(t, a, ids[len(ids)-1], src, copies[len(ids)-1])
}

// TestVerifyUnauthorisedRemoval: a host that holds the repository key
// (and so the log key) and storage access logs the removal of a pack,
// bound to a request of its own signed with a key of the administrator's
// name, and deletes the pack. verify, with the real administrator's key
// pinned, names the removal and the missing pack, and exits 13.
func TestVerifyUnauthorisedRemoval(t *testing.T) {
	e := newEnv(t)
	e.must("init")
	src := filepath.Join(t.TempDir(), "src")
	history(t, e, src, 1)
	_, public := adminKeys(t)
	e.must("verify", "--admin-pub", public)

	ctx := t.Context()
	st, err := local.Open(e.repo)
	must(t, err)
	r, err := repo.Open(ctx, st, []byte("test password"))
	must(t, err)
	lg, err := ledger.Open(ctx, st, r.Config().ID, r.Keys())
	must(t, err)
	var victim store.FileInfo
	must(t, st.List(ctx, store.Packs, func(fi store.FileInfo) error { victim = fi; return nil }))
	h := store.Handle{Type: store.Packs, Name: victim.Name}
	forger, _ := adminKeys(t) // the same name, another key
	b, err := os.ReadFile(forger)
	must(t, err)
	signer, err := note.NewSigner(strings.TrimSpace(string(b)))
	must(t, err)
	msg, err := admin.Request{Server: r.Config().ID.String()[:32], Seq: 1, Expires: time.Now().Add(time.Hour), Delete: []store.Handle{h}}.Sign(signer)
	must(t, err)
	auth, err := lg.SaveRequest(ctx, msg)
	must(t, err)
	id, err := blob.ParseID(victim.Name)
	must(t, err)
	if _, _, err := lg.Append(ctx, []ledger.Record{{Kind: ledger.KindPackRemoved, ID: id, Size: victim.Size, Time: time.Now(), Host: "thief", Auth: auth}}, ledger.Checkpoint{}); err != nil {
		t.Fatal(err)
	}
	must(t, st.Remove(ctx, h))

	rv := e.run("verify")
	if rv.code != 13 || !strings.Contains(rv.stdout, "unauthorised-removal "+h.String()) || !strings.Contains(rv.stdout, "missing-object "+h.String()) {
		t.Fatalf("verify after an unauthorised removal: exit %d\n%s%s", rv.code, rv.stdout, rv.stderr)
	}
}

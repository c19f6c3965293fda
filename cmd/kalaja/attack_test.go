package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"golang.org/x/mod/sumdb/note"

	"github.com/kalaja/kalaja/internal/checker"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/testtree"
)

// Outcomes of an attack.
const (
	refused  = "refused"  // the request failed; code is the HTTP status or S3 error code
	detected = "detected" // verify or check --read-data exits 1 naming the planted object; code is what named it
	ignored  = "ignored"  // S3 took a new version or delete marker, which the store never reads (design 14)
)

// outcome is what became of one attack.
type outcome struct {
	kind string
	code string // refused: "405" or "InvalidRequest"; detected: "verify signature", "check"
	msg  string // the full answer, for the log
}

func (o outcome) String() string { return fmt.Sprintf("%s %s (%s)", o.kind, o.code, o.msg) }

// attack is one attack on one backend and what it must come to.
type attack struct {
	run  func(t *testing.T, v *victim) outcome
	want outcome // kind and code are compared
}

// victim is a repository holding two acknowledged snapshots, as the
// attacker (a host, with its own credential) sees it.
type victim struct {
	env   *testEnv  // the host's kalaja
	src   [2]string // the trees backed up
	snaps [2]string // their snapshots

	// server
	srv   *served
	token string
	hc    *http.Client

	// s3
	s3     *minio.Client
	bucket string
	prefix string // key prefix of the repository, "host-1/"
}

// TestAttackStolenCredential runs issue 4's attack suite (acceptance item
// 2) with the host's own credential against a repository behind kalaja
// serve and one in an S3 bucket with Object Lock COMPLIANCE: every attack
// must be refused, or detected by verify or check --read-data, or (S3
// only) leave a version or delete marker the store never reads; and after
// all of them both acknowledged snapshots restore byte-identical.
func TestAttackStolenCredential(t *testing.T) {
	for _, backend := range []string{"server", "s3"} {
		t.Run(backend, func(t *testing.T) {
			var v *victim
			if backend == "server" {
				v = serverVictim(t)
			} else {
				v = s3Victim(t)
			}
			var planted []string // objects a detected attack left behind
			for _, a := range attacks {
				t.Run(a.name, func(t *testing.T) {
					at := a.server
					if backend == "s3" {
						at = a.s3
					}
					if at == nil {
						t.Skip(a.na[backend])
					}
					before := v.fingerprint(t)
					got := at.run(t, v)
					t.Logf("%s: %s", a.name, got)
					switch {
					case got.kind != refused && got.kind != detected && got.kind != ignored:
						t.Errorf("HOLE: %s on %s is neither refused nor detected: %s", a.name, backend, got.msg)
					case got.kind != at.want.kind || got.code != at.want.code:
						t.Errorf("%s on %s: got %s, want %s %s", a.name, backend, got, at.want.kind, at.want.code)
					}
					if got.kind == detected {
						planted = append(planted, got.msg)
					}
					after := v.fingerprint(t)
					for key, sum := range before {
						if after[key] != sum {
							t.Errorf("%s changed or removed %s as the store reads it", a.name, key)
						}
					}
				})
			}
			t.Run("afterwards", func(t *testing.T) { v.intact(t, planted) })
		})
	}
}

// attacks is the suite. Rows run in order on one repository; the quota
// row comes last, as it leaves the host no room to write.
var attacks = []struct {
	name       string
	server, s3 *attack
	na         map[string]string // why a backend has no such attack
}{
	{name: "delete pack",
		server: &attack{func(t *testing.T, v *victim) outcome { return v.request(t, "DELETE", "data/"+v.first(t, "data"), nil) }, outcome{kind: refused, code: "405"}},
		s3:     &attack{func(t *testing.T, v *victim) outcome { return v.remove(t, "data", false, false) }, outcome{kind: ignored}}},
	{name: "delete pack version",
		s3: &attack{func(t *testing.T, v *victim) outcome { return v.remove(t, "data", true, false) }, outcome{kind: refused, code: "InvalidRequest"}},
		na: map[string]string{"server": "the server API has no versions: DELETE is the delete pack row"}},
	{name: "delete pack version, governance bypass",
		s3: &attack{func(t *testing.T, v *victim) outcome { return v.remove(t, "data", true, true) }, outcome{kind: refused, code: "InvalidRequest"}},
		na: map[string]string{"server": "the server API has no versions or governance mode"}},
	{name: "overwrite pack",
		server: &attack{func(t *testing.T, v *victim) outcome { return v.overwrite(t, "data") }, outcome{kind: refused, code: "409"}},
		s3:     &attack{func(t *testing.T, v *victim) outcome { return v.overwrite(t, "data") }, outcome{kind: ignored}}},
	{name: "delete snapshot",
		server: &attack{func(t *testing.T, v *victim) outcome {
			return v.request(t, "DELETE", "snapshots/"+v.snaps[0], nil)
		}, outcome{kind: refused, code: "405"}},
		s3: &attack{func(t *testing.T, v *victim) outcome { return v.remove(t, "snapshots", false, false) }, outcome{kind: ignored}}},
	{name: "delete snapshot version",
		s3: &attack{func(t *testing.T, v *victim) outcome { return v.remove(t, "snapshots", true, false) }, outcome{kind: refused, code: "InvalidRequest"}},
		na: map[string]string{"server": "the server API has no versions: DELETE is the delete snapshot row"}},
	{name: "overwrite snapshot",
		server: &attack{func(t *testing.T, v *victim) outcome { return v.overwrite(t, "snapshots") }, outcome{kind: refused, code: "409"}},
		s3:     &attack{func(t *testing.T, v *victim) outcome { return v.overwrite(t, "snapshots") }, outcome{kind: ignored}}},
	{name: "delete index",
		server: &attack{func(t *testing.T, v *victim) outcome {
			return v.request(t, "DELETE", "index/"+v.first(t, "index"), nil)
		}, outcome{kind: refused, code: "405"}},
		s3: &attack{func(t *testing.T, v *victim) outcome { return v.remove(t, "index", false, false) }, outcome{kind: ignored}}},
	{name: "delete index version, governance bypass",
		s3: &attack{func(t *testing.T, v *victim) outcome { return v.remove(t, "index", true, true) }, outcome{kind: refused, code: "InvalidRequest"}},
		na: map[string]string{"server": "the server API has no versions or governance mode"}},
	{name: "overwrite index",
		server: &attack{func(t *testing.T, v *victim) outcome { return v.overwrite(t, "index") }, outcome{kind: refused, code: "409"}},
		s3:     &attack{func(t *testing.T, v *victim) outcome { return v.overwrite(t, "index") }, outcome{kind: ignored}}},
	{name: "overwrite config",
		server: &attack{func(t *testing.T, v *victim) outcome { return v.overwrite(t, "config") }, outcome{kind: refused, code: "409"}},
		s3:     &attack{func(t *testing.T, v *victim) outcome { return v.overwrite(t, "config") }, outcome{kind: ignored}}},
	{name: "pack under a wrong name",
		server: &attack{func(t *testing.T, v *victim) outcome { return v.wrongPack(t) }, outcome{kind: refused, code: "422"}},
		s3:     &attack{func(t *testing.T, v *victim) outcome { return v.wrongPack(t) }, outcome{kind: detected, code: "check"}}},
	{name: "overwrite ledger checkpoint",
		server: &attack{func(t *testing.T, v *victim) outcome { return v.overwrite(t, "ledger/checkpoints") }, outcome{kind: refused, code: "409"}},
		s3:     &attack{func(t *testing.T, v *victim) outcome { return v.overwrite(t, "ledger/checkpoints") }, outcome{kind: ignored}}},
	{name: "overwrite ledger entries",
		server: &attack{func(t *testing.T, v *victim) outcome { return v.overwrite(t, "ledger/entries") }, outcome{kind: refused, code: "409"}},
		s3:     &attack{func(t *testing.T, v *victim) outcome { return v.overwrite(t, "ledger/entries") }, outcome{kind: ignored}}},
	{name: "overwrite ledger tile",
		server: &attack{func(t *testing.T, v *victim) outcome { return v.overwrite(t, "ledger/tiles") }, outcome{kind: refused, code: "409"}},
		s3:     &attack{func(t *testing.T, v *victim) outcome { return v.overwrite(t, "ledger/tiles") }, outcome{kind: ignored}}},
	{name: "overwrite ledger verifier key",
		server: &attack{func(t *testing.T, v *victim) outcome { return v.overwrite(t, "ledger/keys") }, outcome{kind: refused, code: "409"}},
		s3:     &attack{func(t *testing.T, v *victim) outcome { return v.overwrite(t, "ledger/keys") }, outcome{kind: ignored}}},
	{name: "delete ledger",
		server: &attack{func(t *testing.T, v *victim) outcome {
			return v.request(t, "DELETE", "ledger/checkpoints/"+v.first(t, "ledger/checkpoints"), nil)
		}, outcome{kind: refused, code: "405"}},
		s3: &attack{func(t *testing.T, v *victim) outcome { return v.hideLedger(t) }, outcome{kind: ignored}}},
	{name: "forge newer checkpoint",
		server: &attack{func(t *testing.T, v *victim) outcome { return v.forgeCheckpoint(t) }, outcome{kind: detected, code: "verify " + ledger.ProblemSignature}},
		s3:     &attack{func(t *testing.T, v *victim) outcome { return v.forgeCheckpoint(t) }, outcome{kind: detected, code: "verify " + ledger.ProblemSignature}}},
	{name: "shorten retention",
		s3: &attack{func(t *testing.T, v *victim) outcome { return v.shortenRetention(t) }, outcome{kind: refused, code: "InvalidRequest"}},
		na: map[string]string{"server": "the server has no retention: objects are only added and read (design 15)"}},
	{name: "remove lock configuration",
		s3: &attack{func(t *testing.T, v *victim) outcome { return v.removeLock(t) }, outcome{kind: refused, code: "InvalidRequest"}},
		na: map[string]string{"server": "the server has no lock to remove: append-only is its code, not a setting a host reaches"}},
	{name: "suspend versioning",
		s3: &attack{func(t *testing.T, v *victim) outcome { return v.suspendVersioning(t) }, outcome{kind: refused, code: "InvalidBucketState"}},
		na: map[string]string{"server": "the server has no versioning to suspend"}},
	{name: "exhaust the disk",
		server: &attack{func(t *testing.T, v *victim) outcome { return v.fill(t) }, outcome{kind: refused, code: "507"}},
		na:     map[string]string{"s3": "S3 has no per-host quota; bound a client's bytes with the provider's bucket quota (design 14)"}},
}

// attackQuota is the server's --quota-per-host: the two backups fit, the
// junk row reaches it in a few requests.
const attackQuota = 24 << 20

func serverVictim(t *testing.T) *victim {
	s := startServer(t, "--quota-per-host", strconv.Itoa(attackQuota))
	token, tokenFile := s.addToken(t, "host-1")
	v := &victim{env: s.client(t, tokenFile), srv: s, token: token, hc: s.https(t)}
	v.backup(t)
	return v
}

func s3Victim(t *testing.T) *victim {
	base, admin := s3Server(t)
	bucket := s3Bucket(t, admin, true)
	v := &victim{env: envAt(t, base+"/"+bucket+"/host-1?retention=1h&lock=compliance"), s3: admin, bucket: bucket, prefix: "host-1/"}
	v.backup(t)
	return v
}

// backup initialises the repository and backs up two trees.
func (v *victim) backup(t *testing.T) {
	v.env.must("init")
	dir := t.TempDir()
	for i := range v.src {
		v.src[i] = filepath.Join(dir, fmt.Sprintf("src%d", i))
		generate(t, v.src[i], testtree.Options{Seed: int64(40 + i), Files: 40, MaxFileSize: 256 << 10})
		v.snaps[i] = v.env.backup(v.src[i])
	}
	v.env.must("verify", "--read-data")
}

// intact checks what must hold after every attack: check --read-data
// passes, verify names nothing but the planted objects, and both snapshots
// restore byte-identical.
func (v *victim) intact(t *testing.T, planted []string) {
	// Backups go on after the attacks (a forged checkpoint does not stop
	// them), and adopt nothing planted.
	v.env.must("backup", v.src[0])
	c := v.env.run("check", "--read-data", "--json")
	var crep checker.Report
	if err := json.Unmarshal([]byte(c.stdout), &crep); err != nil {
		t.Fatalf("check --json: exit %d, %v\n%s", c.code, err, c.stderr)
	}
	for _, e := range crep.Errors {
		if !slices.ContainsFunc(planted, func(obj string) bool { return strings.Contains(e, shortObject(obj)) }) {
			t.Errorf("check --read-data after the attacks: %s (not an object an attack planted)", e)
		}
	}
	if len(crep.Damaged) > 0 || (c.code == exitOK) != (len(crep.Errors) == 0) {
		t.Errorf("check --read-data after the attacks: exit %d, damage %v\n%s", c.code, crep.Damaged, c.stderr)
	}
	rep, r := verifyReport(t, v.env)
	for _, p := range rep.Problems {
		if !slices.Contains(planted, p.Object) {
			t.Errorf("verify after the attacks: %s %s: %s (not an object an attack planted)", p.Kind, p.Object, p.Message)
		}
	}
	// A planted checkpoint is tampering (13); a planted snapshot or pack
	// that nothing logged is a problem an interrupted backup can leave too
	// (1).
	want := exitFailure
	if rep.Tampered() {
		want = exitTampered
	}
	if len(planted) > 0 && r.code != want {
		t.Errorf("verify after the attacks: exit %d, want %d for the planted %v", r.code, want, planted)
	}
	for i, snap := range v.snaps {
		out := filepath.Join(t.TempDir(), "out")
		must(t, os.Mkdir(out, 0o700))
		t.Cleanup(func() { testtree.MakeRemovable(out) })
		v.env.must("restore", snap, "--target", out)
		assertSameTree(t, v.src[i], filepath.Join(out, v.src[i]))
	}
}

// shortObject is how check names an object "type/name": by its name's
// first 8 characters.
func shortObject(obj string) string {
	_, name, _ := strings.Cut(obj, "/")
	return name[:min(8, len(name))]
}

// verifyReport runs verify --read-data --json.
func verifyReport(t *testing.T, e *testEnv) (ledger.Report, result) {
	t.Helper()
	r := e.run("verify", "--read-data", "--json")
	var rep ledger.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("verify --json: exit %d, %v\nstdout:\n%s\nstderr:\n%s", r.code, err, r.stdout, r.stderr)
	}
	return rep, r
}

// detect runs verify and check --read-data after an attack planted object
// ("type/name") and reports which of them names it with a non-zero exit.
func (v *victim) detect(t *testing.T, object string) outcome {
	t.Helper()
	rep, r := verifyReport(t, v.env)
	for _, p := range rep.Problems {
		if p.Object == object && r.code != exitOK {
			return outcome{kind: detected, code: "verify " + p.Kind, msg: object}
		}
	}
	c := v.env.run("check", "--read-data", "--json")
	var crep checker.Report
	if err := json.Unmarshal([]byte(c.stdout), &crep); err != nil {
		t.Fatalf("check --json: exit %d, %v\n%s%s", c.code, err, c.stdout, c.stderr)
	}
	name := object[strings.LastIndexByte(object, '/')+1:]
	short := name[:min(8, len(name))]
	for _, e := range crep.Errors {
		if strings.Contains(e, short) && c.code != exitOK {
			return outcome{kind: detected, code: "check", msg: object}
		}
	}
	return outcome{kind: "undetected", msg: fmt.Sprintf("%s: verify exit %d, problems %v; check --read-data exit %d, errors %q, notes %q",
		object, r.code, rep.Problems, c.code, crep.Errors, crep.Notes)}
}

// objects returns the names of the stored objects of kind ("data",
// "ledger/checkpoints", "config"), sorted.
func (v *victim) objects(t *testing.T, kind string) []string {
	t.Helper()
	var names []string
	if v.srv != nil {
		err := filepath.WalkDir(filepath.Join(v.srv.repo, kind), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				names = append(names, d.Name())
			}
			return err
		})
		must(t, err)
	} else {
		// As the store lists: every key with a version that is not a
		// delete marker.
		for obj := range v.s3.ListObjectsIter(t.Context(), v.bucket, minio.ListObjectsOptions{Prefix: v.prefix + kind, Recursive: true, WithVersions: true}) {
			must(t, obj.Err)
			if !obj.IsDeleteMarker {
				names = append(names, obj.Key[strings.LastIndexByte(obj.Key, '/')+1:])
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// first returns the name of the first object of kind.
func (v *victim) first(t *testing.T, kind string) string {
	t.Helper()
	names := v.objects(t, kind)
	if len(names) == 0 {
		t.Fatalf("the repository has no %s objects", kind)
	}
	return names[0]
}

// key is the S3 key or server path ("data/ab/abcd...") of an object.
func key(kind, name string) string {
	switch kind {
	case "config":
		return "config"
	case "data":
		return "data/" + name[:2] + "/" + name
	}
	return kind + "/" + name
}

// apiPath is the server API path of an object, below /v1/.
func apiPath(kind, name string) string {
	if kind == "config" {
		return "config"
	}
	return kind + "/" + name
}

// fingerprint returns the SHA-256 of every object as the store reads it:
// the file, or the first version that is not a delete marker.
func (v *victim) fingerprint(t *testing.T) map[string]string {
	t.Helper()
	sums := map[string]string{}
	if v.srv != nil {
		must(t, filepath.WalkDir(v.srv.repo, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(v.srv.repo, p)
			sums[rel] = fmt.Sprintf("%x", sha256.Sum256(b))
			return nil
		}))
		return sums
	}
	// Versions are listed newest first: the last one that is not a delete
	// marker is the object.
	for obj := range v.s3.ListObjectsIter(t.Context(), v.bucket, minio.ListObjectsOptions{Prefix: v.prefix, Recursive: true, WithVersions: true}) {
		must(t, obj.Err)
		if !obj.IsDeleteMarker {
			sums[obj.Key] = obj.VersionID + " " + obj.ETag
		}
	}
	return sums
}

// request sends a raw API request with the host's token and returns the
// answer as an outcome: refused with the status, or stored/read.
func (v *victim) request(t *testing.T, method, path string, body []byte) outcome {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, v.srv.url+"v1/"+path, bytes.NewReader(body))
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+v.token)
	resp, err := v.hc.Do(req)
	must(t, err)
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	o := outcome{code: strconv.Itoa(resp.StatusCode), msg: fmt.Sprintf("%s %s: %s %s", method, path, resp.Status, bytes.TrimSpace(msg))}
	if resp.StatusCode >= 400 {
		o.kind = refused
	} else {
		o.kind = "accepted"
	}
	return o
}

// s3Outcome turns the answer to an S3 request into an outcome.
func s3Outcome(what string, err error) outcome {
	if err == nil {
		return outcome{kind: "accepted", msg: what + ": accepted"}
	}
	return outcome{kind: refused, code: minio.ToErrorResponse(err).Code, msg: fmt.Sprintf("%s: %v", what, err)}
}

// versions returns the version IDs of an S3 key, newest first, and
// whether each is a delete marker.
func (v *victim) versions(t *testing.T, key string) (ids []string, markers []bool) {
	t.Helper()
	for obj := range v.s3.ListObjectsIter(t.Context(), v.bucket, minio.ListObjectsOptions{Prefix: key, WithVersions: true}) {
		must(t, obj.Err)
		if obj.Key == key {
			ids, markers = append(ids, obj.VersionID), append(markers, obj.IsDeleteMarker)
		}
	}
	return ids, markers
}

// remove deletes the first object of kind from S3: without a version ID
// (a delete marker), or its oldest version, with or without governance
// bypass.
func (v *victim) remove(t *testing.T, kind string, version, bypass bool) outcome {
	t.Helper()
	k := v.prefix + key(kind, v.first(t, kind))
	opts := minio.RemoveObjectOptions{GovernanceBypass: bypass}
	if version {
		ids, _ := v.versions(t, k)
		opts.VersionID = ids[len(ids)-1]
	}
	what := "RemoveObject " + k
	if version {
		what += " version " + opts.VersionID
	}
	if bypass {
		what += " with governance bypass"
	}
	o := s3Outcome(what, v.s3.RemoveObject(t.Context(), v.bucket, k, opts))
	if o.kind != "accepted" {
		return o
	}
	if _, markers := v.versions(t, k); !markers[0] {
		t.Fatalf("RemoveObject %s was accepted but added no delete marker", k)
	}
	o.kind, o.msg = ignored, o.msg+", a delete marker"
	return o
}

// overwrite writes other bytes over the first object of kind (the log's
// verifier key for "ledger/keys"): on the
// server a PUT, on S3 a PutObject without If-None-Match.
func (v *victim) overwrite(t *testing.T, kind string) outcome {
	t.Helper()
	name := v.first(t, kind)
	if kind == "ledger/keys" {
		name = "verifier"
	}
	junk := []byte("attacker's bytes for " + name)
	if v.srv != nil {
		return v.request(t, "PUT", apiPath(kind, name), junk)
	}
	k := v.prefix + key(kind, name)
	_, err := v.s3.PutObject(t.Context(), v.bucket, k, bytes.NewReader(junk), int64(len(junk)), minio.PutObjectOptions{})
	o := s3Outcome("PutObject "+k, err)
	if o.kind == "accepted" {
		o.kind, o.msg = ignored, o.msg+", a new version"
	}
	return o
}

// wrongPack stores a pack (a copy of a real one) under a name that is not
// the hash of its bytes.
func (v *victim) wrongPack(t *testing.T) outcome {
	t.Helper()
	real := v.first(t, "data")
	b := v.read(t, "data", real)
	name := fmt.Sprintf("%x", sha256.Sum256(randomBytes(32)))
	if v.srv != nil {
		return v.request(t, "PUT", "data/"+name, b)
	}
	k := v.prefix + key("data", name)
	_, err := v.s3.PutObject(t.Context(), v.bucket, k, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{})
	if o := s3Outcome("PutObject "+k, err); o.kind != "accepted" {
		return o
	}
	// The next backup that looks for orphans (due now: a day since the last
	// look, say) must not adopt it as one of an interrupted backup: it does
	// not hash to its name.
	v.env.orphanScanDue()
	if r := v.env.run("backup", v.src[0]); r.code != exitOK || !strings.Contains(r.stderr, "does not match its name") {
		t.Errorf("backup after a pack was planted under a wrong name: exit %d\n%s", r.code, r.stderr)
	}
	return v.detect(t, "data/"+name)
}

// read returns the bytes of an object as the store reads them.
func (v *victim) read(t *testing.T, kind, name string) []byte {
	t.Helper()
	if v.srv != nil {
		b, err := os.ReadFile(filepath.Join(v.srv.repo, filepath.FromSlash(key(kind, name))))
		must(t, err)
		return b
	}
	k := v.prefix + key(kind, name)
	ids, _ := v.versions(t, k)
	obj, err := v.s3.GetObject(t.Context(), v.bucket, k, minio.GetObjectOptions{VersionID: ids[len(ids)-1]})
	must(t, err)
	defer obj.Close()
	b, err := io.ReadAll(obj)
	must(t, err)
	return b
}

// hideLedger puts a delete marker over every ledger object in S3.
func (v *victim) hideLedger(t *testing.T) outcome {
	t.Helper()
	n := 0
	for obj := range v.s3.ListObjectsIter(t.Context(), v.bucket, minio.ListObjectsOptions{Prefix: v.prefix + "ledger/", Recursive: true}) {
		must(t, obj.Err)
		if err := v.s3.RemoveObject(t.Context(), v.bucket, obj.Key, minio.RemoveObjectOptions{}); err != nil {
			return s3Outcome("RemoveObject "+obj.Key, err)
		}
		n++
	}
	return outcome{kind: ignored, msg: fmt.Sprintf("RemoveObject of %d ledger objects: accepted, delete markers", n)}
}

// forgeCheckpoint stores a checkpoint of a longer log, signed by a key of
// the log key's name that is not the log key.
func (v *victim) forgeCheckpoint(t *testing.T) outcome {
	t.Helper()
	names := v.objects(t, "ledger/checkpoints")
	newest := names[len(names)-1]
	msg := v.read(t, "ledger/checkpoints", newest)
	text, sigs, ok := strings.Cut(string(msg), "\n\n")
	lines := strings.Split(text, "\n")
	fields := strings.Fields(sigs)
	if !ok || len(lines) < 3 || len(fields) < 2 {
		t.Fatalf("checkpoint %s is not a note:\n%s", newest, msg)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	must(t, err)
	lines[1] = strconv.FormatInt(size+5, 10)
	lines[2] = base64.StdEncoding.EncodeToString(randomBytes(32))
	skey, _, err := note.GenerateKey(rand.Reader, fields[1])
	must(t, err)
	signer, err := note.NewSigner(skey)
	must(t, err)
	forged, err := note.Sign(&note.Note{Text: strings.Join(lines, "\n") + "\n"}, signer)
	must(t, err)
	name := fmt.Sprintf("%020d", size+5)
	if v.srv != nil {
		if o := v.request(t, "PUT", "ledger/checkpoints/"+name, forged); o.kind != "accepted" {
			return o
		}
	} else {
		k := v.prefix + "ledger/checkpoints/" + name
		_, err := v.s3.PutObject(t.Context(), v.bucket, k, bytes.NewReader(forged), int64(len(forged)), minio.PutObjectOptions{})
		if o := s3Outcome("PutObject "+k, err); o.kind != "accepted" {
			return o
		}
	}
	return v.detect(t, "ledger/checkpoints/"+name)
}

// shortenRetention asks S3 to end a snapshot's COMPLIANCE retention in a
// minute, as COMPLIANCE and as GOVERNANCE with bypass; every refusal must
// have the same code.
func (v *victim) shortenRetention(t *testing.T) outcome {
	t.Helper()
	k := v.prefix + key("snapshots", v.snaps[0])
	ids, _ := v.versions(t, k)
	soon := time.Now().Add(time.Minute)
	var first outcome
	for i, mode := range []minio.RetentionMode{minio.Compliance, minio.Governance} {
		opts := minio.PutObjectRetentionOptions{VersionID: ids[len(ids)-1], Mode: &mode, RetainUntilDate: &soon, GovernanceBypass: mode == minio.Governance}
		o := s3Outcome(fmt.Sprintf("PutObjectRetention %s %s until %s", k, mode, soon.Format(time.TimeOnly)), v.s3.PutObjectRetention(t.Context(), v.bucket, k, opts))
		if i == 0 {
			first = o
		} else if o.kind != first.kind || o.code != first.code {
			return o
		}
	}
	return first
}

// removeLock tries to take Object Lock off the bucket (S3 has no call
// for it: the closest is a lock configuration without a default rule,
// which kalaja does not rely on, as it sets every object's retention
// itself), then to delete a version: that, whatever the configuration
// call said, must be refused, and the bucket must still be locked.
func (v *victim) removeLock(t *testing.T) outcome {
	t.Helper()
	cfg := s3Outcome("PutObjectLockConfig(no default rule)", v.s3.SetObjectLockConfig(t.Context(), v.bucket, nil, nil, nil))
	if enabled, _, _, _, err := v.s3.GetObjectLockConfig(t.Context(), v.bucket); err != nil || enabled != "Enabled" {
		t.Errorf("after %s the bucket's Object Lock is %q (%v), want Enabled", cfg.msg, enabled, err)
	}
	del := v.remove(t, "snapshots", true, true)
	del.msg = cfg.msg + ", Object Lock still Enabled; then " + del.msg
	return del
}

// suspendVersioning tries to suspend the bucket's versioning.
func (v *victim) suspendVersioning(t *testing.T) outcome {
	t.Helper()
	err := v.s3.SetBucketVersioning(t.Context(), v.bucket, minio.BucketVersioningConfiguration{Status: minio.Suspended})
	return s3Outcome("SetBucketVersioning(Suspended)", err)
}

// fill PUTs junk packs, each named by its hash, until the server refuses
// one; it must refuse before the host's bytes pass the quota.
func (v *victim) fill(t *testing.T) outcome {
	t.Helper()
	const chunk = 4 << 20
	for i := range attackQuota/chunk + 2 {
		junk := randomBytes(chunk)
		o := v.request(t, "PUT", fmt.Sprintf("data/%x", sha256.Sum256(junk)), junk)
		if o.kind == refused {
			var usage struct {
				Hosts map[string]struct{ Bytes int64 } `json:"hosts"`
			}
			b, err := os.ReadFile(filepath.Join(v.srv.dir, "usage.json"))
			must(t, err)
			must(t, json.Unmarshal(b, &usage))
			if used := usage.Hosts["host-1"].Bytes; used > attackQuota || used+chunk <= attackQuota {
				t.Errorf("the server refused the junk at %d bytes used, quota %d, request %d", used, attackQuota, chunk)
			}
			o.msg = fmt.Sprintf("after %d junk packs of %d MiB: %s", i, chunk>>20, o.msg)
			return o
		}
	}
	return outcome{kind: "accepted", msg: fmt.Sprintf("%d MiB of junk stored, past the quota of %d MiB", (attackQuota/chunk+2)*chunk>>20, attackQuota>>20)}
}

package ledger

import (
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/kalaja/kalaja/internal/admin"
	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/store"
)

// exampleAuth is the request hash of the example removal record.
var exampleAuth = blob.Hash([]byte("request"))

// removalEncoding is the encoding of a version 3 removal record.
func removalEncoding() string {
	return `{"v":3,"kind":"pack-removed","id":"` + exampleRecord.ID.String() +
		`","size":16777216,"time":"2026-11-23T12:05:55.98695254Z","host":"db-01","auth":"` + exampleAuth.String() + `"}`
}

func TestRemovalRecordEncoding(t *testing.T) {
	r := Record{Kind: KindPackRemoved, ID: exampleRecord.ID, Size: 16777216, Time: exampleRecord.Time, Host: "db-01", Auth: exampleAuth}
	if got := string(r.Marshal()); got != removalEncoding() {
		t.Fatalf("Marshal = %s, want %s", got, removalEncoding())
	}
	back, err := ParseRecord(r.Marshal())
	if err != nil || back.Auth != exampleAuth || back.Version != RecordRemovalVersion {
		t.Fatalf("ParseRecord = %+v, %v", back, err)
	}
}

// adminKey makes an administrator's note key.
func adminKey(t *testing.T, name string) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// request signs a request that deletes hs with s and stores it in tl's
// repository, returning its hash.
func (tl *testLog) request(t *testing.T, s note.Signer, hs ...store.Handle) blob.ID {
	t.Helper()
	msg, err := admin.Request{Server: strings.Repeat("ab", 16), Seq: 1, Expires: time.Now().Add(time.Hour), Delete: hs}.Sign(s)
	if err != nil {
		t.Fatal(err)
	}
	id, err := tl.log.SaveRequest(t.Context(), msg)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := tl.log.SaveRequest(t.Context(), msg); err != nil || again != id {
		t.Fatalf("saving the request again: %v, %v", again, err)
	}
	return id
}

func packHandle(id blob.ID) store.Handle { return store.Handle{Type: store.Packs, Name: id.String()} }

func TestVerifyRemoved(t *testing.T) {
	tl := newTestLog(t)
	signer, verifier := adminKey(t, "kalaja-admin-test")
	rec := func(kind string, id, auth blob.ID) Record {
		return Record{Kind: kind, ID: id, Size: 4, Time: exampleRecord.Time, Host: "h", Auth: auth}
	}
	pruned, early := blob.Hash([]byte("pruned")), blob.Hash([]byte("early"))
	kept := []byte("kept")
	if err := tl.st.Save(t.Context(), packHandle(blob.Hash(kept)), kept); err != nil {
		t.Fatal(err)
	}
	req := tl.request(t, signer, packHandle(pruned), packHandle(early), packHandle(blob.Hash(kept)))
	cp := tl.append(t, []Record{rec(KindPack, pruned, blob.ID{}), rec(KindPackRemoved, early, req), rec(KindPack, blob.Hash(kept), blob.ID{})}, Checkpoint{})
	tl.append(t, []Record{rec(KindPackRemoved, pruned, req), rec(KindPack, early, blob.ID{}), rec(KindPackRemoved, blob.Hash(kept), req)}, cp)
	rep, err := tl.log.Verify(t.Context(), VerifyOptions{ReadData: true, Admin: verifier})
	if err != nil {
		t.Fatal(err)
	}
	want := []Problem{{Kind: ProblemMissing, Object: "data/" + early.String()}}
	if !slices.EqualFunc(rep.Problems, want, func(a, b Problem) bool { return a.Kind == b.Kind && a.Object == b.Object }) {
		t.Fatalf("Verify: %+v, want %+v", rep.Problems, want)
	}
	if rep.Removed != 2 {
		t.Errorf("Verify counted %d removed objects, want 2 (one gone, one still stored)", rep.Removed)
	}
}

// TestVerifyUnauthorisedRemoval is the attack of a host that holds the log
// key (and storage access to delete a pack): it logs the pack's removal
// without the administrator's signature, in every way it can, and deletes
// the pack. Verify must not accept the absence: it names the removal
// record and the pack as missing.
func TestVerifyUnauthorisedRemoval(t *testing.T) {
	_, verifier := adminKey(t, "kalaja-admin-test")
	signer, _ := adminKey(t, "kalaja-admin-test") // the same name, another key
	realSigner, realVerifier := adminKey(t, "kalaja-admin-real")
	victim := []byte("victim pack")
	vid := blob.Hash(victim)
	tests := []struct {
		name  string
		auth  func(tl *testLog) blob.ID
		admin note.Verifier
	}{
		{"unbound", func(*testLog) blob.ID { return blob.ID{} }, verifier},
		{"no request stored", func(*testLog) blob.ID { return blob.Hash([]byte("nothing")) }, verifier},
		{"signed by another key", func(tl *testLog) blob.ID { return tl.request(t, signer, packHandle(vid)) }, verifier},
		{"a real request for another object", func(tl *testLog) blob.ID {
			return tl.request(t, realSigner, packHandle(blob.Hash([]byte("other"))))
		}, realVerifier},
		{"the real key's request, no key given to verify", func(tl *testLog) blob.ID {
			return tl.request(t, realSigner, packHandle(vid))
		}, nil},
		{"a request planted under another request's name", func(tl *testLog) blob.ID {
			msg, err := admin.Request{Server: strings.Repeat("ab", 16), Seq: 1, Expires: time.Now().Add(time.Hour), Delete: []store.Handle{packHandle(vid)}}.Sign(realSigner)
			if err != nil {
				t.Fatal(err)
			}
			name := blob.Hash([]byte("squatted"))
			if err := tl.st.Save(t.Context(), store.Handle{Type: store.LedgerRemovals, Name: name.String()}, msg); err != nil {
				t.Fatal(err)
			}
			return name
		}, realVerifier},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tl := newTestLog(t)
			h := packHandle(vid)
			if err := tl.st.Save(t.Context(), h, victim); err != nil {
				t.Fatal(err)
			}
			cp := tl.append(t, []Record{{Kind: KindPack, ID: vid, Size: int64(len(victim)), Time: exampleRecord.Time, Host: "victim"}}, Checkpoint{})
			// The attacker: a removal record, then the pack deleted.
			tl.append(t, []Record{{Kind: KindPackRemoved, ID: vid, Size: int64(len(victim)), Time: exampleRecord.Time, Host: "thief", Auth: tt.auth(tl)}}, cp)
			if err := tl.st.Remove(t.Context(), h); err != nil {
				t.Fatal(err)
			}
			rep, err := tl.log.Verify(t.Context(), VerifyOptions{Admin: tt.admin})
			if err != nil {
				t.Fatal(err)
			}
			want := []Problem{{Kind: ProblemUnauthorised, Object: h.String()}, {Kind: ProblemMissing, Object: h.String()}}
			if !slices.EqualFunc(rep.Problems, want, func(a, b Problem) bool { return a.Kind == b.Kind && a.Object == b.Object }) {
				t.Fatalf("Verify: %+v, want %+v", rep.Problems, want)
			}
			if !rep.Tampered() || rep.Removed != 0 {
				t.Errorf("Tampered() = %v, Removed = %d; want true, 0", rep.Tampered(), rep.Removed)
			}
			t.Log(rep.Problems[0].Message)
		})
	}
}

// TestClientAdmin: the administrator's key is pinned when first given, used
// when none is given, and another key is refused.
func TestClientAdmin(t *testing.T) {
	tl := newTestLog(t)
	c, err := OpenClient(tl.log, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.Admin(""); v != nil || err != nil {
		t.Fatalf("Admin before any key = %v, %v; want nil, nil", v, err)
	}
	_, vkey, _ := note.GenerateKey(rand.Reader, "kalaja-admin-a")
	_, other, _ := note.GenerateKey(rand.Reader, "kalaja-admin-b")
	if v, err := c.Admin(vkey); err != nil || v == nil || v.Name() != "kalaja-admin-a" {
		t.Fatalf("Admin(key) = %v, %v", v, err)
	}
	// Remembering a checkpoint keeps the pinned administrator's key.
	cp := tl.append(t, testRecords("h", 0, 2), Checkpoint{})
	latest, msg, err := tl.log.Latest(t.Context())
	if err != nil || latest != cp {
		t.Fatalf("Latest = %v, %v", latest, err)
	}
	if err := c.Remember(t.Context(), latest, msg); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Admin(""); err != nil || v == nil || v.Name() != "kalaja-admin-a" {
		t.Fatalf("Admin after pinning = %v, %v; want the pinned key", v, err)
	}
	if _, err := c.Admin(other); !errors.Is(err, ErrSignature) {
		t.Fatalf("Admin(another key) = %v, want ErrSignature", err)
	}
	if _, err := c.Admin("not a key"); err == nil {
		t.Fatal("Admin accepted a malformed key")
	}
}

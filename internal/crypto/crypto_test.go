package crypto

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/kalaja/kalaja/internal/blob"
)

func testKeys(t testing.TB) *Keys {
	t.Helper()
	k, err := NewKeys(blob.Hash([]byte("repo")))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func cheapKDF(t testing.TB) KDFParams {
	p, err := DefaultKDF()
	if err != nil {
		t.Fatal(err)
	}
	p.Time, p.MemoryKiB, p.Threads = 1, 8<<10, 1
	return p
}

func TestKeyFile(t *testing.T) {
	k := testKeys(t)
	data, err := SealKeyFile(k, []byte("correct horse"), cheapKDF(t), KeyFile{Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, k.ID[:]) || bytes.Contains(data, k.ContentPrivate[:]) {
		t.Fatal("key file holds a raw key")
	}
	kf, err := ParseKeyFile(data)
	if err != nil {
		t.Fatal(err)
	}
	got, err := kf.Open([]byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, k) {
		t.Fatal("keys differ after round trip")
	}
	if _, err := kf.Open([]byte("wrong")); !errors.Is(err, blob.ErrWrongPassword) {
		t.Fatalf("wrong password: got %v", err)
	}
	kf.Data[len(kf.Data)-1] ^= 1
	if _, err := kf.Open([]byte("correct horse")); !errors.Is(err, blob.ErrWrongPassword) {
		t.Fatalf("tampered key file: got %v", err)
	}
}

// TestWriteOnlyKeyFile: a write-only key is sealed as version 2, marked
// in its public part, opens without the content private key and with the
// log's signer, and a flipped flag or a version that does not match the
// keys is refused.
func TestWriteOnlyKeyFile(t *testing.T) {
	k := testKeys(t)
	w := k.WriteOnly([]byte("signer\nverifier\n"))
	pw := []byte("pw")
	data, err := SealKeyFile(w, pw, cheapKDF(t), KeyFile{Host: "fs-01"})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, k.ContentPrivate[:]) {
		t.Fatal("write-only key file holds the content private key")
	}
	kf, err := ParseKeyFile(data)
	if err != nil {
		t.Fatal(err)
	}
	if kf.Version != WriteOnlyKeyFileVersion || !kf.WriteOnly {
		t.Fatalf("version %d write_only %v", kf.Version, kf.WriteOnly)
	}
	got, err := kf.Open(pw)
	if err != nil {
		t.Fatal(err)
	}
	if got.CanRead() || !reflect.DeepEqual(got, w) {
		t.Fatal("write-only keys differ after round trip")
	}
	for _, bad := range []*Keys{k.WriteOnly(nil), func() *Keys { c := *k; c.LogSigner = []byte("s\nv\n"); return &c }()} {
		if _, err := SealKeyFile(bad, pw, cheapKDF(t), KeyFile{}); err == nil {
			t.Fatal("sealed a key whose signer does not match its rights")
		}
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		edit    func(map[string]any)
		wantErr error
	}{
		{"flag cleared", func(m map[string]any) { delete(m, "write_only") }, blob.ErrCorrupt},
		{"downgraded", func(m map[string]any) { m["version"] = 1; delete(m, "write_only") }, blob.ErrWrongPassword},
		{"version 3", func(m map[string]any) { m["version"] = 3 }, blob.ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := map[string]any{}
			for k, v := range m {
				c[k] = v
			}
			tt.edit(c)
			b, _ := json.Marshal(c)
			kf, err := ParseKeyFile(b)
			if err == nil {
				_, err = kf.Open(pw)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestParseKeyFileRejects(t *testing.T) {
	tests := []struct{ name, in string }{
		{"not json", "xx"},
		{"version", `{"version":2}`},
		{"huge memory", `{"version":1,"kdf":{"time":1,"memory_kib":4294967295,"threads":1,"salt":"AAAAAAAAAAAAAAAAAAAAAA=="},"data":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`},
		{"short salt", `{"version":1,"kdf":{"time":1,"memory_kib":65536,"threads":1,"salt":"AAAA"},"data":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`},
		{"short data", `{"version":1,"kdf":{"time":1,"memory_kib":65536,"threads":1,"salt":"AAAAAAAAAAAAAAAAAAAAAA=="},"data":"AAAA"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseKeyFile([]byte(tt.in)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestSealObject(t *testing.T) {
	k := testKeys(t)
	for _, typ := range []string{"index", "snapshot"} {
		t.Run(typ, func(t *testing.T) {
			msg := []byte("secret record 1234")
			s, err := k.SealObject(typ, msg)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(s, msg) {
				t.Fatal("plaintext visible")
			}
			got, err := k.OpenObject(typ, s)
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("open: %q %v", got, err)
			}
			other := "snapshot"
			if typ == "snapshot" {
				other = "tree-object"
			}
			if _, err := k.OpenObject(other, s); !errors.Is(err, blob.ErrCorrupt) {
				t.Fatalf("opened as %s: %v", other, err)
			}
			for i := range s {
				c := bytes.Clone(s)
				c[i] ^= 0x40
				if _, err := k.OpenObject(typ, c); err == nil {
					t.Fatalf("flip at %d accepted", i)
				}
			}
			if _, err := k.OpenObject(typ, s[:len(s)-1]); err == nil {
				t.Fatal("truncated accepted")
			}
		})
	}
}

func TestWriteOnly(t *testing.T) {
	k := testKeys(t)
	w := k.WriteOnly([]byte("signer\nverifier\n"))
	if w.CanRead() || !k.CanRead() {
		t.Fatal("CanRead wrong")
	}
	s, err := w.SealObject("snapshot", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.OpenObject("snapshot", s); !errors.Is(err, ErrWriteOnly) {
		t.Fatalf("write-only key read a snapshot: %v", err)
	}
	if _, err := k.OpenObject("snapshot", s); err != nil {
		t.Fatalf("full key cannot read what write-only key wrote: %v", err)
	}
	pk, eph, err := w.NewPackKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.OpenPackKey(eph); !errors.Is(err, ErrWriteOnly) {
		t.Fatalf("write-only key opened a pack key: %v", err)
	}
	rk, err := k.OpenPackKey(eph)
	if err != nil {
		t.Fatal(err)
	}
	h := blob.Handle{Type: blob.Data, ID: blob.Hash([]byte("c"))}
	ct := pk.Seal(nil, BlobNonce(7), []byte("chunk"), BlobAAD(h))
	if pt, err := rk.Open(nil, BlobNonce(7), ct, BlobAAD(h)); err != nil || string(pt) != "chunk" {
		t.Fatalf("pack key round trip: %q %v", pt, err)
	}
	if _, err := rk.Open(nil, BlobNonce(8), ct, BlobAAD(h)); err == nil {
		t.Fatal("blob moved to another offset decrypted")
	}
}

func TestIDHasherKeyed(t *testing.T) {
	for _, f := range []IDFunc{HMACSHA256, BLAKE3} {
		a, b := testKeys(t), testKeys(t)
		if a.NewIDHasher(f).Sum([]byte("x")) == b.NewIDHasher(f).Sum([]byte("x")) {
			t.Fatalf("%s: IDs of two repositories agree", f)
		}
		h := a.NewIDHasher(f)
		if h.Sum([]byte("x")) != a.NewIDHasher(f).Sum([]byte("x")) || h.Sum([]byte("x")) == blob.Hash([]byte("x")) {
			t.Fatalf("%s: IDs not deterministic or not keyed", f)
		}
	}
}

// TestIDFuncVectors checks both ID functions against published answers:
// RFC 4231 test case 2 for HMAC-SHA256 (its key is shorter than ours, which
// HMAC pads the same way), and the official BLAKE3 test vectors' keyed_hash
// (key "whats the Elvish word for friend", input byte i = i mod 251).
func TestIDFuncVectors(t *testing.T) {
	elvish := [KeySize]byte([]byte("whats the Elvish word for friend"))
	pattern := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i % 251)
		}
		return b
	}
	var jefe [KeySize]byte // "Jefe" zero-padded: the same HMAC key
	copy(jefe[:], "Jefe")
	tests := []struct {
		f    IDFunc
		key  [KeySize]byte
		in   []byte
		want string
	}{
		{HMACSHA256, jefe, []byte("what do ya want for nothing?"), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
		{BLAKE3, elvish, pattern(0), "92b2b75604ed3c761f9d6f62392c8a9227ad0ea3f09573e783f1498a4ed60d26"},
		{BLAKE3, elvish, pattern(1), "6d7878dfff2f485635d39013278ae14f1454b8c0a3a2d34bc1ab38228a80c95b"},
		{BLAKE3, elvish, pattern(1025), "357dc55de0c7e382c900fd6e320acc04146be01db6a8ce7210b7189bd664ea69"},
		{BLAKE3, elvish, pattern(8192), "dc9637c8845a770b4cbf76b8daec0eebf7dc2eac11498517f08d44c8fc00d58a"},
		{BLAKE3, elvish, pattern(100000), "74c836d008247adebbc032d1bced2e71d19050b5c39fa03c43d4160ad8d17073"},
	}
	for _, tt := range tests {
		k := &Keys{ID: tt.key}
		h := k.NewIDHasher(tt.f)
		for range 2 { // and again after a reset
			if got := h.Sum(tt.in); got.String() != tt.want {
				t.Errorf("%s of %d bytes = %s, want %s", tt.f, len(tt.in), got, tt.want)
			}
		}
	}
}

func FuzzOpenObject(f *testing.F) {
	k := testKeys(f)
	for _, typ := range []string{"index", "snapshot"} {
		s, _ := k.SealObject(typ, []byte("seed"))
		f.Add(typ == "index", s)
	}
	f.Fuzz(func(t *testing.T, index bool, data []byte) {
		typ := "snapshot"
		if index {
			typ = "index"
		}
		_, _ = k.OpenObject(typ, data)
	})
}

func FuzzParseKeyFile(f *testing.F) {
	k := testKeys(f)
	data, _ := SealKeyFile(k, []byte("pw"), cheapKDF(f), KeyFile{})
	f.Add(data)
	f.Fuzz(func(t *testing.T, data []byte) {
		kf, err := ParseKeyFile(data)
		if err != nil {
			return
		}
		if kf.KDF.MemoryKiB > 64<<10 || kf.KDF.Time > 3 {
			return // valid but too slow to open in a fuzz loop
		}
		_, _ = kf.Open([]byte("pw"))
	})
}

// TestFrozenWriteOnlyKeyFile opens a version 2 key file written by the
// build that introduced it (testdata/keyfile-v2.json, password "frozen
// password", cheap KDF; its content public key in keyfile-v2.public), so
// that later builds keep reading write-only keys.
func TestFrozenWriteOnlyKeyFile(t *testing.T) {
	b, err := os.ReadFile("testdata/keyfile-v2.json")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile("testdata/keyfile-v2.public")
	if err != nil {
		t.Fatal(err)
	}
	kf, err := ParseKeyFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !kf.WriteOnly || kf.Host != "fs-01" {
		t.Fatalf("write_only %v, host %q", kf.WriteOnly, kf.Host)
	}
	k, err := kf.Open([]byte("frozen password"))
	if err != nil {
		t.Fatal(err)
	}
	if k.CanRead() || string(k.CarriedSigner()) != "frozen signer\nfrozen verifier\n" ||
		blob.ID(k.ContentPublic).String() != strings.TrimSpace(string(pub)) ||
		k.RepoID != blob.Hash([]byte("frozen repository")) {
		t.Fatal("the frozen write-only key opens to other keys")
	}
}

// FuzzOpenLocal: no bytes on a host's disk make OpenLocal panic, and none
// but SealLocal's open.
func FuzzOpenLocal(f *testing.F) {
	k, _ := NewKeys(blob.Hash([]byte("repo")))
	good, _ := k.SealLocal("parent-cache", "n", []byte("plain"))
	f.Add(good)
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		plain, err := k.OpenLocal("parent-cache", "n", b)
		if err == nil && string(plain) != "plain" {
			t.Fatalf("opened forged bytes to %q", plain)
		}
	})
}

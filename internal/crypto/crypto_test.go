package crypto

import (
	"bytes"
	"errors"
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
	if *got != *k {
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
	w := k.WriteOnly()
	if w.CanRead() || !k.CanRead() {
		t.Fatal("CanRead wrong")
	}
	s, err := w.SealObject("snapshot", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.OpenObject("snapshot", s); err == nil {
		t.Fatal("write-only key read a snapshot")
	}
	if _, err := k.OpenObject("snapshot", s); err != nil {
		t.Fatalf("full key cannot read what write-only key wrote: %v", err)
	}
	pk, eph, err := w.NewPackKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.OpenPackKey(eph); err == nil {
		t.Fatal("write-only key opened a pack key")
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
	a, b := testKeys(t), testKeys(t)
	if a.NewIDHasher().Sum([]byte("x")) == b.NewIDHasher().Sum([]byte("x")) {
		t.Fatal("IDs of two repositories agree")
	}
	h := a.NewIDHasher()
	if h.Sum([]byte("x")) != a.NewIDHasher().Sum([]byte("x")) || h.Sum([]byte("x")) == blob.Hash([]byte("x")) {
		t.Fatal("IDs not deterministic or not keyed")
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

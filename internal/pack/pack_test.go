package pack

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/crypto"
)

func newKeys(t testing.TB) *crypto.Keys {
	k, err := crypto.NewKeys(blob.ID{1})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func buildPack(t testing.TB, k *crypto.Keys, n int) ([]byte, [][]byte) {
	var buf bytes.Buffer
	w, err := NewWriter(k, &buf)
	if err != nil {
		t.Fatal(err)
	}
	var blobs [][]byte
	for i := range n {
		data := []byte(fmt.Sprintf("blob number %d %s", i, bytes.Repeat([]byte{byte(i)}, i*7)))
		if err := w.Add(blob.Handle{Type: blob.Data, ID: blob.Hash(data)}, data, 0); err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, data)
	}
	if _, err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), blobs
}

func TestRoundTrip(t *testing.T) {
	k := newKeys(t)
	for _, n := range []int{0, 1, 17} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			p, blobs := buildPack(t, k, n)
			hdr, err := ReadHeader(k, bytes.NewReader(p), int64(len(p)))
			entries, key := hdr.Entries, hdr.Key
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != n {
				t.Fatalf("%d entries, want %d", len(entries), n)
			}
			for i, e := range entries {
				got, err := e.Open(key, nil, p[e.Offset:e.Offset+e.Length])
				if err != nil || !bytes.Equal(got, blobs[i]) || e.ID != blob.Hash(blobs[i]) {
					t.Fatalf("blob %d: %q %v", i, got, err)
				}
				if bytes.Contains(p, blobs[i]) {
					t.Fatalf("blob %d visible in plaintext", i)
				}
			}
		})
	}
}

func TestReadHeaderDetectsDamage(t *testing.T) {
	k := newKeys(t)
	p, _ := buildPack(t, k, 5)
	tests := []struct {
		name string
		mod  func([]byte) []byte
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)-10] }},
		{"cut to trailer", func(b []byte) []byte { return b[len(b)-TrailerSize:] }},
		{"header bit", func(b []byte) []byte { b[len(b)-TrailerSize-3] ^= 1; return b }},
		{"magic", func(b []byte) []byte { b[len(b)-3] ^= 1; return b }},
		{"header length", func(b []byte) []byte { b[len(b)-9]++; return b }},
		{"extra bytes before", func(b []byte) []byte { return append([]byte{0}, b...) }},
		{"empty", func(b []byte) []byte { return nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.mod(bytes.Clone(p))
			if _, err := ReadHeader(k, bytes.NewReader(b), int64(len(b))); err == nil {
				t.Fatal("damage not detected")
			}
		})
	}
	var e Entry
	hdr, _ := ReadHeader(k, bytes.NewReader(p), int64(len(p)))
	entries, key := hdr.Entries, hdr.Key
	e = entries[2]
	ct := bytes.Clone(p[e.Offset : e.Offset+e.Length])
	ct[0] ^= 1
	if _, err := e.Open(key, nil, ct); !errors.Is(err, blob.ErrCorrupt) {
		t.Fatalf("flipped blob: %v", err)
	}
	if _, err := entries[1].Open(key, nil, p[e.Offset:e.Offset+e.Length]); err == nil {
		t.Fatal("blob opened under another entry")
	}
}

func FuzzDecodeHeader(f *testing.F) {
	f.Add(EncodeHeader([]Entry{{Type: blob.Data, Length: 20}, {Type: blob.Tree, Offset: 20, Length: 30, RawLength: 9}}), int64(50))
	f.Fuzz(func(t *testing.T, b []byte, dataLen int64) {
		entries, err := DecodeHeader(b, dataLen)
		if err != nil {
			return
		}
		if !bytes.Equal(EncodeHeader(entries), b) {
			t.Fatal("decode/encode not inverse")
		}
	})
}

func FuzzReadHeader(f *testing.F) {
	k := newKeys(f)
	p, _ := buildPack(f, k, 3)
	f.Add(p)
	f.Add(p[len(p)-TrailerSize:])
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ReadHeader(k, bytes.NewReader(b), int64(len(b)))
	})
}

type failingWriter struct{ after int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.after -= len(p); w.after < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestWriterReportsWriteErrors(t *testing.T) {
	k := newKeys(t)
	w, err := NewWriter(k, &failingWriter{after: 100})
	if err != nil {
		t.Fatal(err)
	}
	h := blob.Handle{Type: blob.Data, ID: blob.Hash([]byte("x"))}
	if err := w.Add(h, make([]byte, 50), 0); err != nil {
		t.Fatalf("first blob: %v", err)
	}
	if err := w.Add(h, make([]byte, 50), 0); err == nil {
		t.Fatal("a failed write was not reported by Add")
	}
	if _, err := w.Finish(); err == nil {
		t.Fatal("a failed write was not reported by Finish")
	}
}

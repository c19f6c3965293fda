package detect

import (
	"bytes"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzAnalyze: any bytes give a sample, and the detector accepts it.
func FuzzAnalyze(f *testing.F) {
	f.Add([]byte("PK\x03\x04 hello"), []byte("SQLite format 3\x00"), int64(9000))
	f.Add([]byte("-----BEGIN"), []byte{0xff, 0xfe, 0}, int64(3))
	f.Add([]byte("aGVsbG8gd29ybGQ="), []byte{}, int64(-1))
	f.Add(gzipped(text(5000)), []byte{}, int64(3000))
	f.Add(gzipped(random(300))[:200], []byte{}, int64(9000))
	f.Add([]byte("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage"), []byte{}, int64(18))
	d, _ := New(DefaultConfig())
	f.Fuzz(func(t *testing.T, a, b []byte, size int64) {
		s := Analyze(size, [][]byte{a, b})
		if size > 0 && len(s.Blocks) != 2 {
			t.Fatalf("%d blocks for 2", len(s.Blocks))
		}
		old := Analyze(int64(len(b)), [][]byte{b})
		d.Observe(Event{Time: time.Unix(0, 0), Op: Write, Path: "/x.txt", Actor: Actor{PID: 1, Group: 1}, Old: &old, New: &s})
	})
}

// FuzzTextClasses: judging text and encodings from byte counts agrees
// with counting byte by byte, as the straightforward versions below do.
func FuzzTextClasses(f *testing.F) {
	f.Add([]byte("aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8=\r\n=="))
	f.Add([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"))
	f.Add([]byte("plain prose, with a tab\there and a form feed\f and a bell\a"))
	f.Add([]byte{0xe2, 0x82, 0xac, 0x7f, '\r', '\n'})
	f.Fuzz(func(t *testing.T, b []byte) {
		h := countBytes(b)
		ent := h.entropy(len(b))
		if got, want := isText(b, &h), isTextBytewise(b); got != want {
			t.Fatalf("isText = %v, byte by byte %v", got, want)
		}
		if got, want := isEncoded(b, &h, ent), isEncodedBytewise(b, ent); got != want {
			t.Fatalf("isEncoded = %v, byte by byte %v", got, want)
		}
	})
}

// FuzzValidUTF8: a block is UTF-8 when it is, or when only the start of
// a rune cut by the block's end is missing its last bytes.
func FuzzValidUTF8(f *testing.F) {
	f.Add([]byte("孫子兵法孫子兵法"[:13]))
	f.Add([]byte("për ujësjellësin ë"[:19]))
	f.Add([]byte{'a', 'b', 'c', 0xe5, 0xad})
	f.Add([]byte{'a', 'b', 'c', 'd', 0xad})
	f.Fuzz(func(t *testing.T, b []byte) {
		want := utf8.Valid(b)
		for cut := 1; !want && cut <= 3 && len(b) > 3; cut++ {
			tail := b[len(b)-cut:]
			want = !utf8.FullRune(tail) && utf8.Valid(b[:len(b)-cut])
		}
		if got := validUTF8(b); got != want {
			t.Fatalf("validUTF8(%q) = %v, want %v", b, got, want)
		}
	})
}

func isTextBytewise(b []byte) bool {
	if !validUTF8(b) {
		return false
	}
	ctrl := 0
	for _, c := range b {
		if c < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != '\f' || c == 0x7f {
			ctrl++
		}
	}
	return ctrl*50 <= len(b)
}

func isEncodedBytewise(b []byte, ent float64) bool {
	b = bytes.TrimRight(b, "\r\n=")
	if len(b) < 64 {
		return false
	}
	var hex, b64, other int
	for _, c := range b {
		switch {
		case c == '\n' || c == '\r':
		case c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F':
			hex++
		case c >= 'g' && c <= 'z' || c >= 'G' && c <= 'Z' || c == '+' || c == '/' || c == '-' || c == '_' || c == '=':
			b64++
		default:
			other++
		}
	}
	if other*100 > hex+b64 {
		return false
	}
	if b64 == 0 {
		return ent >= 3.5
	}
	return ent >= 5.0
}

// FuzzJudge: Judge reports what Analyze reports of a first block.
func FuzzJudge(f *testing.F) {
	f.Add([]byte("PK\x03\x04 hello"), int64(9000))
	f.Add(make([]byte, 5000), int64(5000))
	f.Add(random(BlockSize+7), int64(1<<20))
	f.Add(text(300), int64(300))
	f.Add([]byte{}, int64(0))
	f.Add([]byte("aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8=\n"), int64(-1))
	f.Fuzz(func(t *testing.T, b []byte, size int64) {
		typ, high := Judge(size, b)
		s := Analyze(size, [][]byte{b})
		want := false
		if len(s.Blocks) > 0 {
			want = s.Blocks[0].High
		}
		if typ != s.Type || high != want {
			t.Fatalf("Judge = %q %v, Analyze %q %v", typ, high, s.Type, want)
		}
	})
}

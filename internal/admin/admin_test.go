package admin

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/storetest"
)

const serverID = "0123456789abcdef0123456789abcdef"

// keys returns a signer and verifier for a new key named name.
func keys(t testing.TB, name string) (note.Signer, note.Verifier) {
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

var expires = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func valid() Request {
	return Request{Server: serverID, Seq: 7, Expires: expires, Retention: 30 * 24 * time.Hour,
		Delete: []store.Handle{
			{Type: store.Snapshots, Name: strings.Repeat("ab", 32)},
			{Type: store.LedgerCheckpoints, Name: "00000000000000000001"},
		}}
}

// signText signs arbitrary text, bypassing Request's checks.
func signText(t testing.TB, s note.Signer, text string) []byte {
	t.Helper()
	msg, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestAdminRoundTrip(t *testing.T) {
	s, v := keys(t, "admin")
	tests := []struct {
		name string
		r    Request
		text string
	}{
		{"retention and deletes", valid(), "kalaja admin request v1\nserver " + serverID + "\nseq 7\nexpires 2030-01-02T03:04:05Z\n" +
			"retention 30d\ndelete snapshots " + strings.Repeat("ab", 32) + "\ndelete ledger/checkpoints 00000000000000000001\n"},
		{"retention only", Request{Server: serverID, Seq: 1, Expires: expires, Retention: 36 * time.Hour},
			"kalaja admin request v1\nserver " + serverID + "\nseq 1\nexpires 2030-01-02T03:04:05Z\nretention 36h0m0s\n"},
		{"delete only", Request{Server: serverID, Seq: 1<<64 - 1, Expires: expires, Delete: []store.Handle{{Type: store.LedgerKeys, Name: "signer"}}},
			"kalaja admin request v1\nserver " + serverID + "\nseq 18446744073709551615\nexpires 2030-01-02T03:04:05Z\ndelete ledger/keys signer\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, err := tt.r.Sign(s)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(msg, []byte(tt.text+"\n")) {
				t.Fatalf("signed:\n%s\nwant text:\n%s", msg, tt.text)
			}
			got, err := Open(msg, v)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.r) {
				t.Fatalf("Open = %+v, want %+v", got, tt.r)
			}
		})
	}
}

func TestAdminSignRefuses(t *testing.T) {
	s, _ := keys(t, "admin")
	tests := []struct {
		name   string
		change func(*Request)
		want   string
	}{
		{"short server", func(r *Request) { r.Server = "abc" }, "server ID"},
		{"uppercase server", func(r *Request) { r.Server = strings.ToUpper(serverID) }, "server ID"},
		{"seq 0", func(r *Request) { r.Seq = 0 }, "seq 0"},
		{"no expiry", func(r *Request) { r.Expires = time.Time{} }, "expiry"},
		{"negative retention", func(r *Request) { r.Retention = -time.Hour }, "retention"},
		{"empty", func(r *Request) { r.Retention, r.Delete = 0, nil }, "empty request"},
		{"config", func(r *Request) { r.Delete = []store.Handle{{Type: store.Config}} }, "type"},
		{"unknown kind", func(r *Request) { r.Delete = []store.Handle{{Type: "tmp", Name: "x"}} }, "type"},
		{"slash in name", func(r *Request) { r.Delete = []store.Handle{{Type: store.Keys, Name: "a/b"}} }, "name"},
		{"space in name", func(r *Request) { r.Delete = []store.Handle{{Type: store.Keys, Name: "a b"}} }, "name"},
		{"hidden name", func(r *Request) { r.Delete = []store.Handle{{Type: store.Keys, Name: ".a"}} }, "name"},
		{"twice", func(r *Request) { r.Delete = append(r.Delete, r.Delete[0]) }, "twice"},
		{"too many", func(r *Request) {
			r.Delete = nil
			for i := range MaxDeletes + 1 {
				r.Delete = append(r.Delete, store.Handle{Type: store.Keys, Name: fmt.Sprint(i)})
			}
		}, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := valid()
			tt.change(&r)
			if _, err := r.Sign(s); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Sign = %v, want an error about %q", err, tt.want)
			}
		})
	}
}

func TestAdminOpenRefuses(t *testing.T) {
	s, v := keys(t, "admin")
	other, _ := keys(t, "admin")
	good, err := valid().Sign(s)
	if err != nil {
		t.Fatal(err)
	}
	text := string(good[:bytes.Index(good, []byte("\n\n"))+1])
	h := "kalaja admin request v1\nserver " + serverID + "\nseq 7\nexpires 2030-01-02T03:04:05Z\n"
	tampered := bytes.Replace(good, []byte("seq 7"), []byte("seq 8"), 1)
	tests := []struct {
		name string
		msg  []byte
		want error
		why  string
	}{
		{"another key", signText(t, other, text), ErrSignature, "admin"},
		{"tampered", tampered, ErrSignature, "admin"},
		{"unsigned", []byte(text + "\n"), ErrMalformed, "malformed note"},
		{"empty", nil, ErrMalformed, ""},
		{"too large", append(bytes.Repeat([]byte("x"), MaxSize), good...), ErrMalformed, "limit"},
		{"wrong header", signText(t, s, strings.Replace(text, "v1", "v2", 1)), ErrMalformed, "first line"},
		{"fields out of order", signText(t, s, "kalaja admin request v1\nseq 7\nserver "+serverID+"\nexpires 2030-01-02T03:04:05Z\nretention 1d\n"), ErrMalformed, "line 2"},
		{"seq leading zero", signText(t, s, strings.Replace(h, "seq 7", "seq 07", 1)+"retention 1d\n"), ErrMalformed, "canonical"},
		{"seq plus", signText(t, s, strings.Replace(h, "seq 7", "seq +7", 1)+"retention 1d\n"), ErrMalformed, "invalid seq"},
		{"seq overflow", signText(t, s, strings.Replace(h, "seq 7", "seq 18446744073709551616", 1)+"retention 1d\n"), ErrMalformed, "seq"},
		{"seq zero", signText(t, s, strings.Replace(h, "seq 7", "seq 0", 1)+"retention 1d\n"), ErrMalformed, "seq 0"},
		{"expiry with offset", signText(t, s, strings.Replace(h, "05Z", "05+01:00", 1)+"retention 1d\n"), ErrMalformed, "canonical"},
		{"expiry with fraction", signText(t, s, strings.Replace(h, "05Z", "05.5Z", 1)+"retention 1d\n"), ErrMalformed, "canonical"},
		{"expiry not a time", signText(t, s, strings.Replace(h, "2030-01-02T03:04:05Z", "tomorrow", 1)+"retention 1d\n"), ErrMalformed, "expiry"},
		{"retention in hours", signText(t, s, h+"retention 48h\n"), ErrMalformed, "canonical"},
		{"retention 0", signText(t, s, h+"retention 0d\n"), ErrMalformed, "retention"},
		{"negative retention", signText(t, s, h+"retention -1h0m0s\n"), ErrMalformed, "retention"},
		{"two retentions", signText(t, s, h+"retention 1d\nretention 2d\n"), ErrMalformed, "delete KIND NAME"},
		{"retention after delete", signText(t, s, h+"delete keys k\nretention 2d\n"), ErrMalformed, "delete KIND NAME"},
		{"nothing to do", signText(t, s, h), ErrMalformed, "at least four"},
		{"delete config", signText(t, s, h+"delete config x\n"), ErrMalformed, "type"},
		{"delete without name", signText(t, s, h+"delete keys\n"), ErrMalformed, "delete KIND NAME"},
		{"delete with two spaces", signText(t, s, h+"delete keys  k\n"), ErrMalformed, "name"},
		{"delete path", signText(t, s, h+"delete keys ../config\n"), ErrMalformed, "name"},
		{"delete twice", signText(t, s, h+"delete ledger/keys signer\ndelete ledger/keys signer\n"), ErrMalformed, "twice"},
		{"unknown field", signText(t, s, h+"retention 1d\nforce yes\n"), ErrMalformed, "delete KIND NAME"},
		{"trailing space", signText(t, s, h+"retention 1d \n"), ErrMalformed, "retention"},
		{"carriage return", signText(t, s, strings.ReplaceAll(h, "\n", "\r\n")+"retention 1d\r\n"), ErrMalformed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Open(tt.msg, v)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.why) {
				t.Fatalf("Open = %+v, %v; want %v mentioning %q", r, err, tt.want, tt.why)
			}
		})
	}
}

// TestCheckHandle checks that a request may name exactly the objects
// every store and the server accept (storetest's tables), but the config.
func TestCheckHandle(t *testing.T) {
	for _, h := range storetest.ValidHandles() {
		err := CheckHandle(h)
		if h.Type == store.Config && !errors.Is(err, store.ErrInvalidHandle) || h.Type != store.Config && err != nil {
			t.Errorf("CheckHandle(%q, %q) = %v", h.Type, h.Name, err)
		}
	}
	for _, h := range storetest.InvalidHandles() {
		if err := CheckHandle(h); !errors.Is(err, store.ErrInvalidHandle) {
			t.Errorf("CheckHandle(%q, %q) = %v, want store.ErrInvalidHandle", h.Type, h.Name, err)
		}
	}
}

func TestAdminRetention(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		back string
	}{
		{"30d", 30 * 24 * time.Hour, "30d"},
		{"1d", 24 * time.Hour, "1d"},
		{"36h", 36 * time.Hour, "36h0m0s"},
		{"48h", 48 * time.Hour, "2d"},
		{"90m", 90 * time.Minute, "1h30m0s"},
		{"100000d", 100000 * 24 * time.Hour, "100000d"},
	}
	for _, tt := range tests {
		d, err := ParseRetention(tt.in)
		if err != nil || d != tt.want || FormatRetention(d) != tt.back {
			t.Errorf("ParseRetention(%q) = %v, %v (formats as %q); want %v, %q", tt.in, d, err, FormatRetention(d), tt.want, tt.back)
		}
	}
	for _, bad := range []string{"", "d", "0d", "-1d", "+1d", "1.5d", "100001d", "0s", "-1h", "1 d", "x", "99999999999999999999d"} {
		if d, err := ParseRetention(bad); err == nil {
			t.Errorf("ParseRetention(%q) = %v, want an error", bad, d)
		}
	}
}

func TestAdminJSON(t *testing.T) {
	st := State{Server: serverID, Seq: 3, Retention: 720 * time.Hour, Key: "admin+12345678+AAAA"}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"server":"` + serverID + `","seq":3,"retention":"720h0m0s","key":"admin+12345678+AAAA"}`; string(b) != want {
		t.Fatalf("State JSON %s, want %s", b, want)
	}
	var st2 State
	if err := json.Unmarshal(b, &st2); err != nil || st2 != st {
		t.Fatalf("State round trip: %+v, %v", st2, err)
	}

	until := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	res := Result{
		Deleted: []store.Handle{{Type: store.LedgerTiles, Name: "0-1"}},
		Kept: []Kept{{Object: store.Handle{Type: store.Packs, Name: strings.Repeat("ab", 32)}, Reason: "retention", Until: until},
			{Object: store.Handle{Type: store.LedgerKeys, Name: "signer"}, Reason: "missing"}},
	}
	b, err = json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"deleted":["ledger/tiles/0-1"],"kept":[{"object":"data/` + strings.Repeat("ab", 32) + `","reason":"retention","until":"2030-01-01T00:00:00Z"},{"object":"ledger/keys/signer","reason":"missing"}]}`
	if string(b) != want {
		t.Fatalf("Result JSON %s, want %s", b, want)
	}
	var res2 Result
	if err := json.Unmarshal(b, &res2); err != nil || !reflect.DeepEqual(res2, res) {
		t.Fatalf("Result round trip: %+v, %v", res2, err)
	}
	for _, bad := range []string{`{"deleted":["config"]}`, `{"deleted":["data/../x"]}`, `{"kept":[{"object":"nokind"}]}`} {
		if err := json.Unmarshal([]byte(bad), &res2); err == nil {
			t.Errorf("Unmarshal(%s) succeeded", bad)
		}
	}
}

// FuzzOpen checks that Open never panics and that whatever it accepts is
// the canonical text of the request it returns: re-encoding gives the
// same text, and re-signing it gives a request Open reads back the same.
func FuzzOpen(f *testing.F) {
	s, v := keys(f, "admin")
	for _, r := range []Request{
		valid(),
		{Server: serverID, Seq: 1, Expires: expires, Retention: 36 * time.Hour},
		{Server: serverID, Seq: 2, Expires: expires, Delete: []store.Handle{{Type: store.Packs, Name: strings.Repeat("0", 64)}}},
	} {
		msg, err := r.Sign(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(msg)
		f.Add(bytes.Replace(msg, []byte("seq "), []byte("seq 0"), 1))
	}
	f.Add([]byte("kalaja admin request v1\n\n— admin x\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		r, err := Open(msg, v)
		if err != nil {
			if !errors.Is(err, ErrSignature) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("Open failed with neither sentinel: %v", err)
			}
			return
		}
		text := msg[:bytes.LastIndex(msg, []byte("\n\n"))+1]
		if r.encode() != string(text) {
			t.Fatalf("Open accepted %q, which re-encodes as %q", text, r.encode())
		}
		again, err := r.Sign(s)
		if err != nil {
			t.Fatalf("Sign of an accepted request: %v", err)
		}
		if !bytes.HasPrefix(again, text) {
			t.Fatalf("re-signed %q, want the text %q", again, text)
		}
		if r2, err := Open(again, v); err != nil || !reflect.DeepEqual(r2, r) {
			t.Fatalf("Open of the re-signed request = %+v, %v; want %+v", r2, err, r)
		}
	})
}

// FuzzParse reaches the text parser, which FuzzOpen's mutations rarely do
// (they break the signature): whatever parse accepts is canonical and
// valid, so Sign takes it and writes the same text.
func FuzzParse(f *testing.F) {
	s, _ := keys(f, "admin")
	for _, r := range []Request{valid(), {Server: serverID, Seq: 1, Expires: expires, Retention: 90 * time.Minute}} {
		f.Add(r.encode())
	}
	f.Fuzz(func(t *testing.T, text string) {
		r, err := parse(text)
		if err != nil {
			return
		}
		if r.encode() != text {
			t.Fatalf("parse accepted %q, which re-encodes as %q", text, r.encode())
		}
		msg, err := r.Sign(s)
		if err != nil || !bytes.HasPrefix(msg, []byte(text+"\n")) {
			t.Fatalf("Sign of a parsed request: %q, %v", msg, err)
		}
	})
}

// TestUnverified: the request's text is read whatever key signed it, and
// what is not a request is malformed.
func TestUnverified(t *testing.T) {
	other, _ := keys(t, "someone")
	msg, err := valid().Sign(other)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unverified(msg)
	if err != nil || !reflect.DeepEqual(got, valid()) {
		t.Fatalf("Unverified = %+v, %v; want %+v", got, err, valid())
	}
	for _, bad := range [][]byte{nil, []byte(valid().encode()), bytes.Replace(msg, []byte("seq 7"), []byte("seq 07"), 1), make([]byte, MaxSize+1)} {
		if _, err := Unverified(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("Unverified(%.40q) = %v, want ErrMalformed", bad, err)
		}
	}
}

// FuzzUnverified checks that Unverified never panics and that what it
// accepts is the text of a request.
func FuzzUnverified(f *testing.F) {
	s, _ := keys(f, "admin")
	msg, err := valid().Sign(s)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(msg)
	f.Add([]byte("kalaja admin request v1\n\n— admin x\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		r, err := Unverified(msg)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Unverified failed without ErrMalformed: %v", err)
			}
			return
		}
		if !bytes.HasPrefix(msg, []byte(r.encode()+"\n")) {
			t.Fatalf("Unverified accepted %q, whose text is not %q", msg, r.encode())
		}
	})
}

package server

import (
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/kalaja/kalaja/internal/store"
)

// FuzzParseRequest checks that parseRequest never panics, refuses with a
// *refusal, and accepts only paths that name a known kind and a safe name,
// which objectPath prints back to the same path.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"/v1/config", "/v1/data/", "/v1/data/0123abcd", "/v1/ledger/entries/00000000000000000000",
		"/v1/ledger/tiles/0-1.p3", "/v1/../config", "/v1/keys/..%2fconfig", "/v1/keys/.x", "/v1/ledger/",
		"/v1/data/ab/cd", "/v2/config", "/metrics", "/v1/keys/a\\b", "/v1//", "/v1/config/",
	} {
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, "BREW"} {
			f.Add(m, s)
		}
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		req, err := parseRequest(method, path)
		if err != nil {
			var ref *refusal
			if !errors.As(err, &ref) || ref.status < 400 || ref.reason == "" {
				t.Fatalf("parseRequest(%q, %q) failed without a refusal: %v", method, path, err)
			}
			return
		}
		h := req.h
		if h.Type != store.Config && !slices.Contains(store.Listable, h.Type) {
			t.Fatalf("parseRequest(%q) accepted kind %q", path, h.Type)
		}
		if h.Name != "" && h.Check() != nil {
			t.Fatalf("parseRequest(%q) accepted name %q", path, h.Name)
		}
		if (req.op == opList) != (h.Type != store.Config && h.Name == "") {
			t.Fatalf("parseRequest(%q) = op %d for %+v", path, req.op, h)
		}
		if req.op != opList && method != http.MethodGet && method != http.MethodHead && method != http.MethodPut {
			t.Fatalf("parseRequest accepted method %q", method)
		}
		if got := objectPath(h); got != path {
			t.Fatalf("parseRequest(%q) = %+v, whose path is %q", path, h, got)
		}
	})
}

// FuzzParseRange checks that parseRange never panics and returns only
// ranges inside the object.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"", "bytes=0-0", "bytes=5-", "bytes=-5", "bytes=3-1", "bytes=0-1,2-3",
		"bytes=-0", "bytes=99999999999999999999-", "bytes= 1-2", "bytes=+1-2"} {
		f.Add(s, int64(10))
	}
	f.Fuzz(func(t *testing.T, header string, size int64) {
		if size < 0 {
			return
		}
		start, n, _, err := parseRange(header, size)
		if err != nil {
			return
		}
		if start < 0 || n < 0 || start+n > size || (header != "" && n == 0) {
			t.Fatalf("parseRange(%q, %d) = %d, %d", header, size, start, n)
		}
	})
}

// FuzzParseTokens checks that the tokens file decoder never panics and
// accepts only valid names and roles.
func FuzzParseTokens(f *testing.F) {
	f.Add([]byte(tokensHeader + "\nweb-01 " + "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"))
	f.Add([]byte(tokensHeader + "\nops " + "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff dashboard\n"))
	f.Add([]byte(tokensHeaderV1 + "\nweb-01 " + "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"))
	f.Add([]byte("# kalaja server tokens v3\n"))
	f.Add([]byte(tokensHeader + "\n-x zz\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := parseTokens(b)
		if err != nil {
			return
		}
		for _, e := range entries {
			if CheckHost(e.Name) != nil || (e.Role != RoleHost && e.Role != RoleDashboard) {
				t.Fatalf("parseTokens accepted %v", e.Credential)
			}
		}
	})
}

// objectPath returns the path of object h, or of the listing of its kind
// when h.Name is empty.
func objectPath(h store.Handle) string {
	if h.Type == store.Config {
		return prefix + string(store.Config)
	}
	return prefix + string(h.Type) + "/" + h.Name
}

// FuzzCredential checks that the Authorization header decoder never
// panics and accepts only a bounded, non-empty token, with a user name
// exactly when it is Basic.
func FuzzCredential(f *testing.F) {
	for _, s := range []string{"Bearer abc", "Basic b3BzOnRva2Vu", "Basic b3Bz", "Basic !!", "basic b3BzOnRva2Vu",
		"Bearer ", "Digest x", "", "Basic Om5vdXNlcg=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		p, ok := parseAuthorization(header)
		if !ok {
			return
		}
		if p.token == "" || len(p.token) > maxToken || p.basic != (p.user != "") {
			t.Fatalf("parseAuthorization(%q) = %+v", header, p)
		}
	})
}

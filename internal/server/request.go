package server

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/kalaja/kalaja/internal/store"
)

// prefix is the path every endpoint of API version 1 lives under.
const prefix = "/v1/"

// op is what a request asks for.
type op int

const (
	opGet  op = iota + 1 // read an object, whole or a range
	opHead               // describe an object
	opPut                // create an object
	opList               // list the objects of a kind
)

// request is a parsed API request: what to do, and to which object (or,
// for opList, which kind).
type request struct {
	op op
	h  store.Handle
}

// refusal is a request the server turns down: the HTTP status, the reason
// label counted in the metrics, and a message for the client.
type refusal struct {
	status int
	reason string
	msg    string
}

func (r *refusal) Error() string { return r.msg }

func refuse(status int, reason, format string, a ...any) *refusal {
	return &refusal{status: status, reason: reason, msg: fmt.Sprintf(format, a...)}
}

// Reasons for refused requests, the values of the metrics' reason label.
const (
	reasonUnauthorized = "unauthorized"
	reasonForbidden    = "forbidden" // a credential of the wrong role
	reasonBadRequest   = "bad_request"
	reasonNotFound     = "unknown_path"
	reasonMethod       = "method"
	reasonExists       = "exists"
	reasonHash         = "hash_mismatch"
	reasonTooLarge     = "too_large"
	reasonLength       = "length_required"
	reasonQuota        = "quota"
	reasonRange        = "bad_range"
	reasonFull         = "storage_full" // not the client's fault, but a refusal it sees
)

// parseRequest reads the method and the escaped path of a request under
// prefix. Paths are prefix + "config", prefix + KIND + "/" (a listing) and
// prefix + KIND + "/" + NAME, where KIND is one of store.Listable and NAME
// a name store.Handle.Check accepts for it. Nothing is percent-encoded. It
// returns a *refusal for anything else: 404 for an unknown KIND, 400 for
// an invalid NAME.
func parseRequest(method, path string) (request, error) {
	rest, ok := strings.CutPrefix(path, prefix)
	if !ok {
		return request{}, refuse(http.StatusNotFound, reasonNotFound, "no such endpoint")
	}
	if strings.Contains(rest, "%") {
		return request{}, refuse(http.StatusBadRequest, reasonBadRequest, "escaped characters in the path")
	}
	var req request
	if rest == string(store.Config) {
		req.h = store.Handle{Type: store.Config}
	} else {
		i := strings.LastIndexByte(rest, '/')
		if i < 0 {
			return request{}, refuse(http.StatusNotFound, reasonNotFound, "no such endpoint")
		}
		req.h = store.Handle{Type: store.FileType(rest[:i]), Name: rest[i+1:]}
		if req.h.Type.CheckListable() != nil {
			return request{}, refuse(http.StatusNotFound, reasonNotFound, "unknown object kind")
		}
		if req.h.Name != "" && req.h.Check() != nil {
			return request{}, refuse(http.StatusBadRequest, reasonBadRequest, "invalid name for an object of kind %s", req.h.Type)
		}
	}
	listing := req.h.Type != store.Config && req.h.Name == ""
	switch {
	case listing && method == http.MethodGet:
		req.op = opList
	case listing:
		return request{}, refuse(http.StatusMethodNotAllowed, reasonMethod, "a listing allows only GET")
	case method == http.MethodGet:
		req.op = opGet
	case method == http.MethodHead:
		req.op = opHead
	case method == http.MethodPut:
		req.op = opPut
	default:
		return request{}, refuse(http.StatusMethodNotAllowed, reasonMethod, "method %s is not allowed: objects are only added and read", method)
	}
	return req, nil
}

// parseRange reads a Range header of one byte range ("bytes=A-B",
// "bytes=A-" or "bytes=-N") against an object of size bytes, and returns
// the range's start and length, clipped to the object. An empty header
// means the whole object (ok false). A range that starts at or after the
// end, or a malformed or multiple range, is a *refusal (416).
func parseRange(header string, size int64) (start, length int64, ok bool, err error) {
	if header == "" {
		return 0, size, false, nil
	}
	bad := refuse(http.StatusRequestedRangeNotSatisfiable, reasonRange, "want one range: bytes=START-END, bytes=START- or bytes=-LENGTH")
	spec, found := strings.CutPrefix(header, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, bad
	}
	a, b, found := strings.Cut(spec, "-")
	if !found {
		return 0, 0, false, bad
	}
	num := func(s string) (int64, bool) {
		if s == "" || len(s) > 19 || strings.Trim(s, "0123456789") != "" {
			return 0, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil
	}
	if a == "" {
		n, ok := num(b)
		if !ok || n == 0 || size == 0 {
			return 0, 0, false, bad
		}
		n = min(n, size)
		return size - n, n, true, nil
	}
	first, ok := num(a)
	if !ok {
		return 0, 0, false, bad
	}
	last := size - 1
	if b != "" {
		if last, ok = num(b); !ok || last < first {
			return 0, 0, false, bad
		}
	}
	if first >= size {
		return 0, 0, false, refuse(http.StatusRequestedRangeNotSatisfiable, reasonRange, "range starts at or after the end of the object")
	}
	last = min(last, size-1)
	return first, last - first + 1, true, nil
}

// bearer returns the token of an "Authorization: Bearer TOKEN" header.
func bearer(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || len(token) > maxToken {
		return "", false
	}
	return token, true
}

// Package admin is the administrator's signed request to a Kalaja server
// (docs/design.md, "Server API"): the only way to delete objects from a
// repository behind `kalaja serve` or to change its retention. A request
// is a golang.org/x/mod/sumdb/note note signed with the administrator's
// Ed25519 key, which is kept offline; the server holds only the verifier
// key. The note's text is, every line ending in "\n", fields in this order:
//
//	kalaja admin request v1
//	server <server ID, 32 lowercase hex digits>
//	seq <decimal uint64, at least 1, no leading zeros>
//	expires <RFC 3339 UTC time, seconds precision>
//	retention <Nd or a Go duration>      (optional, at most one)
//	delete <kind> <name>                 (zero or more)
//
// with at least one retention or delete line. The text is canonical:
// Open accepts only the text Sign would write for the request it parses,
// so one request has exactly one text. The package is pure: it does no
// I/O and keeps no state; the server keeps the last accepted seq.
package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/kalaja/kalaja/internal/store"
)

// header is the first line of a request's text, version 1.
const header = "kalaja admin request v1"

// Bounds on a request: its signed bytes, and its delete lines (a pack's
// delete line is 77 bytes, so MaxDeletes of them fit in MaxSize).
const (
	MaxSize    = 1 << 20
	MaxDeletes = 10000
)

// Errors Open returns, wrapped with what is wrong.
var (
	// ErrSignature reports a request that is not validly signed by the
	// administrator's key: signed by another key, or altered after
	// signing.
	ErrSignature = errors.New("not signed by the administrator's key")
	// ErrMalformed reports a request whose bytes are not a note or whose
	// text is not a canonical version 1 request.
	ErrMalformed = errors.New("malformed administrator request")
)

// Request is what the administrator asks a server to do.
type Request struct {
	Server    string         // the server's ID, from State
	Seq       uint64         // must exceed every seq the server accepted before
	Expires   time.Time      // the server refuses the request after this
	Retention time.Duration  // > 0: set the server's retention to this
	Delete    []store.Handle // objects to delete
}

// Sign checks r, encodes it and signs it with s, the administrator's note
// signer (note.NewSigner of the secret key). Expires is encoded in UTC at
// seconds precision, rounded down. It fails on a request Open would
// refuse.
func (r Request) Sign(s note.Signer) ([]byte, error) {
	r.Expires = r.Expires.UTC().Truncate(time.Second)
	if err := r.check(); err != nil {
		return nil, err
	}
	msg, err := note.Sign(&note.Note{Text: r.encode()}, s)
	if err != nil {
		return nil, fmt.Errorf("sign administrator request: %w", err)
	}
	if len(msg) > MaxSize {
		return nil, fmt.Errorf("sign administrator request: %d bytes signed, more than the limit of %d", len(msg), MaxSize)
	}
	return msg, nil
}

// check validates every field of r, whose Expires is already in UTC at
// seconds precision.
func (r Request) check() error {
	switch {
	case !isServerID(r.Server):
		return fmt.Errorf("invalid server ID %q: want 32 lowercase hex digits", r.Server)
	case r.Seq == 0:
		return errors.New("invalid seq 0: sequence numbers start at 1")
	case r.Expires.Year() < 2000 || r.Expires.Year() > 9999:
		return fmt.Errorf("invalid expiry %s: want a year from 2000 to 9999", r.Expires.Format(time.RFC3339))
	case r.Retention < 0:
		return fmt.Errorf("invalid retention %v: it must be positive", r.Retention)
	case r.Retention == 0 && len(r.Delete) == 0:
		return errors.New("empty request: it sets no retention and deletes nothing")
	case len(r.Delete) > MaxDeletes:
		return fmt.Errorf("%d deletes in one request, more than the limit of %d", len(r.Delete), MaxDeletes)
	}
	seen := make(map[store.Handle]bool, len(r.Delete))
	for _, h := range r.Delete {
		if err := CheckHandle(h); err != nil {
			return err
		}
		if seen[h] {
			return fmt.Errorf("%v is deleted twice", h)
		}
		seen[h] = true
	}
	return nil
}

// encode returns r's canonical text.
func (r Request) encode() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nserver %s\nseq %d\nexpires %s\n", header, r.Server, r.Seq, r.Expires.Format(time.RFC3339))
	if r.Retention > 0 {
		fmt.Fprintf(&b, "retention %s\n", FormatRetention(r.Retention))
	}
	for _, h := range r.Delete {
		fmt.Fprintf(&b, "delete %s %s\n", h.Type, h.Name)
	}
	return b.String()
}

// Open verifies that msg is a note signed by v and parses its text as a
// request. Errors wrap ErrSignature (not signed by v, or altered) or
// ErrMalformed (everything else: too large, not a note, not the canonical
// text of a valid request), and say what is wrong. Other signatures on the
// note are ignored. Open does not check the server ID, the seq or the
// expiry against a server's state: that is the server's part.
func Open(msg []byte, v note.Verifier) (Request, error) {
	if len(msg) > MaxSize {
		return Request{}, fmt.Errorf("%w: %d bytes, more than the limit of %d", ErrMalformed, len(msg), MaxSize)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) || errors.As(err, &invalid) {
			return Request{}, fmt.Errorf("%w (the key %s): %v", ErrSignature, v.Name(), err)
		}
		return Request{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	r, err := parse(n.Text)
	if err != nil {
		return Request{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return r, nil
}

// Unverified parses the text of msg, a signed request, without checking
// any signature: for a reader that only wants to know what a request
// would delete and treats the answer as a hint it may not trust (a backup
// watching for a prune that runs meanwhile). Errors wrap ErrMalformed, for
// what Open would also find malformed.
func Unverified(msg []byte) (Request, error) {
	if len(msg) > MaxSize {
		return Request{}, fmt.Errorf("%w: %d bytes, more than the limit of %d", ErrMalformed, len(msg), MaxSize)
	}
	// A note is its text, a blank line, and signature lines; the text
	// ends in a newline and holds no blank line.
	text, _, ok := strings.Cut(string(msg), "\n\n")
	if !ok {
		return Request{}, fmt.Errorf("%w: not a signed note", ErrMalformed)
	}
	r, err := parse(text + "\n")
	if err != nil {
		return Request{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return r, nil
}

// parse reads a request's text and checks that it is canonical.
func parse(text string) (Request, error) {
	if strings.Count(text, "\n") > MaxDeletes+5 {
		return Request{}, fmt.Errorf("more than %d lines", MaxDeletes+5)
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 5 || lines[0] != header {
		return Request{}, fmt.Errorf("want a first line %q and at least four more", header)
	}
	var r Request
	var err error
	field := func(i int, name string) (string, error) {
		v, ok := strings.CutPrefix(lines[i], name+" ")
		if !ok {
			return "", fmt.Errorf("line %d: want %q", i+1, name+" ...")
		}
		return v, nil
	}
	if r.Server, err = field(1, "server"); err != nil {
		return Request{}, err
	}
	s, err := field(2, "seq")
	if err != nil {
		return Request{}, err
	}
	if r.Seq, err = strconv.ParseUint(s, 10, 64); err != nil {
		return Request{}, fmt.Errorf("line 3: invalid seq %q", s)
	}
	if s, err = field(3, "expires"); err != nil {
		return Request{}, err
	}
	if r.Expires, err = time.Parse(time.RFC3339, s); err != nil {
		return Request{}, fmt.Errorf("line 4: invalid expiry %q: want an RFC 3339 time in UTC", s)
	}
	r.Expires = r.Expires.UTC()
	rest := lines[4:]
	if s, ok := strings.CutPrefix(rest[0], "retention "); ok {
		if r.Retention, err = ParseRetention(s); err != nil {
			return Request{}, fmt.Errorf("line 5: %v", err)
		}
		rest = rest[1:]
	}
	for i, l := range rest {
		d, ok := strings.CutPrefix(l, "delete ")
		kind, name, ok2 := strings.Cut(d, " ")
		if !ok || !ok2 {
			return Request{}, fmt.Errorf("line %d: want \"delete KIND NAME\"", len(lines)-len(rest)+i+1)
		}
		r.Delete = append(r.Delete, store.Handle{Type: store.FileType(kind), Name: name})
	}
	if err := r.check(); err != nil {
		return Request{}, err
	}
	if r.encode() != text {
		return Request{}, errors.New("not in canonical form")
	}
	return r, nil
}

// CheckHandle accepts the objects a request may delete: a named object of
// a kind in store.Listable (never the config) whose name
// store.Handle.Check accepts. Its errors wrap store.ErrInvalidHandle.
func CheckHandle(h store.Handle) error {
	if err := h.Type.CheckListable(); err != nil {
		return err
	}
	return h.Check()
}

// isServerID reports whether s is 32 lowercase hex digits.
func isServerID(s string) bool {
	return len(s) == 32 && strings.Trim(s, "0123456789abcdef") == ""
}

// CheckServerID accepts a server ID: 32 lowercase hex digits.
func CheckServerID(s string) error {
	if !isServerID(s) {
		return fmt.Errorf("invalid server ID %q: want 32 lowercase hex digits", s)
	}
	return nil
}

// maxDays bounds a retention in days so that it fits a time.Duration.
const maxDays = 100000

// ParseRetention reads a retention: a number of days ("30d") or a Go
// duration ("36h"). It must be positive.
func ParseRetention(s string) (time.Duration, error) {
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 || days > maxDays || strings.Trim(n, "0123456789") != "" {
			return 0, fmt.Errorf("invalid retention %q: want a number of days such as 30d, or a Go duration such as 36h", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("invalid retention %q: want a number of days such as 30d, or a Go duration such as 36h", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("invalid retention %q: it must be positive", s)
	}
	return d, nil
}

// FormatRetention writes d as ParseRetention reads it: whole days as
// "Nd", anything else as a Go duration. It is the canonical form in a
// request.
func FormatRetention(d time.Duration) string {
	if day := 24 * time.Hour; d > 0 && d%day == 0 && d/day <= maxDays {
		return fmt.Sprintf("%dd", d/day)
	}
	return d.String()
}

// State is what a server tells anyone about its administration (GET
// /v1/admin): its ID, the last seq it accepted, its retention, and the
// administrator's verifier key ("" if none is configured). A request for
// it names Server and a Seq above Seq.
type State struct {
	Server    string
	Seq       uint64
	Retention time.Duration
	Key       string
}

type stateJSON struct {
	Server    string `json:"server"`
	Seq       uint64 `json:"seq"`
	Retention string `json:"retention"`
	Key       string `json:"key"`
}

// MarshalJSON writes {"server":..,"seq":N,"retention":"720h0m0s","key":..}.
func (s State) MarshalJSON() ([]byte, error) {
	return json.Marshal(stateJSON{Server: s.Server, Seq: s.Seq, Retention: s.Retention.String(), Key: s.Key})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *State) UnmarshalJSON(b []byte) error {
	var j stateJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	d, err := time.ParseDuration(j.Retention)
	if err != nil {
		return fmt.Errorf("administrator state: invalid retention %q", j.Retention)
	}
	*s = State{Server: j.Server, Seq: j.Seq, Retention: d, Key: j.Key}
	return nil
}

// Result is what a server did with an accepted request: the objects it
// deleted and those it kept, in the request's order.
type Result struct {
	Deleted []store.Handle
	Kept    []Kept
}

// Kept is an object a request named that the server did not delete: still
// under retention (Until is when that ends), missing, or refused by the
// store (Reason says which).
type Kept struct {
	Object store.Handle
	Reason string
	Until  time.Time
}

type resultJSON struct {
	Deleted []string   `json:"deleted"`
	Kept    []keptJSON `json:"kept"`
}

type keptJSON struct {
	Object string    `json:"object"`
	Reason string    `json:"reason"`
	Until  time.Time `json:"until,omitzero"`
}

// MarshalJSON writes {"deleted":["KIND/NAME",..],"kept":[{"object":
// "KIND/NAME","reason":..,"until":T},..]}, until omitted when zero.
func (r Result) MarshalJSON() ([]byte, error) {
	j := resultJSON{Deleted: make([]string, 0, len(r.Deleted)), Kept: make([]keptJSON, 0, len(r.Kept))}
	for _, h := range r.Deleted {
		j.Deleted = append(j.Deleted, h.String())
	}
	for _, k := range r.Kept {
		j.Kept = append(j.Kept, keptJSON{Object: k.Object.String(), Reason: k.Reason, Until: k.Until})
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes; it refuses objects that
// CheckHandle refuses.
func (r *Result) UnmarshalJSON(b []byte) error {
	var j resultJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	var out Result
	for _, s := range j.Deleted {
		h, err := ParseHandle(s)
		if err != nil {
			return err
		}
		out.Deleted = append(out.Deleted, h)
	}
	for _, k := range j.Kept {
		h, err := ParseHandle(k.Object)
		if err != nil {
			return err
		}
		out.Kept = append(out.Kept, Kept{Object: h, Reason: k.Reason, Until: k.Until})
	}
	*r = out
	return nil
}

// ParseHandle reads "KIND/NAME" (store.Handle.String), KIND may itself
// hold a slash; it refuses what CheckHandle refuses.
func ParseHandle(s string) (store.Handle, error) {
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return store.Handle{}, fmt.Errorf("invalid object %q: want KIND/NAME", s)
	}
	h := store.Handle{Type: store.FileType(s[:i]), Name: s[i+1:]}
	if err := CheckHandle(h); err != nil {
		return store.Handle{}, err
	}
	return h, nil
}

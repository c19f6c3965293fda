// Package remote is a store.Store that talks to `kalaja serve` over HTTPS
// (docs/design.md, "Server API (version 1)"). It adds and reads objects;
// a token allows nothing else, so this store has no Remove: deletions are
// requests signed with the administrator's key, sent by Admin.
//
// The server's certificate is either pinned (the exact certificate, as
// printed by kalaja serve on first start) or checked against the system's
// roots. Every request carries the host's bearer token, which never
// appears in errors. GET, HEAD and listings are retried on network errors
// and 5xx answers (the GET of an object also when its body is cut short;
// a listing cut short is an error); so is PUT, and a retried PUT answered
// 409 succeeds if the stored object is the one sent (checked by its
// SHA-256, which names content-addressed objects and is otherwise compared
// with the stored bytes). Small reads of packs, the many a restore makes,
// are served from larger aligned pieces of the pack fetched whole
// ("windows", see windowSize).
package remote

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/store"
)

// Options configure a Store.
type Options struct {
	// Token is the host's bearer token. Required.
	Token string
	// PinnedCert, if set, holds the server's certificate in PEM: the
	// server must present exactly this certificate (its names and dates
	// are not checked). Otherwise the certificate must chain to RootCAs.
	PinnedCert []byte
	// RootCAs are the roots for a certificate that is not pinned; nil
	// means the system's.
	RootCAs *x509.CertPool
	// TempDir holds objects being staged, as unlinked files; empty means
	// the system's temporary directory.
	TempDir string
	// Attempts is how often a request is tried; 0 means 4.
	Attempts int
	// Backoff is the wait before the first retry, doubled for each next
	// one; 0 means 250 ms.
	Backoff time.Duration
}

// Store is a repository behind a Kalaja server. It is safe for concurrent
// use.
type Store struct {
	base     *url.URL
	location string
	token    string
	client   *http.Client
	tempDir  string
	attempts int
	backoff  time.Duration
	packs    windows // of small reads of packs
}

var (
	_ store.Store  = (*Store)(nil)
	_ store.Stager = (*Store)(nil)
)

// IsLocation reports whether s is meant as a server location: it starts
// with "https://". ParseLocation says whether it is a valid one.
func IsLocation(s string) bool { return strings.HasPrefix(s, "https://") }

// ParseLocation parses https://HOST[:PORT][/PREFIX], the location of a
// server whose API lives under PREFIX/v1/. Its errors do not repeat s,
// which could hold a secret pasted by mistake.
func ParseLocation(s string) (*url.URL, error) {
	if !IsLocation(s) {
		return nil, errors.New(`invalid server location: it must start with "https://"`)
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return nil, errors.New("invalid server location: not a URL")
	case u.User != nil:
		return nil, errors.New("invalid server location: credentials do not belong in it; set KALAJA_SERVER_TOKEN_FILE or KALAJA_SERVER_TOKEN")
	case u.Host == "" || u.Opaque != "":
		return nil, errors.New("invalid server location: no host")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(s, "?#"):
		return nil, errors.New("invalid server location: it has a query or fragment")
	case u.RawPath != "":
		return nil, errors.New("invalid server location: escaped characters in the path")
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

// Open connects to the server at location (see ParseLocation) and checks
// that it holds a repository: without one it returns an error wrapping
// blob.ErrNotFound.
func Open(ctx context.Context, location string, opts Options) (*Store, error) {
	s, err := New(location, opts)
	if err != nil {
		return nil, err
	}
	if _, err := s.Stat(ctx, store.Handle{Type: store.Config}); err != nil {
		if errors.Is(err, blob.ErrNotFound) {
			return nil, fmt.Errorf("no repository at %s: %w", s.location, blob.ErrNotFound)
		}
		return nil, fmt.Errorf("open repository at %s: %w", s.location, err)
	}
	return s, nil
}

// Create connects to the server at location for a new repository: it
// fails if the server already holds one.
func Create(ctx context.Context, location string, opts Options) (*Store, error) {
	s, err := New(location, opts)
	if err != nil {
		return nil, err
	}
	_, err = s.Stat(ctx, store.Handle{Type: store.Config})
	switch {
	case err == nil:
		return nil, fmt.Errorf("create repository at %s: a repository already exists there", s.location)
	case !errors.Is(err, blob.ErrNotFound):
		return nil, fmt.Errorf("create repository at %s: %w", s.location, err)
	}
	return s, nil
}

// New returns a store for the server at location without contacting it.
func New(location string, opts Options) (*Store, error) {
	base, err := ParseLocation(location)
	if err != nil {
		return nil, err
	}
	if opts.Token == "" {
		return nil, errors.New("no token for the server")
	}
	if strings.ContainsAny(opts.Token, " \t\r\n") {
		return nil, errors.New("invalid token for the server: it contains white space")
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: opts.RootCAs}
	if opts.PinnedCert != nil {
		pinned, err := parseCert(opts.PinnedCert)
		if err != nil {
			return nil, err
		}
		// The chain and names are not verified: the pin is the trust,
		// and VerifyConnection accepts only the pinned certificate.
		tc.InsecureSkipVerify = true
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, pinned) {
				return errNotPinned
			}
			return nil
		}
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tc,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: 5 * time.Minute,
	}
	// HTTP/1.1, one connection per request in flight: uploads of 16 MiB
	// packs stream through TLS records without HTTP/2's frames and flow
	// control windows, which cost backups through a server a noticeable
	// share of their throughput (docs/measurements.md, "Server protocol").
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetHTTP1(true)
	s := &Store{base: base, location: base.String(), token: opts.Token, client: &http.Client{Transport: tr},
		tempDir: opts.TempDir, attempts: opts.Attempts, backoff: opts.Backoff}
	if s.attempts <= 0 {
		s.attempts = 4
	}
	if s.backoff <= 0 {
		s.backoff = 250 * time.Millisecond
	}
	return s, nil
}

// errNotPinned reports a server that presented another certificate than
// the pinned one.
var errNotPinned = errors.New("the server's certificate is not the pinned one")

// parseCert returns the DER bytes of the one certificate in PEM.
func parseCert(b []byte) ([]byte, error) {
	block, rest := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("pinned certificate: want one PEM CERTIFICATE block")
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return nil, fmt.Errorf("pinned certificate: %w", err)
	}
	return block.Bytes, nil
}

// Location returns the server's URL.
func (s *Store) Location() string { return s.location }

// url returns the URL of object h, or of the listing of a kind when
// h.Name is empty.
func (s *Store) url(h store.Handle) string {
	p := "/v1/config"
	if h.Type != store.Config {
		p = "/v1/" + string(h.Type) + "/" + h.Name
	}
	return s.base.Scheme + "://" + s.base.Host + s.base.Path + p
}

// statusError is a failed request: the server's status and message.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string {
	if e.msg == "" {
		return http.StatusText(e.status)
	}
	return fmt.Sprintf("%s (%d %s)", e.msg, e.status, http.StatusText(e.status))
}

// retryable reports whether a request that failed with err may succeed
// when tried again.
func retryable(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		return se.status >= 500 && se.status != http.StatusInsufficientStorage && se.status != http.StatusNotImplemented
	}
	var ve *tls.CertificateVerificationError
	return !errors.As(err, &ve) && !errors.Is(err, errNotPinned) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// do sends one request built by newReq, retrying as the package doc says,
// and returns the response of the first attempt that got one with a
// status below 500. attempt is the number of the attempt that got it,
// from 1. The caller closes the body.
func (s *Store) do(ctx context.Context, newReq func() (*http.Request, error)) (resp *http.Response, attempt int, err error) {
	wait := s.backoff
	for attempt = 1; ; attempt++ {
		resp, err = s.try(ctx, newReq)
		if err == nil || attempt == s.attempts || !retryable(err) {
			return resp, attempt, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, attempt, ctx.Err()
		case <-t.C:
		}
		wait *= 2
	}
}

func (s *Store) try(ctx context.Context, newReq func() (*http.Request, error)) (*http.Response, error) {
	req, err := newReq()
	if err != nil {
		return nil, err
	}
	req = req.WithContext(ctx)
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is said by the caller's message
		}
		return nil, err
	}
	if resp.StatusCode >= 500 {
		return nil, readStatus(resp)
	}
	return resp, nil
}

// readStatus reads a failed response's message and closes its body.
func readStatus(resp *http.Response) error {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	msg := strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, strings.TrimSpace(string(b)))
	if resp.Request != nil && resp.Request.Method == http.MethodHead {
		msg = ""
	}
	return &statusError{status: resp.StatusCode, msg: msg}
}

// fail maps a failed response or error to the store's errors, naming the
// operation, the object and the server.
func (s *Store) fail(op string, h store.Handle, resp *http.Response, err error) error {
	if resp != nil {
		err = readStatus(resp)
	}
	var se *statusError
	if errors.As(err, &se) {
		switch se.status {
		case http.StatusNotFound:
			err = fmt.Errorf("%w (%s)", blob.ErrNotFound, se.msg)
			if se.msg == "" {
				err = blob.ErrNotFound
			}
		case http.StatusConflict:
			err = store.ErrExists
		case http.StatusUnauthorized:
			err = fmt.Errorf("the server refused the token: %w", se)
		}
	}
	return fmt.Errorf("%s %v at %s: %w", op, h, s.location, err)
}

// Save implements store.Saver.
func (s *Store) Save(ctx context.Context, h store.Handle, data []byte) error {
	if err := h.Check(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	return s.put(ctx, h, int64(len(data)), sum, func() io.Reader { return bytes.NewReader(data) })
}

// put creates object h from the size bytes body returns, whose SHA-256 is
// sum. body is called once per attempt.
func (s *Store) put(ctx context.Context, h store.Handle, size int64, sum [sha256.Size]byte, body func() io.Reader) error {
	resp, attempt, err := s.do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodPut, s.url(h), body())
		if err != nil {
			return nil, err
		}
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		return req, nil
	})
	if err == nil && resp.StatusCode == http.StatusCreated {
		resp.Body.Close()
		return nil
	}
	err = s.fail("save", h, resp, err)
	if attempt > 1 && errors.Is(err, store.ErrExists) {
		// An earlier attempt may have stored the object and lost the
		// answer: then the object is ours.
		if same, cerr := s.holds(ctx, h, sum); cerr == nil && same {
			return nil
		}
	}
	return err
}

// holds reports whether object h has SHA-256 sum: for content-addressed
// names that is the name, otherwise the stored bytes are read.
func (s *Store) holds(ctx context.Context, h store.Handle, sum [sha256.Size]byte) (bool, error) {
	if id, err := blob.ParseID(h.Name); err == nil && h.Type.ContentAddressed() {
		// The server refuses these unless their bytes hash to the name.
		return id == blob.ID(sum), nil
	}
	resp, err := s.get(ctx, "read", h, "")
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	hash := sha256.New()
	if _, err := io.Copy(hash, resp.Body); err != nil {
		return false, err
	}
	return bytes.Equal(hash.Sum(nil), sum[:]), nil
}

// get sends a GET of h with an optional Range and returns a 2xx response;
// op names the operation in errors.
func (s *Store) get(ctx context.Context, op string, h store.Handle, rng string) (*http.Response, error) {
	resp, _, err := s.do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodGet, s.url(h), nil)
		if err == nil && rng != "" {
			req.Header.Set("Range", rng)
		}
		return req, err
	})
	if err == nil && resp.StatusCode/100 == 2 {
		return resp, nil
	}
	if err == nil && resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
		resp.Body.Close()
		return nil, fmt.Errorf("%s %v at %s: %w", op, h, s.location, io.ErrUnexpectedEOF)
	}
	return nil, s.fail(op, h, resp, err)
}

// maxObject bounds the size Load believes a server, the largest pack the
// format allows (2 GiB).
const maxObject = 1 << 31

// Load implements store.Loader.
func (s *Store) Load(ctx context.Context, h store.Handle) ([]byte, error) {
	if err := h.Check(); err != nil {
		return nil, err
	}
	for n := 1; ; n++ {
		resp, err := s.get(ctx, "load", h, "")
		if err != nil {
			return nil, err
		}
		if resp.ContentLength < 0 || resp.ContentLength > maxObject {
			resp.Body.Close()
			return nil, fmt.Errorf("load %v at %s: missing or implausible Content-Length %d", h, s.location, resp.ContentLength)
		}
		b := make([]byte, resp.ContentLength)
		_, err = io.ReadFull(resp.Body, b)
		resp.Body.Close()
		if err == nil {
			return b, nil
		}
		if !s.again(ctx, n, err) {
			return nil, fmt.Errorf("read %v at %s: %w", h, s.location, err)
		}
	}
}

// again reports whether a GET whose answer's body failed with err on try
// n (from 1), after a response had arrived, is sent again: as do, up to
// s.attempts tries, after doubling waits.
func (s *Store) again(ctx context.Context, n int, err error) bool {
	if n >= s.attempts || !retryable(err) {
		return false
	}
	t := time.NewTimer(s.backoff << (n - 1))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// ReadAt implements store.Loader. A read of a pack of at most
// windowedRead bytes is served from the windows of the pack that hold
// those bytes (see windowSize), fetched if missing; a larger one takes
// from kept windows the bytes they hold at its ends.
func (s *Store) ReadAt(ctx context.Context, h store.Handle, p []byte, off int64) error {
	if err := h.Check(); err != nil {
		return err
	}
	if off < 0 {
		return fmt.Errorf("read %v at %d: negative offset", h, off)
	}
	if len(p) == 0 {
		fi, err := s.Stat(ctx, h)
		if err != nil {
			return err
		}
		if off > fi.Size {
			return fmt.Errorf("read %v at %d: %w", h, off, io.ErrUnexpectedEOF)
		}
		return nil
	}
	if h.Type != store.Packs {
		_, err := s.readRange(ctx, h, p, off, false)
		return err
	}
	if len(p) <= windowedRead {
		return s.packs.readAt(ctx, h, p, off, func(ctx context.Context, p []byte, off int64) (int, error) {
			return s.readRange(ctx, h, p, off, true)
		})
	}
	return s.packs.readAround(ctx, h, p, off, func(ctx context.Context, p []byte, off int64) (int, error) {
		return s.readRange(ctx, h, p, off, false)
	})
}

// readRange fills p from object h at off with one range request, retried
// as the package doc says, and returns how many bytes it read. Where the
// object ends before off + len(p), a short read is an error wrapping
// io.ErrUnexpectedEOF, unless short allows it; a range that starts at or
// after the end is that error either way.
func (s *Store) readRange(ctx context.Context, h store.Handle, p []byte, off int64, short bool) (int, error) {
	for n := 1; ; n++ {
		resp, err := s.get(ctx, "read", h, fmt.Sprintf("bytes=%d-%d", off, off+int64(len(p))-1))
		if err != nil {
			return 0, err
		}
		size := resp.ContentLength
		if resp.StatusCode != http.StatusPartialContent || size < 0 || size > int64(len(p)) {
			resp.Body.Close()
			return 0, fmt.Errorf("read %v at %s: unexpected answer to a range request (%s, %d bytes)", h, s.location, resp.Status, size)
		}
		if size < int64(len(p)) && !short {
			resp.Body.Close()
			return 0, fmt.Errorf("read %v at %d: %w", h, off, io.ErrUnexpectedEOF)
		}
		_, err = io.ReadFull(resp.Body, p[:size])
		resp.Body.Close()
		if err == nil {
			return int(size), nil
		}
		if !s.again(ctx, n, err) {
			return 0, fmt.Errorf("read %v at %d from %s: %w", h, off, s.location, err)
		}
	}
}

// Stat implements store.Lister.
func (s *Store) Stat(ctx context.Context, h store.Handle) (store.FileInfo, error) {
	if err := h.Check(); err != nil {
		return store.FileInfo{}, err
	}
	resp, _, err := s.do(ctx, func() (*http.Request, error) {
		return http.NewRequest(http.MethodHead, s.url(h), nil)
	})
	if err != nil || resp.StatusCode != http.StatusOK {
		return store.FileInfo{}, s.fail("stat", h, resp, err)
	}
	resp.Body.Close()
	size, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	if err != nil || size < 0 {
		return store.FileInfo{}, fmt.Errorf("stat %v at %s: no valid Content-Length", h, s.location)
	}
	stamp, err := parseStamp(resp.Header)
	if err != nil {
		return store.FileInfo{}, fmt.Errorf("stat %v at %s: %w", h, s.location, err)
	}
	return store.FileInfo{Name: h.Name, Size: size, Stamp: stamp}, nil
}

// parseStamp reads the server's stamp of an object from a HEAD answer:
// Kalaja-Stamp (RFC 3339, nanoseconds), else Last-Modified (seconds);
// zero without either.
func parseStamp(hdr http.Header) (time.Time, error) {
	if v := hdr.Get("Kalaja-Stamp"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return time.Time{}, errors.New("malformed Kalaja-Stamp header")
		}
		return t, nil
	}
	if v := hdr.Get("Last-Modified"); v != "" {
		t, err := http.ParseTime(v)
		if err != nil {
			return time.Time{}, errors.New("malformed Last-Modified header")
		}
		return t, nil
	}
	return time.Time{}, nil
}

// maxListLine bounds one line of a listing.
const maxListLine = 4096

// List implements store.Lister. A listing cut short (the server failed
// while sending it) is an error; it is not retried once fn was called.
func (s *Store) List(ctx context.Context, t store.FileType, fn func(store.FileInfo) error) error {
	if err := t.CheckListable(); err != nil {
		return fmt.Errorf("list: %w", err)
	}
	resp, err := s.get(ctx, "list", store.Handle{Type: t}, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 512), maxListLine)
	for sc.Scan() {
		var e struct {
			Name string    `json:"name"`
			Size int64     `json:"size"`
			Time time.Time `json:"time"` // the server's stamp
			Host string    `json:"host"` // the host whose token stored it
			End  bool      `json:"end"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("list %s at %s: malformed answer: %w", t, s.location, err)
		}
		if e.End {
			return nil
		}
		if e.Size < 0 {
			return fmt.Errorf("list %s at %s: malformed entry %q", t, s.location, e.Name)
		}
		if (store.Handle{Type: t, Name: e.Name}).Check() != nil {
			// Not an object of the repository (store.Lister): a stray
			// file in the backend of a server that lists it.
			continue
		}
		if err := fn(store.FileInfo{Name: e.Name, Size: e.Size, Stamp: e.Time, Host: e.Host}); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("list %s at %s: %w", t, s.location, err)
	}
	return fmt.Errorf("list %s at %s: the listing was cut short", t, s.location)
}

// Stage implements store.Stager: the object is written to an unlinked
// temporary file, hashed on the way, and uploaded by Commit.
func (s *Store) Stage(t store.FileType) (store.Staged, error) {
	if err := t.Check(); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(s.tempDir, "kalaja-stage-*")
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", t, err)
	}
	if err := os.Remove(f.Name()); err != nil {
		_ = f.Close() // the remove error is the one to report
		return nil, fmt.Errorf("stage %s: %w", t, err)
	}
	st := &staged{s: s, t: t, f: f}
	if !t.ContentAddressed() {
		st.hash = sha256.New()
	}
	return st, nil
}

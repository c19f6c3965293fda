// Package server is the append-only HTTPS gateway of `kalaja serve`: an
// http.Handler over a store.Store that lets hosts holding a bearer token
// add and read objects, and nothing else. The API (version 1, under
// /v1/) is specified in docs/design.md, "Server API (version 1)":
//
//	PUT  /v1/KIND/NAME   create an object; 409 if the name exists
//	GET  /v1/KIND/NAME   read it, whole or one Range
//	HEAD /v1/KIND/NAME   its size
//	GET  /v1/KIND/       list KIND as JSON lines
//	/v1/config           the configuration object (no listing)
//	GET  /v1/admin       the administrator state (no token)
//	POST /v1/admin       a request signed with the administrator's key
//	POST /v1/events      a host's watcher events: heartbeats, alerts (package fleet)
//	GET  /metrics        Prometheus metrics (no token)
//
// A host's token cannot delete or replace an object: only a request
// signed with the offline administrator's key (package admin) deletes,
// and only objects whose retention, counted from the backend's stamp,
// has ended. Objects of the
// content-addressed kinds (data, index, snapshots) are hashed while they
// stream in and refused unless their name is the SHA-256 of their bytes.
// Bodies are bounded per kind, hosts per quota. On a backend that locks
// objects for a retention of its own (S3 Object Lock), Renew and
// RenewEvery extend that lock for every object but those a signed request
// asked to delete. Requests are logged through an injected slog.Logger,
// never with their token.
package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/fleet"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/store"
)

// Limits on the body of a PUT, by kind: packs are written at 16 MiB;
// index files and ledger batches grow with the number of blobs and packs
// one backup stores; the other kinds are a few KiB.
var limits = map[store.FileType]int64{
	store.Config:            4 << 20,
	store.Keys:              4 << 20,
	store.Packs:             64 << 20,
	store.Index:             64 << 20,
	store.Snapshots:         16 << 20,
	store.LedgerEntries:     64 << 20,
	store.LedgerTiles:       4 << 20,
	store.LedgerCheckpoints: 4 << 20,
	store.LedgerWitness:     4 << 20,
	store.LedgerKeys:        4 << 20,
	store.LedgerRemovals:    2 << 20,
}

// readChunk is how much of an object a GET reads from the store at once.
const readChunk = 1 << 20

// Options configure a Server.
type Options struct {
	// Store holds the repository. Required. If it also implements
	// store.Stager, uploads are staged there instead of in memory.
	Store store.Store
	// Tokens authenticate hosts. Required.
	Tokens *Tokens
	// UsageFile persists per-host counters (bytes stored, last snapshot);
	// empty keeps them in memory only.
	UsageFile string
	// OwnersFile persists which host created each snapshot (owners.go),
	// SERVER-DIR/owners; empty keeps it in memory only.
	OwnersFile string
	// Quota bounds the bytes each host may create; 0 means no limit.
	Quota int64
	// Logger receives one record per request; nil discards them.
	Logger *slog.Logger
	// Now is the clock of snapshot times, of the expiry of administrator
	// requests and of retention; nil means time.Now.
	Now func() time.Time
	// AdminFile persists the administrator state (server ID, last
	// accepted seq, retention), SERVER-DIR/admin.json; it is created, with
	// a new random server ID, if missing. Empty keeps the state in memory.
	AdminFile string
	// AdminKeyFile holds the administrator's note verifier key,
	// SERVER-DIR/admin.pub; AdminKey is stored there if it holds none.
	AdminKeyFile string
	// AdminKey is the administrator's note verifier key given at start;
	// if AdminKeyFile holds a key, it must be the same. Empty: the key in
	// AdminKeyFile, if any; without a key every signed request is refused.
	AdminKey string
	// Retention is the retention a new AdminFile starts with; 0 means
	// DefaultRetention. If AdminFile exists with another retention, New
	// fails: only a signed request changes it.
	Retention time.Duration
	// CondemnedFile persists the objects signed requests asked to delete
	// that the backend kept, whose retention Renew does not extend,
	// SERVER-DIR/condemned. Empty keeps them in memory only.
	CondemnedFile string
	// SkipContentChecks stores objects without looking at their bytes:
	// objects of content-addressed kinds without checking that their name
	// is the SHA-256 of their bytes (the name must still be 64 lowercase
	// hex digits, store.Handle.Check), and ledger batches without checking
	// them (ledger.BatchChecker). Only for running the store conformance
	// suite, whose objects are neither, through a server.
	SkipContentChecks bool
	// Fleet is the vault's state of its hosts: POST /v1/events applies to
	// it, Run ticks it, and every scrape of /metrics reads the fleet
	// metrics (kalaja_fleet_*) from it. Nil: /v1/events is 404, Run returns
	// at once, and there are no fleet metrics.
	Fleet *fleet.State
	// TickEvery is how often Run calls Fleet.Tick (default 5 s);
	// SurveyEvery how often it measures the storage (default 1 h);
	// VerifyEvery how often it verifies the ledger (default 6 h; negative:
	// never).
	TickEvery, SurveyEvery, VerifyEvery time.Duration
	// Dashboard serves the pages under /dashboard/ to dashboard
	// credentials, which the server authenticates; it sees the path
	// without "/dashboard". Nil: /dashboard/ is 404.
	Dashboard http.Handler
}

// Server is the HTTP handler of API version 1. It is safe for concurrent
// use.
type Server struct {
	st          store.Store
	stager      store.Stager // nil: stage in memory
	tokens      *Tokens
	quota       int64
	log         *slog.Logger
	now         func() time.Time
	skipContent bool
	usage       *usage
	owners      *owners
	adm         *administration
	condemned   *condemned
	m           *metrics
	metricsOK   http.Handler
	dashboard   http.Handler
	chunks      sync.Pool // of *[readChunk]byte, the buffers of GETs

	fleet                               *fleet.State
	tickEvery, surveyEvery, verifyEvery time.Duration
}

var _ http.Handler = (*Server)(nil)

// New returns a server over o.Store. It reads the usage file and the
// administrator state and key, creating them on first start.
func New(o Options) (*Server, error) {
	if o.Store == nil || o.Tokens == nil {
		return nil, errors.New("new server: a store and tokens are required")
	}
	u, err := loadUsage(o.UsageFile)
	if err != nil {
		return nil, err
	}
	own, err := loadOwners(o.OwnersFile)
	if err != nil {
		return nil, err
	}
	adm, err := loadAdmin(o)
	if err != nil {
		return nil, err
	}
	cond, err := loadCondemned(o.CondemnedFile)
	if err != nil {
		return nil, err
	}
	s := &Server{st: o.Store, tokens: o.Tokens, quota: o.Quota, log: o.Logger, now: o.Now,
		skipContent: o.SkipContentChecks, dashboard: o.Dashboard, usage: u, owners: own, adm: adm, condemned: cond, m: newMetrics(),
		chunks: sync.Pool{New: func() any { return new([readChunk]byte) }},
		fleet:  o.Fleet, tickEvery: o.TickEvery, surveyEvery: o.SurveyEvery, verifyEvery: o.VerifyEvery}
	if s.tickEvery <= 0 {
		s.tickEvery = 5 * time.Second
	}
	if s.surveyEvery <= 0 {
		s.surveyEvery = time.Hour
	}
	if s.verifyEvery == 0 {
		s.verifyEvery = 6 * time.Hour
	}
	s.stager, _ = o.Store.(store.Stager)
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	for h, hu := range u.all() {
		s.m.host(h, hu)
	}
	if o.Fleet != nil {
		s.m.reg.MustRegister(newFleetCollector(o.Fleet))
	}
	s.metricsOK = s.m.handler()
	return s, nil
}

// Count lists the store to set the object and byte gauges; call it once,
// before serving. It costs one listing of every kind.
func (s *Server) Count(ctx context.Context) error {
	kinds := append([]store.FileType{store.Config}, store.Listable...)
	for _, t := range kinds {
		var n, size int64
		var err error
		if t == store.Config {
			var fi store.FileInfo
			if fi, err = s.st.Stat(ctx, store.Handle{Type: t}); err == nil {
				n, size = 1, fi.Size
			} else if errors.Is(err, blob.ErrNotFound) {
				err = nil
			}
		} else {
			err = s.st.List(ctx, t, func(fi store.FileInfo) error {
				n++
				size += fi.Size
				return nil
			})
		}
		if err != nil {
			return fmt.Errorf("count objects: %w", err)
		}
		s.m.objects.WithLabelValues(string(t)).Set(float64(n))
		s.m.bytes.WithLabelValues(string(t)).Set(float64(size))
	}
	return nil
}

// recorder remembers the status and body size of a response for the log.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/metrics" {
		s.metricsOK.ServeHTTP(w, r)
		return
	}
	rec := &recorder{ResponseWriter: w}
	var host string
	var req request
	var err error
	kind := ""
	if r.URL.EscapedPath() == adminPath {
		// The signature authenticates a request, not a token.
		kind = "admin"
		if err = s.refuseDashboardCredential(r); err == nil {
			err = s.serveAdmin(r.Context(), rec, r)
		}
	} else if r.URL.EscapedPath() == eventsPath {
		kind = "events"
		host, err = s.serveEvents(r.Context(), rec, r)
	} else if isDashboard(r.URL.Path) {
		kind, req.h.Name = "dashboard", strings.TrimPrefix(r.URL.Path, dashboardPath)
		host, err = s.serveDashboard(rec, r)
	} else if host, req, err = s.route(r); err == nil {
		kind = string(req.h.Type)
		err = s.serve(r.Context(), rec, r, host, req)
	}
	var ref *refusal
	switch {
	case err == nil:
	case errors.As(err, &ref):
		s.m.refused.WithLabelValues(ref.reason).Inc()
		if ref.status == http.StatusUnauthorized && kind == "dashboard" {
			w.Header().Set("WWW-Authenticate", dashboardRealm)
		} else if ref.status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kalaja"`)
		}
		if ref.status == http.StatusMethodNotAllowed {
			allow := "GET, HEAD, PUT"
			switch kind {
			case "admin":
				allow = "GET, POST"
			case "events":
				allow = "POST"
			}
			w.Header().Set("Allow", allow)
		}
		writeError(rec, ref.status, ref.msg)
	case rec.status != 0:
		// The response has started: all that can be done is to cut it,
		// which the client sees as a short body.
	case errors.Is(err, blob.ErrNotFound):
		writeError(rec, http.StatusNotFound, "no such object")
	case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT):
		s.m.refused.WithLabelValues(reasonFull).Inc()
		s.log.Error("storage full", "host", host, "object", req.h.String(), "err", err)
		writeError(rec, http.StatusInsufficientStorage, "the server's storage is full")
	default:
		s.log.Error("request failed", "host", host, "method", r.Method, "object", req.h.String(), "err", err)
		writeError(rec, http.StatusInternalServerError, "internal error: see the server's log")
	}
	level := slog.LevelInfo
	if rec.status >= 400 && rec.status != http.StatusNotFound {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{slog.String("host", host), slog.String("method", r.Method),
		slog.String("kind", kind), slog.String("name", req.h.Name),
		slog.Int("status", rec.status), slog.Int64("bytes", rec.bytes)}
	if ref != nil {
		attrs = append(attrs, slog.String("reason", ref.reason), slog.String("remote", r.RemoteAddr))
	}
	s.log.LogAttrs(r.Context(), level, "request", attrs...)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	// A failed write means the client went away: the status is sent and
	// the request logged, nothing is left to tell anyone.
	_, _ = io.WriteString(w, msg+"\n")
}

// route authenticates r and parses its path. The host is "" when the
// token was not accepted.
func (s *Server) route(r *http.Request) (string, request, error) {
	host, err := s.authenticate(r)
	if err != nil {
		return "", request{}, err
	}
	req, err := parseRequest(r.Method, r.URL.EscapedPath())
	return host, req, err
}

// authenticate returns the host whose bearer token r carries. A dashboard
// credential, presented either way, is refused with 403; a host's token
// presented as HTTP Basic, with 401.
func (s *Server) authenticate(r *http.Request) (string, error) {
	c, p, err := s.lookup(r)
	if err != nil {
		return "", err
	}
	if c.Role == RoleDashboard {
		return "", refuse(http.StatusForbidden, reasonForbidden, "a dashboard credential cannot use the API")
	}
	if p.basic {
		return "", refuse(http.StatusUnauthorized, reasonUnauthorized, "missing or malformed bearer token")
	}
	return c.Name, nil
}

func (s *Server) serve(ctx context.Context, w http.ResponseWriter, r *http.Request, host string, req request) error {
	switch req.op {
	case opPut:
		return s.put(ctx, w, r, host, req.h)
	case opHead:
		fi, err := s.st.Stat(ctx, req.h)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Length", fmt.Sprint(fi.Size))
		w.Header().Set("Accept-Ranges", "bytes")
		if !fi.Stamp.IsZero() {
			w.Header().Set("Last-Modified", fi.Stamp.UTC().Format(http.TimeFormat))
			w.Header().Set(StampHeader, fi.Stamp.UTC().Format(time.RFC3339Nano))
		}
		w.WriteHeader(http.StatusOK)
		return nil
	case opGet:
		return s.get(ctx, w, r, req.h)
	default:
		return s.list(ctx, w, req.h.Type)
	}
}

// get sends an object, or the one range the request asks for.
func (s *Server) get(ctx context.Context, w http.ResponseWriter, r *http.Request, h store.Handle) error {
	fi, err := s.st.Stat(ctx, h)
	if err != nil {
		return err
	}
	start, n, ranged, err := parseRange(r.Header.Get("Range"), fi.Size)
	if err != nil {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", fi.Size))
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", fmt.Sprint(n))
	w.Header().Set("Accept-Ranges", "bytes")
	// The first piece is read before the header is written, so that a
	// failure to read is still an error status.
	chunk := s.chunks.Get().(*[readChunk]byte)
	defer s.chunks.Put(chunk)
	buf := chunk[:min(n, readChunk)]
	if err := s.st.ReadAt(ctx, h, buf, start); err != nil {
		return err
	}
	if ranged {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+n-1, fi.Size))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.WriteHeader(http.StatusOK)
	}
	for off := start; ; {
		if _, err := w.Write(buf); err != nil {
			return nil // the client went away
		}
		off += int64(len(buf))
		left := start + n - off
		if left == 0 {
			return nil
		}
		buf = buf[:min(left, readChunk)]
		if err := s.st.ReadAt(ctx, h, buf, off); err != nil {
			return err
		}
	}
}

// StampHeader is the header of a HEAD answer that carries the backend's
// stamp of the object (store.FileInfo.Stamp), in RFC 3339 with
// nanoseconds, UTC.
const StampHeader = "Kalaja-Stamp"

// listEntry is one line of a listing; the last line is {"end":true}. Time
// is the backend's stamp, omitted if it has none; Host, for a snapshot,
// the host whose token stored it, omitted if unknown.
type listEntry struct {
	Name string    `json:"name,omitempty"`
	Size int64     `json:"size,omitempty"`
	Time time.Time `json:"time,omitzero"`
	Host string    `json:"host,omitempty"`
	End  bool      `json:"end,omitempty"`
}

func (s *Server) list(ctx context.Context, w http.ResponseWriter, t store.FileType) error {
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	err := s.st.List(ctx, t, func(fi store.FileInfo) error {
		e := listEntry{Name: fi.Name, Size: fi.Size, Time: fi.Stamp.UTC()}
		if t == store.Snapshots {
			e.Host = s.owners.of(fi.Name)
		}
		return enc.Encode(e)
	})
	if err != nil {
		return err
	}
	return enc.Encode(listEntry{End: true})
}

// put creates an object from the request's body.
func (s *Server) put(ctx context.Context, w http.ResponseWriter, r *http.Request, host string, h store.Handle) error {
	size := r.ContentLength
	switch {
	case size < 0:
		return refuse(http.StatusLengthRequired, reasonLength, "a Content-Length is required")
	case size > limits[h.Type]:
		return refuse(http.StatusRequestEntityTooLarge, reasonTooLarge, "%s objects are limited to %d bytes", h.Type, limits[h.Type])
	}
	// An existing object is refused before its replacement is read; the
	// store's Save or Commit refuses it again if it appears meanwhile.
	if _, err := s.st.Stat(ctx, h); err == nil {
		return refuse(http.StatusConflict, reasonExists, "%v already exists", h)
	} else if !errors.Is(err, blob.ErrNotFound) {
		return err
	}
	if !s.usage.reserve(host, size, s.quota) {
		return refuse(http.StatusInsufficientStorage, reasonQuota, "host %s would exceed its quota of %d bytes", host, s.quota)
	}
	stored := false
	defer func() {
		if !stored {
			s.usage.release(host, size)
		}
	}()
	sum := sha256.New()
	body := io.TeeReader(io.LimitReader(r.Body, size), sum)
	var batch *ledger.BatchChecker // a host's ledger batch must be valid, without vault records
	if h.Type == store.LedgerEntries && !s.skipContent {
		batch = ledger.NewBatchChecker(h.Name)
		body = io.TeeReader(body, batch)
	}
	var err error
	if s.stager != nil && h.Type != store.Config {
		err = s.stage(ctx, h, body, size, sum, batch)
	} else {
		err = s.save(ctx, h, body, size, sum, batch)
	}
	if errors.Is(err, store.ErrExists) {
		return refuse(http.StatusConflict, reasonExists, "%v already exists", h)
	}
	if err != nil {
		return err
	}
	stored = true
	var snap time.Time
	if h.Type == store.Snapshots {
		snap = s.now()
		if id, err := blob.ParseID(h.Name); err == nil {
			if err := s.owners.add(id, host); err != nil {
				// The snapshot is stored; forget will group it by the
				// host it claims.
				s.log.Error("record the owner", "err", err)
			}
		}
	}
	hu, err := s.usage.commit(host, size, snap)
	s.m.host(host, hu)
	s.m.objects.WithLabelValues(string(h.Type)).Inc()
	s.m.bytes.WithLabelValues(string(h.Type)).Add(float64(size))
	if err != nil {
		// The object is stored; only the counters may be behind.
		s.log.Error("persist usage", "err", err)
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}

// checkBody checks that body gave size bytes whose SHA-256 is the name
// of a content-addressed object, and that a ledger batch is one readers
// accept, without a record of a kind only the server writes.
func (s *Server) checkBody(h store.Handle, n, size int64, sum hash.Hash, batch *ledger.BatchChecker) error {
	if n != size {
		return refuse(http.StatusBadRequest, reasonBadRequest, "the body has %d of %d bytes", n, size)
	}
	if err := batchRefusal(batch); err != nil {
		return err
	}
	if h.Type.ContentAddressed() && !s.skipContent && hex.EncodeToString(sum.Sum(nil)) != h.Name {
		return refuse(http.StatusUnprocessableEntity, reasonHash, "the SHA-256 of the body is not the name %s", h.Name)
	}
	return nil
}

// stage streams the body into the store's staging area. Config, which has
// no name to commit under, is saved from memory instead.
func (s *Server) stage(ctx context.Context, h store.Handle, body io.Reader, size int64, sum hash.Hash, batch *ledger.BatchChecker) error {
	st, err := s.stager.Stage(h.Type)
	if err != nil {
		return err
	}
	rb := &readErr{r: body}
	n, err := io.Copy(st, rb)
	if err != nil {
		st.Abort()
		if rb.err != nil {
			return refuse(http.StatusBadRequest, reasonBadRequest, "read body: %v", rb.err)
		}
		return fmt.Errorf("stage %v: %w", h, err)
	}
	if err := s.checkBody(h, n, size, sum, batch); err != nil {
		st.Abort()
		return err
	}
	return st.Commit(ctx, h.Name)
}

// readErr remembers the error of its reader, so that a failed copy can
// tell the client's broken body from the server's failed write.
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// save reads the body into memory and saves it.
func (s *Server) save(ctx context.Context, h store.Handle, body io.Reader, size int64, sum hash.Hash, batch *ledger.BatchChecker) error {
	buf := make([]byte, size)
	n, err := io.ReadFull(body, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return refuse(http.StatusBadRequest, reasonBadRequest, "read body: %v", err)
	}
	if err := s.checkBody(h, int64(n), size, sum, batch); err != nil {
		return err
	}
	return s.st.Save(ctx, h, buf)
}

package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/kalaja/kalaja/internal/admin"
	"github.com/kalaja/kalaja/internal/atomicfile"
	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/store"
)

// adminPath is the administrator's endpoint: GET the state, POST a
// signed request (docs/design.md, "Server API").
const adminPath = prefix + "admin"

// DefaultRetention is a new server's retention: 30 days.
const DefaultRetention = 30 * 24 * time.Hour

// maxAhead bounds how far in the future a request may expire, so that a
// signed request cannot be kept for use years later.
const maxAhead = 7 * 24 * time.Hour

// adminVersion is the version of the admin.json format.
const adminVersion = 1

// adminFile is admin.json: {"version":1,"server":"<32 hex>","seq":N,
// "retention":"720h0m0s"}.
type adminFile struct {
	Version   int    `json:"version"`
	Server    string `json:"server"`
	Seq       uint64 `json:"seq"`
	Retention string `json:"retention"`
}

// administration is the server's side of signed administrator requests:
// its ID, the last seq it accepted and its retention, persisted in
// admin.json, and the administrator's verifier key.
type administration struct {
	path     string        // admin.json; empty: in memory only
	verifier note.Verifier // nil: no key, every request is refused
	key      string

	// mu is held while a request is checked, persisted and executed, so
	// requests run one at a time and a seq is accepted once.
	mu    sync.Mutex
	state admin.State // Key unset
}

// loadAdmin reads or creates the administrator state and key that o
// names.
func loadAdmin(o Options) (*administration, error) {
	a := &administration{path: o.AdminFile}
	key, err := adminKey(o.AdminKeyFile, o.AdminKey)
	if err != nil {
		return nil, err
	}
	if key != "" {
		if a.verifier, err = note.NewVerifier(key); err != nil {
			return nil, fmt.Errorf("administrator key: %w", err)
		}
		a.key = key
	}
	var b []byte
	if a.path != "" {
		b, err = os.ReadFile(a.path)
	}
	switch {
	case a.path == "" || errors.Is(err, fs.ErrNotExist):
		var id [16]byte
		rand.Read(id[:])
		a.state = admin.State{Server: hex.EncodeToString(id[:]), Retention: DefaultRetention}
		if o.Retention > 0 {
			a.state.Retention = o.Retention
		}
		if err := a.persist(a.state); err != nil {
			return nil, err
		}
		return a, nil
	case err != nil:
		return nil, fmt.Errorf("read administrator state: %w", err)
	}
	var f adminFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("read administrator state %s: %w", a.path, err)
	}
	if f.Version != adminVersion {
		return nil, fmt.Errorf("read administrator state %s: version %d, want %d", a.path, f.Version, adminVersion)
	}
	d, err := time.ParseDuration(f.Retention)
	if err != nil || d <= 0 || admin.CheckServerID(f.Server) != nil {
		return nil, fmt.Errorf("read administrator state %s: invalid server ID or retention", a.path)
	}
	a.state = admin.State{Server: f.Server, Seq: f.Seq, Retention: d}
	if o.Retention > 0 && o.Retention != d {
		return nil, fmt.Errorf("the retention is %v (in %s), not %v: once set, it changes only by a request signed with the administrator's key",
			d, a.path, o.Retention)
	}
	return a, nil
}

// adminKey returns the administrator's verifier key: the one stored in
// file, which given must equal, or given, which is then stored in file.
func adminKey(file, given string) (string, error) {
	given = strings.TrimSpace(given)
	var stored string
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("read administrator key: %w", err)
		}
		stored = strings.TrimSpace(string(b))
	}
	switch {
	case given == "":
		return stored, nil
	case stored == given:
		return given, nil
	case stored != "":
		return "", fmt.Errorf("the administrator key differs from the one in %s: the administrator key can only be changed by editing %s on the server", file, file)
	}
	if _, err := note.NewVerifier(given); err != nil {
		return "", fmt.Errorf("administrator key: %w", err)
	}
	if file != "" {
		if err := atomicfile.Write(file, []byte(given+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("store administrator key: %w", err)
		}
	}
	return given, nil
}

// persist writes st to admin.json, atomically and durably.
func (a *administration) persist(st admin.State) error {
	if a.path == "" {
		return nil
	}
	b, err := json.Marshal(adminFile{Version: adminVersion, Server: st.Server, Seq: st.Seq, Retention: st.Retention.String()})
	if err != nil {
		return err
	}
	if err := atomicfile.Write(a.path, b, 0o600); err != nil {
		return fmt.Errorf("write administrator state: %w", err)
	}
	return nil
}

// State returns the server's administrator state, with the verifier key.
func (s *Server) State() admin.State {
	s.adm.mu.Lock()
	defer s.adm.mu.Unlock()
	st := s.adm.state
	st.Key = s.adm.key
	return st
}

// Reasons for refused administrator requests (metrics' reason label).
const (
	reasonAdminNoKey     = "admin_no_key"
	reasonAdminSignature = "admin_signature"
	reasonAdminMalformed = "admin_malformed"
	reasonAdminServer    = "admin_wrong_server"
	reasonAdminExpired   = "admin_expired"
	reasonAdminReplay    = "admin_replay"
)

// serveAdmin answers GET and POST of adminPath.
func (s *Server) serveAdmin(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet:
		return writeJSON(w, s.State())
	case http.MethodPost:
		err := s.postAdmin(ctx, w, r)
		var ref *refusal
		if errors.As(err, &ref) {
			s.m.admin.WithLabelValues("refused").Inc()
		}
		return err
	}
	return refuse(http.StatusMethodNotAllowed, reasonMethod, "method %s is not allowed: the administrator's endpoint takes GET and POST", r.Method)
}

func writeJSON(w http.ResponseWriter, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write the answer: %w", err)
	}
	return nil
}

// postAdmin checks a signed request, persists its seq (and retention),
// then executes it.
func (s *Server) postAdmin(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	size := r.ContentLength
	switch {
	case size < 0:
		return refuse(http.StatusLengthRequired, reasonLength, "a Content-Length is required")
	case size > admin.MaxSize:
		return refuse(http.StatusRequestEntityTooLarge, reasonTooLarge, "administrator requests are limited to %d bytes", admin.MaxSize)
	case s.adm.verifier == nil:
		return refuse(http.StatusForbidden, reasonAdminNoKey, "no administrator key is configured on this server (kalaja serve --admin-key)")
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r.Body, body); err != nil {
		return refuse(http.StatusBadRequest, reasonBadRequest, "read body: %v", err)
	}
	req, err := admin.Open(body, s.adm.verifier)
	switch {
	case errors.Is(err, admin.ErrSignature):
		return refuse(http.StatusForbidden, reasonAdminSignature, "%v", err)
	case err != nil:
		return refuse(http.StatusBadRequest, reasonAdminMalformed, "%v", err)
	}

	a := s.adm
	a.mu.Lock()
	defer a.mu.Unlock()
	now := s.now()
	switch {
	case req.Server != a.state.Server:
		return refuse(http.StatusForbidden, reasonAdminServer, "the request is for server %s; this is server %s", req.Server, a.state.Server)
	case !now.Before(req.Expires):
		return refuse(http.StatusForbidden, reasonAdminExpired, "the request expired at %s", req.Expires.Format(time.RFC3339))
	case req.Expires.After(now.Add(maxAhead)):
		return refuse(http.StatusForbidden, reasonAdminExpired, "the request expires at %s, more than %v ahead", req.Expires.Format(time.RFC3339), maxAhead)
	case req.Seq <= a.state.Seq:
		return refuse(http.StatusConflict, reasonAdminReplay, "replayed or out-of-order request: seq %d, last accepted %d", req.Seq, a.state.Seq)
	}
	// The seq is persisted before anything is done, so that the request
	// cannot be replayed after a crash.
	next := a.state
	next.Seq = req.Seq
	if req.Retention > 0 {
		next.Retention = req.Retention
	}
	if err := a.persist(next); err != nil {
		return err
	}
	a.state = next
	s.m.admin.WithLabelValues("accepted").Inc()
	res := s.execute(ctx, req, next.Retention, now)
	s.log.Info("administrator request accepted", "seq", req.Seq, "retention", next.Retention.String(),
		"retention_changed", req.Retention > 0, "deletes", len(req.Delete), "deleted", len(res.Deleted), "kept", len(res.Kept))
	return writeJSON(w, res)
}

// execute deletes the objects req names whose retention (from their
// stamp) has ended by now, and condemns those it keeps but for missing
// ones: Renew no longer extends their retention in the backend.
func (s *Server) execute(ctx context.Context, req admin.Request, retention time.Duration, now time.Time) admin.Result {
	res := admin.Result{Deleted: []store.Handle{}, Kept: []admin.Kept{}}
	rm, _ := s.st.(store.Remover)
	for _, h := range req.Delete {
		keep := func(reason string, until time.Time) {
			res.Kept = append(res.Kept, admin.Kept{Object: h, Reason: reason, Until: until})
		}
		fi, err := s.st.Stat(ctx, h)
		switch {
		case errors.Is(err, blob.ErrNotFound):
			keep("missing", time.Time{})
			continue
		case err != nil:
			s.log.Error("administrator delete: stat", "object", h.String(), "err", err)
			keep(fmt.Sprintf("the store failed: %v", err), time.Time{})
			continue
		case fi.Stamp.IsZero():
			keep("the store does not know when the object was stored", time.Time{})
			continue
		case fi.Stamp.Add(retention).After(now):
			keep("retention", fi.Stamp.Add(retention).UTC())
			continue
		case rm == nil:
			keep("the store cannot remove objects", time.Time{})
			continue
		}
		if err := rm.Remove(ctx, h); err != nil {
			s.log.Warn("administrator delete refused by the store", "object", h.String(), "seq", req.Seq, "err", err)
			keep(fmt.Sprintf("the store refused: %v", err), time.Time{})
			continue
		}
		res.Deleted = append(res.Deleted, h)
		s.m.deleted.WithLabelValues(string(h.Type)).Inc()
		s.m.objects.WithLabelValues(string(h.Type)).Dec()
		s.m.bytes.WithLabelValues(string(h.Type)).Sub(float64(fi.Size))
		s.log.Info("deleted", "object", h.String(), "bytes", fi.Size, "stamp", fi.Stamp.UTC(), "seq", req.Seq)
	}
	var kept, gone []store.Handle
	for _, k := range res.Kept {
		if k.Reason == "missing" {
			gone = append(gone, k.Object)
		} else {
			kept = append(kept, k.Object)
		}
	}
	if err := s.condemned.update(kept, append(gone, res.Deleted...)); err != nil {
		// Safe: an object not recorded as condemned is renewed until a
		// later request names it again.
		s.log.Error("administrator delete: record the kept objects", "seq", req.Seq, "err", err)
	}
	return res
}

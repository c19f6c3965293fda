package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/kalaja/kalaja/internal/fleet"
	"github.com/kalaja/kalaja/internal/ledger"
)

// eventsPath is the endpoint hosts send their watchers' events to.
const eventsPath = prefix + "events"

// Reasons for refused requests of the vault.
const (
	reasonForged = "server_only_record" // a host's batch holding a record only the server writes
)

// serveEvents applies a POST /v1/events body of the token's host to the
// fleet state and answers {"ack": N} once it is persisted
// (docs/design.md, 22.1).
func (s *Server) serveEvents(ctx context.Context, w http.ResponseWriter, r *http.Request) (string, error) {
	host, err := s.authenticate(r)
	if err != nil {
		return "", err
	}
	if s.fleet == nil {
		return host, refuse(http.StatusNotFound, reasonNotFound, "this server keeps no fleet state")
	}
	if r.Method != http.MethodPost {
		return host, refuse(http.StatusMethodNotAllowed, reasonMethod, "events are only posted")
	}
	if r.ContentLength > fleet.MaxBody {
		return host, refuse(http.StatusRequestEntityTooLarge, reasonTooLarge, "an events body is limited to %d bytes", fleet.MaxBody)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, fleet.MaxBody+1))
	if err != nil {
		return host, refuse(http.StatusBadRequest, reasonBadRequest, "read body: %v", err)
	}
	if len(body) > fleet.MaxBody {
		return host, refuse(http.StatusRequestEntityTooLarge, reasonTooLarge, "an events body is limited to %d bytes", fleet.MaxBody)
	}
	evs, err := fleet.ParseEvents(body)
	if err != nil {
		return host, refuse(http.StatusBadRequest, reasonBadRequest, "%v", err)
	}
	ack, err := s.fleet.Apply(ctx, host, evs)
	if err != nil {
		return host, err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	return host, json.NewEncoder(w).Encode(struct {
		Ack uint64 `json:"ack"`
	}{ack})
}

// Run calls the fleet state's Tick every TickEvery and its Survey at once
// and every SurveyEvery (verifying the ledger when the last verify, kept
// across restarts, is VerifyEvery old), until ctx is done; it logs
// their errors. Without a fleet state it returns at once. The caller owns
// the goroutine that runs it.
func (s *Server) Run(ctx context.Context) {
	if s.fleet == nil {
		return
	}
	survey := func() {
		verify := s.verifyEvery > 0 && s.now().Sub(s.fleet.Ledger().LastVerify.Time) >= s.verifyEvery
		if err := s.fleet.Survey(ctx, verify); err != nil && ctx.Err() == nil {
			s.log.Warn("fleet survey", "err", err)
		}
	}
	survey()
	tick := time.NewTicker(s.tickEvery)
	defer tick.Stop()
	lastSurvey := s.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := s.fleet.Tick(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("fleet tick", "err", err)
		}
		if now := s.now(); now.Sub(lastSurvey) >= s.surveyEvery {
			survey()
			lastSurvey = now
		}
	}
}

// kindScanner reads a ledger batch as it streams through a PUT and notes
// whether one of its records is of a kind only the server writes. It keeps
// at most one line of maxLine bytes; a longer line is no record.
type kindScanner struct {
	line   []byte
	long   bool // the current line passed maxLine
	forged string
}

const maxLine = 8 << 10

func (k *kindScanner) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if !k.long && len(k.line)+len(chunk) <= maxLine {
			k.line = append(k.line, chunk...)
		} else {
			k.long, k.line = true, k.line[:0]
		}
		if i < 0 {
			break
		}
		k.check()
		p = p[i+1:]
	}
	return n, nil
}

// check looks at one complete line.
func (k *kindScanner) check() {
	if !k.long && k.forged == "" {
		var r struct {
			Kind string `json:"kind"`
		}
		if json.Unmarshal(k.line, &r) == nil && ledger.ServerOnly(r.Kind) {
			k.forged = r.Kind
		}
	}
	k.line, k.long = k.line[:0], false
}

// refusal returns the refusal of a batch with a server-only record, or nil.
func (k *kindScanner) refusal() error {
	if k == nil {
		return nil
	}
	if len(k.line) > 0 {
		k.check() // a last line without its newline
	}
	if k.forged == "" {
		return nil
	}
	return refuse(http.StatusForbidden, reasonForged, "a host may not write %s records: only the server does", k.forged)
}

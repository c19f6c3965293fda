package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/kalaja/kalaja/internal/event"
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
	if r.ContentLength > event.MaxBody {
		return host, refuse(http.StatusRequestEntityTooLarge, reasonTooLarge, "an events body is limited to %d bytes", event.MaxBody)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, event.MaxBody+1))
	if err != nil {
		return host, refuse(http.StatusBadRequest, reasonBadRequest, "read body: %v", err)
	}
	if len(body) > event.MaxBody {
		return host, refuse(http.StatusRequestEntityTooLarge, reasonTooLarge, "an events body is limited to %d bytes", event.MaxBody)
	}
	evs, err := event.Parse(body)
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

// batchRefusal returns the refusal of a host's ledger batch that c read
// whole: one that no reader would accept (it would stop every later
// append), or one that holds a record of a kind only the server writes.
func batchRefusal(c *ledger.BatchChecker) error {
	if c == nil {
		return nil
	}
	if err := c.Err(); err != nil {
		return refuse(http.StatusBadRequest, reasonBadRequest, "not a valid ledger batch: %v", err)
	}
	if k := c.ServerOnly(); k != "" {
		return refuse(http.StatusForbidden, reasonForged, "a host may not write %s records: only the server does", k)
	}
	return nil
}

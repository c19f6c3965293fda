package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/kalaja/kalaja/internal/admin"
)

// maxAdminAnswer bounds the answer to an administrator request: a result
// for admin.MaxDeletes objects, each with a reason.
const maxAdminAnswer = 16 << 20

// adminURL is the URL of the server's administrator endpoint.
func (s *Store) adminURL() string {
	return s.base.Scheme + "://" + s.base.Host + s.base.Path + "/v1/admin"
}

// AdminState returns the server's administrator state: its ID, the last
// seq it accepted, its retention and the administrator's verifier key. It
// is retried like a GET.
func (s *Store) AdminState(ctx context.Context) (admin.State, error) {
	resp, _, err := s.do(ctx, func() (*http.Request, error) {
		return http.NewRequest(http.MethodGet, s.adminURL(), nil)
	})
	if err == nil && resp.StatusCode != http.StatusOK {
		err = readStatus(resp)
	}
	if err != nil {
		return admin.State{}, fmt.Errorf("administrator state at %s: %w", s.location, err)
	}
	defer resp.Body.Close()
	var st admin.State
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return admin.State{}, fmt.Errorf("administrator state at %s: malformed answer: %w", s.location, err)
	}
	return st, nil
}

// Admin sends a signed administrator request (admin.Request.Sign) and
// returns what the server did. It is sent once, never retried: a retry of
// a request the server accepted would be refused as a replay and hide the
// result. A refusal is an error carrying the server's message and status
// (403 not signed by the administrator's key, wrong server or expired;
// 409 replayed; 400 malformed).
func (s *Store) Admin(ctx context.Context, signed []byte) (admin.Result, error) {
	resp, err := s.try(ctx, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodPost, s.adminURL(), bytes.NewReader(signed))
		if err == nil {
			req.Header.Set("Content-Type", "text/plain; charset=utf-8")
		}
		return req, err
	})
	if err == nil && resp.StatusCode != http.StatusOK {
		err = readStatus(resp)
	}
	if err != nil {
		return admin.Result{}, fmt.Errorf("administrator request to %s: %w", s.location, err)
	}
	defer resp.Body.Close()
	var res admin.Result
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAdminAnswer)).Decode(&res); err != nil {
		return admin.Result{}, fmt.Errorf("administrator request to %s: malformed answer: %w", s.location, err)
	}
	return res, nil
}

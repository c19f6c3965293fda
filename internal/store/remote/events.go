package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// eventsTimeout bounds one POST of events: the queue behind it waits, and
// tries again, rather than hang on a stalled connection.
const eventsTimeout = time.Minute

// ErrRefused marks a batch of events the server refused as it is (an
// answer 4xx other than 408 and 429): sending the same batch again soon
// would be refused again.
var ErrRefused = errors.New("refused by the server")

// PostEvents sends a batch of events, the body of POST /v1/events (lines
// of application/x-ndjson, docs/design.md "The host's outbox"), once,
// without retries (the outbox retries, in order), and returns the
// server's ack: the highest seq of the batch's queue it has applied. A
// 4xx answer other than 408 and 429 is an error wrapping ErrRefused; any
// other failure (network, 5xx, 408, 429, a malformed answer) is worth
// trying again later. Errors carry the server's message, never the token.
func (s *Store) PostEvents(ctx context.Context, body []byte) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, eventsTimeout)
	defer cancel()
	u := s.base.Scheme + "://" + s.base.Host + s.base.Path + "/v1/events"
	resp, err := s.try(ctx, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-ndjson")
		}
		return req, err
	})
	if err == nil && resp.StatusCode != http.StatusOK {
		err = readStatus(resp)
		if st := resp.StatusCode; st >= 400 && st < 500 && st != http.StatusRequestTimeout && st != http.StatusTooManyRequests {
			err = fmt.Errorf("%w: %w", ErrRefused, err)
		}
	}
	if err != nil {
		return 0, fmt.Errorf("send events to %s: %w", s.location, err)
	}
	defer resp.Body.Close()
	var a struct {
		Ack *uint64 `json:"ack"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&a); err != nil || a.Ack == nil {
		return 0, fmt.Errorf("send events to %s: malformed answer", s.location)
	}
	return *a.Ack, nil
}

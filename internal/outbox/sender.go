package outbox

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Poster delivers one batch of events, the body of POST /v1/events (lines
// as queued), and returns the server's ack: the highest seq of the batch's
// queue the server has applied.
type Poster interface {
	PostEvents(ctx context.Context, body []byte) (ack uint64, err error)
}

// Sender delivers a queue's events in order. Its zero durations take the
// defaults named below.
type Sender struct {
	Queue  *Queue
	Poster Poster
	// Refused reports whether an error of Poster is the server refusing
	// the batch as it is (HTTP 4xx other than 408 and 429): sending it
	// again soon would be refused again. Nil: no error is.
	Refused func(error) bool
	// Backoff is the wait after the first failure, doubled after each
	// next one up to MaxBackoff; 1 s by default.
	Backoff time.Duration
	// MaxBackoff bounds the wait between attempts while the server is
	// unreachable; 5 min by default. kalaja watch sets it to the heartbeat
	// interval, so a vault that comes back hears from the host within one.
	MaxBackoff time.Duration
	// RefusedWait is the wait after a refusal; 5 min by default.
	RefusedWait time.Duration
	// Log receives a WARN per failed attempt (the first, then every tenth
	// of a run of failures), an ERROR per refusal, and an INFO when events
	// are delivered after failures.
	Log *slog.Logger
}

// Run sends until ctx is done, then returns ctx's error. It sends only
// while it holds the queue's send lock (so that of the processes sharing
// a queue one sends, the others only append); without it, it tries again
// every MaxBackoff. It sends the oldest pending events (Queue.Pending) as
// one batch, and on an answer drops what the ack covers and goes on at
// once. When nothing is pending it looks again after MaxBackoff (events
// that other processes appended) or at once after an Append through its
// Queue. A network error or another failure is tried again after a wait
// that doubles from Backoff up to MaxBackoff; a refusal (Refused) is
// logged and tried again after RefusedWait, the queue kept whole: nothing
// is ever dropped that the server has not acknowledged. An Append through
// its Queue ends any wait early.
func (s *Sender) Run(ctx context.Context) error {
	backoff, maxBackoff, refusedWait := s.Backoff, s.MaxBackoff, s.RefusedWait
	if backoff <= 0 {
		backoff = time.Second
	}
	if maxBackoff <= 0 {
		maxBackoff = 5 * time.Minute
	}
	if refusedWait <= 0 {
		refusedWait = 5 * time.Minute
	}
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	unlock, err := s.sendLock(ctx, maxBackoff)
	if err != nil {
		return err
	}
	defer unlock()
	wait, failures := backoff, 0
	for {
		ack, err := s.sendOnce(ctx, log)
		var pause time.Duration
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err == nil && ack > 0:
			if failures > 0 {
				log.Info("the vault is reachable again: queued events delivered", "ack", ack, "failures", failures)
			}
			wait, failures = backoff, 0
			continue
		case err == nil:
			// Nothing pending: an Append of this process ends the wait;
			// one of another process sharing the queue is seen by then.
			pause = maxBackoff
		case s.Refused != nil && s.Refused(err):
			log.Error("the vault refused the queued events; they are kept and sent again later", "err", err, "retry in", refusedWait)
			failures++
			pause = refusedWait
		default:
			if failures%10 == 0 {
				log.Warn("events not delivered to the vault; they stay queued", "err", err, "retry in", wait, "failures", failures+1)
			}
			failures++
			pause = wait
			wait = min(wait*2, maxBackoff)
		}
		if err := s.sleep(ctx, pause); err != nil {
			return err
		}
	}
}

// sleep waits for d or a new event, whichever comes first, or until ctx
// is done.
func (s *Sender) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.Queue.wake:
	case <-t.C:
	}
	return nil
}

// sendOnce sends the pending events as one batch, records the ack and
// returns it; 0 when nothing was pending.
func (s *Sender) sendOnce(ctx context.Context, log *slog.Logger) (ack uint64, err error) {
	queue, entries, bad, err := s.Queue.Pending()
	if err != nil {
		return 0, err
	}
	if bad > 0 {
		log.Warn("outbox: damaged lines skipped", "dir", s.Queue.Dir(), "lines", bad)
	}
	if len(entries) == 0 {
		return 0, nil
	}
	var body bytes.Buffer
	for _, e := range entries {
		body.Write(e.Line)
	}
	ack, err = s.Poster.PostEvents(ctx, body.Bytes())
	if err != nil {
		return 0, err
	}
	renewed, err := s.Queue.Ack(queue, ack)
	if err != nil {
		return 0, err
	}
	if renewed {
		log.Warn("outbox: the vault has applied more of this queue than it holds (state directory restored?): pending events renumbered in a new queue", "ack", ack)
	}
	if ack < entries[len(entries)-1].Seq {
		// The server applied only part of the batch (or an older state of
		// it): a failure to retry after a wait, not at once.
		return 0, fmt.Errorf("the vault acknowledged seq %d of %d sent", ack, entries[len(entries)-1].Seq)
	}
	return ack, nil
}

// sendLock takes the queue's send lock, trying again every retry until
// it gets it or ctx is done; unlock releases it.
func (s *Sender) sendLock(ctx context.Context, retry time.Duration) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(s.Queue.dir, "send.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	for {
		err := flock(f, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { _ = f.Close() }, nil // closing releases the lock
		}
		if err != unix.EWOULDBLOCK {
			_ = f.Close() // err is the one to report
			return nil, fmt.Errorf("outbox: lock %s: %w", f.Name(), err)
		}
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			_ = f.Close() // nothing held
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

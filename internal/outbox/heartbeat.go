package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
)

// Heartbeat is the body of a heartbeat event: the watcher is running,
// sends one every Interval, and watches these folders.
type Heartbeat struct {
	Interval string   `json:"interval"` // a Go duration: "30s"
	Watching []string `json:"watching"`
	Version  string   `json:"version"` // kalaja's version
}

// Beat queues a heartbeat saying every, watching and version now and then
// every every until ctx is done, then returns ctx's error. A failed append
// is logged and the next one tried on time. every must be from
// MinInterval to MaxInterval; of watching, the first MaxWatching folders
// are named.
func (q *Queue) Beat(ctx context.Context, every time.Duration, watching []string, version string, log *slog.Logger) error {
	if every < MinInterval || every > MaxInterval {
		return fmt.Errorf("outbox: heartbeat interval %v, want %v to %v", every, MinInterval, MaxInterval)
	}
	if watching == nil {
		watching = []string{}
	}
	watching = watching[:min(len(watching), MaxWatching)]
	body, err := json.Marshal(Heartbeat{Interval: every.String(), Watching: watching, Version: version})
	if err != nil {
		return fmt.Errorf("outbox: heartbeat: %w", err)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := q.Append(TypeHeartbeat, body); err != nil {
			log.Error("heartbeat not queued", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

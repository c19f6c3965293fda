package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/kalaja/kalaja/internal/event"
	"log/slog"
	"time"
)

// Beat queues a heartbeat saying every, watching and version now and then
// every every until ctx is done, then returns ctx's error. A failed append
// is logged and the next one tried on time. every must be from
// event.MinInterval to event.MaxInterval; of watching, the first event.MaxWatching folders
// are named.
func (q *Queue) Beat(ctx context.Context, every time.Duration, watching []string, version string, log *slog.Logger) error {
	if every < event.MinInterval || every > event.MaxInterval {
		return fmt.Errorf("outbox: heartbeat interval %v, want %v to %v", every, event.MinInterval, event.MaxInterval)
	}
	if watching == nil {
		watching = []string{}
	}
	watching = watching[:min(len(watching), event.MaxWatching)]
	body, err := json.Marshal(event.Heartbeat{Interval: every.String(), Watching: watching, Version: version})
	if err != nil {
		return fmt.Errorf("outbox: heartbeat: %w", err)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := q.Append(event.TypeHeartbeat, body); err != nil {
			log.Error("heartbeat not queued", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

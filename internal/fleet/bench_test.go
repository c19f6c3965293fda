package fleet

import (
	"fmt"
	"github.com/kalaja/kalaja/internal/event"
	"sync/atomic"
	"testing"
)

// BenchmarkHeartbeats applies heartbeats of many hosts in parallel, each
// persisted (a host file replaced durably) before it returns.
func BenchmarkHeartbeats(b *testing.B) {
	s := open(b, b.TempDir(), newClock(), &fakeLog{})
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		host := fmt.Sprintf("h%03d", next.Add(1))
		for seq := uint64(1); pb.Next(); seq++ {
			if _, err := s.Apply(b.Context(), host, []event.Event{hb(queue(1), seq, "10s")}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

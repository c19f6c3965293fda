package watcher

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestHolder: a held process's threads go to the event thread's CPU,
// and get their own affinity back when the hold passes; the event thread
// is unpinned once nothing is held.
func TestHolder(t *testing.T) {
	now := time.Unix(1000, 0)
	sets := map[int]unix.CPUSet{}
	h := newHolder()
	h.now = func() time.Time { return now }
	h.set = func(tid int, s *unix.CPUSet) error { sets[tid] = *s; return nil }
	// Affinities are set through the fake but read for real: the suspect
	// is this process, so that reading its affinity succeeds.
	self := unix.Getpid()
	h.tasks = func(int) []int { return []int{self} }

	tests := []struct {
		name     string
		advance  time.Duration
		hold     []int
		force    bool
		wantHeld int
		pinned   bool
	}{
		{"first suspect pins", 0, []int{self}, false, 1, true},
		{"PID 1 is never held", 0, []int{1}, false, 1, true},
		{"still held before the hold passes", holdFor / 2, nil, false, 1, true},
		{"held again extends", 0, []int{self}, false, 1, true},
		{"released after the hold", holdFor + time.Millisecond, nil, false, 0, false},
		{"forced release", 0, []int{self}, true, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now = now.Add(tt.advance)
			for _, p := range tt.hold {
				h.hold(p)
			}
			if tt.advance > 0 || tt.force {
				h.expire(tt.force)
			}
			if len(h.held) != tt.wantHeld {
				t.Errorf("%d held, want %d", len(h.held), tt.wantHeld)
			}
			if pinned := h.cpu >= 0; pinned != tt.pinned {
				t.Errorf("event thread pinned %v, want %v", pinned, tt.pinned)
			}
			if tt.pinned {
				if s := sets[self]; s.Count() != 1 || !s.IsSet(h.cpu) {
					t.Errorf("suspect's affinity %v, want only CPU %d", s, h.cpu)
				}
			}
		})
	}
}

package main

import (
	"runtime/debug"
	"testing"
)

func TestSetGCPercent(t *testing.T) {
	for _, tc := range []struct {
		name string
		gogc string // GOGC in the environment
		want int    // the target while set
	}{
		{"default", "", watchGCPercent},
		{"GOGC wins", "77", 123},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOGC", tc.gogc)
			before := debug.SetGCPercent(123)
			defer debug.SetGCPercent(before)

			restore := setGCPercent(watchGCPercent)
			if got := gcPercent(); got != tc.want {
				t.Errorf("target while set: %d, want %d", got, tc.want)
			}
			restore()
			if got := gcPercent(); got != 123 {
				t.Errorf("target after restore: %d, want 123", got)
			}
		})
	}
}

// gcPercent returns the collector's current target.
func gcPercent() int {
	p := debug.SetGCPercent(-1)
	debug.SetGCPercent(p)
	return p
}

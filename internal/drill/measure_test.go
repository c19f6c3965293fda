package drill

import (
	"math"
	"testing"
)

func TestSlowdownInterval(t *testing.T) {
	noisy := []float64{1.49, 1.56, 1.74, 1.79, 1.82, 2.03, 2.12, 2.17, 2.34}
	scaled := func(v []float64, f float64) []float64 {
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = x * f
		}
		return out
	}
	for _, tc := range []struct {
		name          string
		without, with []float64
		// the interval must lie within [minLo, maxHi] and hold contains
		minLo, maxHi float64
		contains     float64
	}{
		{"no difference", noisy, noisy, -0.3, 0.3, 0},
		{"every run 20% slower, no noise", []float64{2, 2, 2}, []float64{2.4, 2.4, 2.4}, 0.2 - 1e-9, 0.2 + 1e-9, 0.2},
		{"noisy runs 20% slower", noisy, scaled(noisy, 1.2), -0.2, 0.7, 0.2},
		{"far apart", []float64{1.00, 1.01, 0.99, 1.02, 0.98}, []float64{1.50, 1.52, 1.48, 1.51, 1.49}, 0.4, 0.6, 0.5},
		{"one run each", []float64{2}, []float64{3}, 0.5 - 1e-9, 0.5 + 1e-9, 0.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lo, hi := slowdownInterval(append([]float64(nil), tc.without...), append([]float64(nil), tc.with...))
			if lo > hi || lo < tc.minLo || hi > tc.maxHi || tc.contains < lo-1e-9 || tc.contains > hi+1e-9 {
				t.Errorf("interval [%.3f, %.3f], want within [%.3f, %.3f] and holding %.3f", lo, hi, tc.minLo, tc.maxHi, tc.contains)
			}
		})
	}
	// A noisy workload's interval is wide: its width is what tells a reader
	// that a slowdown of a few percent is not measured.
	if lo, hi := slowdownInterval(noisy, noisy); hi-lo < 0.1 || math.IsNaN(lo) {
		t.Errorf("interval of noisy runs [%.3f, %.3f] is narrower than their spread", lo, hi)
	}
	if lo, hi := slowdownInterval(nil, nil); lo != 0 || hi != 0 {
		t.Errorf("no runs: [%v, %v], want zero", lo, hi)
	}
}

package repo

import "testing"

// TestRemovalsDigest: the digest names a set of requests, in any order;
// any request stored or removed changes it.
func TestRemovalsDigest(t *testing.T) {
	a, b, c := "aa", "bb", "cc"
	tests := []struct {
		name string
		x, y []string
		same bool
	}{
		{"order", []string{a, b, c}, []string{c, a, b}, true},
		{"none", nil, []string{}, true},
		{"one stored", []string{a, b}, []string{a, b, c}, false},
		{"one replaced", []string{a, b}, []string{a, c}, false},
		{"names run together", []string{"a", "ab"}, []string{"aa", "b"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RemovalsDigest(tt.x) == RemovalsDigest(tt.y); got != tt.same {
				t.Errorf("RemovalsDigest(%q) == RemovalsDigest(%q): %v, want %v", tt.x, tt.y, got, tt.same)
			}
		})
	}
	if d := RemovalsDigest(nil); len(d) != 64 {
		t.Errorf("digest %q is not 64 hex digits", d)
	}
}

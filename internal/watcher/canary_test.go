package watcher

import (
	"testing"

	"github.com/kalaja/kalaja/internal/detect"
)

func TestCanaryHit(t *testing.T) {
	zip := &detect.Sample{Size: 900, Type: "zip"}
	pdf := &detect.Sample{Size: 300, Type: "pdf"}
	noise := &detect.Sample{Size: 900, Type: detect.Unknown}
	for _, tc := range []struct {
		name     string
		p        string
		old, cur *detect.Sample
		hit      bool
	}{
		{"deleted", "!kalaja-canary.docx", zip, nil, true},
		{"saved as a valid document", "!kalaja-canary.docx", zip, zip, false},
		{"overwritten with noise", "!kalaja-canary.docx", zip, noise, true},
		{"written back in its format after a deletion (gunzip)", "!kalaja-canary.docx", nil, zip, false},
		{"written back as another format", "~kalaja-canary.pdf", nil, zip, true},
		{"written back as noise", "~kalaja-canary.pdf", nil, noise, true},
		{"pdf saved as pdf", "~kalaja-canary.pdf", pdf, pdf, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := canaryHit(tc.p, tc.old, tc.cur); got != tc.hit {
				t.Errorf("canaryHit = %v, want %v", got, tc.hit)
			}
		})
	}
}

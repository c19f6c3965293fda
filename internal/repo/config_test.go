package repo

import (
	"errors"
	"testing"

	"github.com/kalaja/kalaja/internal/blob"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"good", `{"version":1,"id":"` + blob.Hash(nil).String() + `","chunker":{"min":262144,"avg":1048576,"max":4194304}}`, nil},
		{"future version", `{"version":2}`, blob.ErrUnsupported},
		{"not json", `{`, blob.ErrCorrupt},
		{"bad chunker", `{"version":1,"chunker":{"min":1,"avg":3,"max":2}}`, blob.ErrCorrupt},
		{"huge chunks", `{"version":1,"chunker":{"min":1024,"avg":1073741824,"max":2147483647}}`, blob.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.in))
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"version":1,"chunker":{"min":262144,"avg":1048576,"max":4194304}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := ParseConfig(b)
		if err == nil && cfg.ChunkerParams().Validate() != nil {
			t.Fatal("accepted invalid chunker parameters")
		}
	})
}

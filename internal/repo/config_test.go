package repo

import (
	"errors"
	"testing"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/crypto"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"good", `{"version":2,"id":"` + blob.Hash(nil).String() + `","chunker":{"min":262144,"avg":1048576,"max":4194304},"blob_id":"blake3"}`, nil},
		{"version 1", `{"version":1,"id":"` + blob.Hash(nil).String() + `","chunker":{"min":262144,"avg":1048576,"max":4194304}}`, nil},
		{"version 1 with blob_id", `{"version":1,"chunker":{"min":262144,"avg":1048576,"max":4194304},"blob_id":"blake3"}`, blob.ErrCorrupt},
		{"version 2 without blob_id", `{"version":2,"chunker":{"min":262144,"avg":1048576,"max":4194304}}`, blob.ErrCorrupt},
		{"unknown blob_id", `{"version":2,"chunker":{"min":262144,"avg":1048576,"max":4194304},"blob_id":"md5"}`, blob.ErrCorrupt},
		{"future version", `{"version":3}`, blob.ErrUnsupported},
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
	f.Add([]byte(`{"version":2,"chunker":{"min":262144,"avg":1048576,"max":4194304},"blob_id":"blake3"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := ParseConfig(b)
		if err != nil {
			return
		}
		if cfg.ChunkerParams().Validate() != nil {
			t.Fatal("accepted invalid chunker parameters")
		}
		if f := cfg.IDFunc(); f != crypto.HMACSHA256 && f != crypto.BLAKE3 {
			t.Fatalf("accepted ID function %q", f)
		}
	})
}

package ledger

import (
	"testing"

	"github.com/kalaja/kalaja/internal/store"
)

func TestKinds(t *testing.T) {
	tests := []struct {
		t             store.FileType
		kind, removed string
	}{
		{store.Snapshots, KindSnapshot, KindSnapshotRemoved},
		{store.Packs, KindPack, KindPackRemoved},
		{store.Index, KindIndex, KindIndexRemoved},
	}
	for _, tt := range tests {
		if got := KindOf(tt.t); got != tt.kind {
			t.Errorf("KindOf(%s) = %q, want %q", tt.t, got, tt.kind)
		}
		if got := Removed(tt.kind); got != tt.removed {
			t.Errorf("Removed(%s) = %q, want %q", tt.kind, got, tt.removed)
		}
		if typ, removal, ok := TypeOf(tt.kind); typ != tt.t || removal || !ok {
			t.Errorf("TypeOf(%s) = %s, %v, %v", tt.kind, typ, removal, ok)
		}
		if typ, removal, ok := TypeOf(tt.removed); typ != tt.t || !removal || !ok {
			t.Errorf("TypeOf(%s) = %s, %v, %v", tt.removed, typ, removal, ok)
		}
	}
	for _, ft := range []store.FileType{store.Config, store.Keys, store.LedgerEntries, "unknown"} {
		if got := KindOf(ft); got != "" {
			t.Errorf("KindOf(%s) = %q, want none", ft, got)
		}
	}
	for _, k := range []string{"", "alert", "pack-removed-removed", "Pack", "key"} {
		if _, _, ok := TypeOf(k); ok {
			t.Errorf("TypeOf(%q) names a type", k)
		}
		if got := Removed(k); got != "" {
			t.Errorf("Removed(%q) = %q, want none", k, got)
		}
	}
}

func TestEventKinds(t *testing.T) {
	tests := []struct {
		kind              string
		event, serverOnly bool
	}{
		{KindAlert, true, true},
		{KindSilent, true, true},
		{KindBack, true, true},
		{KindResolved, true, false},
		{KindSnapshot, false, false},
		{KindPackRemoved, false, false},
		{"", false, false},
		{"Alert", false, false},
	}
	for _, tt := range tests {
		if got := IsEvent(tt.kind); got != tt.event {
			t.Errorf("IsEvent(%q) = %v, want %v", tt.kind, got, tt.event)
		}
		if got := ServerOnly(tt.kind); got != tt.serverOnly {
			t.Errorf("ServerOnly(%q) = %v, want %v", tt.kind, got, tt.serverOnly)
		}
		// An event names no object: verify must not look for one.
		if _, _, ok := TypeOf(tt.kind); tt.event && ok {
			t.Errorf("TypeOf(%q) names an object type", tt.kind)
		}
	}
}

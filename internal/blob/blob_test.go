package blob

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseID(t *testing.T) {
	good := strings.Repeat("ab", 32)
	tests := []struct {
		in      string
		wantErr bool
	}{
		{good, false},
		{strings.ToUpper(good), false},
		{good[:63], true},
		{good + "00", true},
		{strings.Repeat("zz", 32), true},
		{"", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			id, err := ParseID(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseID(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if err == nil && id.String() != strings.ToLower(tt.in) {
				t.Fatalf("round trip: got %s", id)
			}
		})
	}
}

func TestIDJSON(t *testing.T) {
	id := Hash([]byte("x"))
	b, err := json.Marshal(map[string]ID{"id": id})
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]ID
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back["id"] != id {
		t.Fatalf("got %v want %v", back["id"], id)
	}
	if id.IsZero() || !(ID{}).IsZero() {
		t.Fatal("IsZero wrong")
	}
}

package main

import (
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBackupHealth: a backup prints its health; files encrypted in place
// make the next one suspect; a suspect snapshot is not in the baseline
// of the ones after it; --force reads everything and still judges against
// the previous snapshot.
func TestBackupHealth(t *testing.T) {
	e := newEnv(t)
	e.must("init")
	src := filepath.Join(t.TempDir(), "src")
	must(t, os.MkdirAll(src, 0o755))
	for i := range 6 {
		must(t, os.WriteFile(filepath.Join(src, fmt.Sprintf("note%d.txt", i)), []byte(strings.Repeat("minutes of the council meeting\n", 100+i)), 0o644))
	}
	if r := e.must("backup", src); !strings.Contains(r.stdout, "health: clean\n") {
		t.Fatalf("first backup:\n%s", r.stdout)
	}
	random := mrand.NewChaCha8([32]byte{1}) // seeded: a few random blocks in 1000 look like a format
	for i := range 4 {
		b := make([]byte, 4000)
		random.Read(b)
		must(t, os.WriteFile(filepath.Join(src, fmt.Sprintf("note%d.txt", i)), b, 0o644))
	}
	if r := e.must("backup", src); !strings.Contains(r.stdout, "health: SUSPECT: 4 files lost their format") {
		t.Fatalf("backup after encryption:\n%s", r.stdout)
	}
	var out struct {
		Health struct {
			Status string `json:"status"`
			Stats  struct {
				Files    map[string]int `json:"files"`
				Baseline struct {
					Snapshots int `json:"snapshots"`
				} `json:"baseline"`
			} `json:"stats"`
		} `json:"health"`
	}
	r := e.must("backup", "--json", "--force", src)
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	h := out.Health
	if h.Status != "clean" || h.Stats.Files["unchanged"] != 6 || h.Stats.Baseline.Snapshots != 1 {
		t.Fatalf("third backup: %s", r.stdout)
	}
}

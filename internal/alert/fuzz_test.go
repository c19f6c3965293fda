package alert

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadLog: an alert log is written on a host an attacker may own; any
// bytes must read without a panic, every line counted once as an alert, a
// healing, a resolution or a bad line.
func FuzzReadLog(f *testing.F) {
	f.Add([]byte(`{"time":"2026-12-06T10:00:00Z","pid":42,"command":"locker","signals":[{"signal":"entropy","score":9,"files":["/a"]}],"files":["/a"]}` + "\n"))
	f.Add([]byte(`{"time":"2026-12-06T10:00:01Z","healed":{"alert":"2026-12-06T10:00:00Z","pid":42,"restored":3}}` + "\n"))
	f.Add([]byte(`{"time":"2026-12-06T10:00:02Z","resolved":{"by":"recover","snapshot":"ab","paths":["/srv"]}}` + "\n{\"time\":"))
	f.Add([]byte("not json\n\n{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "alerts.jsonl")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := ReadLog(p)
		if err != nil {
			return // a line longer than the scanner takes
		}
		lines := 0
		for _, line := range bytes.Split(data, []byte("\n")) {
			if len(bytes.TrimSpace(line)) > 0 {
				lines++
			}
		}
		if got := len(l.Alerts) + len(l.Healings) + len(l.Resolutions) + l.Bad; got != lines {
			t.Fatalf("%d lines read as %d alerts, %d healings, %d resolutions, %d bad", lines, len(l.Alerts), len(l.Healings), len(l.Resolutions), l.Bad)
		}
	})
}

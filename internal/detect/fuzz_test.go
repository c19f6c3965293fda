package detect

import (
	"testing"
	"time"
)

// FuzzAnalyze: any bytes give a sample, and the detector accepts it.
func FuzzAnalyze(f *testing.F) {
	f.Add([]byte("PK\x03\x04 hello"), []byte("SQLite format 3\x00"), int64(9000))
	f.Add([]byte("-----BEGIN"), []byte{0xff, 0xfe, 0}, int64(3))
	f.Add([]byte("aGVsbG8gd29ybGQ="), []byte{}, int64(-1))
	d, _ := New(DefaultConfig())
	f.Fuzz(func(t *testing.T, a, b []byte, size int64) {
		s := Analyze(size, [][]byte{a, b})
		if size > 0 && len(s.Blocks) != 2 {
			t.Fatalf("%d blocks for 2", len(s.Blocks))
		}
		old := Analyze(int64(len(b)), [][]byte{b})
		d.Observe(Event{Time: time.Unix(0, 0), Op: Write, Path: "/x.txt", Actor: Actor{PID: 1, Group: 1}, Old: &old, New: &s})
	})
}

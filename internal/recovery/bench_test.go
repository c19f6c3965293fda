package recovery

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/archiver"
	"github.com/kalaja/kalaja/internal/restorer"
)

// BenchmarkRepair backs up a tree of 2,000 files and 4 large ones (about
// 230 MiB, half of the files compressible), then, each round, damages 10%
// of the files and repairs the tree in place, and restores the whole
// snapshot into an empty folder, alternating, on the same file system (a
// tmpfs when there is one, so that it measures the programs and not a
// disk). It reports the time of each and their ratio; ns/op is their sum.
// The damage is "same-size" (encrypted in place, size kept: every damaged
// file must be read to be told apart) or "renamed" (encrypted into a
// .locked copy, the original deleted, a note in each folder).
func BenchmarkRepair(b *testing.B) {
	base := "/dev/shm"
	if fi, err := os.Stat(base); err != nil || !fi.IsDir() {
		base = ""
	}
	dir, err := os.MkdirTemp(base, "recovery-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	live := filepath.Join(dir, "live")
	rng := rand.New(rand.NewPCG(1, 2))
	chacha := rand.NewChaCha8([32]byte{1})
	var files []string
	var total int64
	write := func(rel string, n int) {
		data := make([]byte, n)
		chacha.Read(data)
		if len(files)%2 == 0 {
			for i := 0; i+64 <= n; i += 128 {
				copy(data[i:i+64], "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
			}
		}
		p := filepath.Join(live, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
		files = append(files, rel)
		total += int64(n)
	}
	for i := range 2000 {
		write(fmt.Sprintf("d%02d/e%d/f%04d.doc", i%40, i%7, i), 4<<10+rng.IntN(196<<10))
	}
	for i := range 4 {
		write(fmt.Sprintf("large/%d.img", i), 8<<20)
	}
	r := newRepo(b)
	sn, err := archiver.Backup(b.Context(), r, []string{live}, archiver.Options{Hostname: "h"})
	if err != nil {
		b.Fatal(err)
	}
	var victims []string
	for i, f := range files {
		if i%10 == 3 {
			victims = append(victims, f)
		}
	}
	damages := map[string]func(){
		"same-size": func() {
			for _, v := range victims {
				p := filepath.Join(live, v)
				data, err := os.ReadFile(p)
				if err != nil {
					b.Fatal(err)
				}
				chacha.Read(data)
				if err := os.WriteFile(p, data, 0o644); err != nil {
					b.Fatal(err)
				}
			}
		},
		"renamed": func() {
			for _, v := range victims {
				p := filepath.Join(live, v)
				data, err := os.ReadFile(p)
				if err != nil {
					b.Fatal(err)
				}
				chacha.Read(data)
				if err := os.WriteFile(p+".locked", append(data, "tag"...), 0o644); err != nil {
					b.Fatal(err)
				}
				if err := os.Remove(p); err != nil {
					b.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(filepath.Dir(p), "README-DECRYPT.txt"), []byte(note), 0o644); err != nil {
					b.Fatal(err)
				}
			}
		},
	}
	for _, name := range []string{"same-size", "renamed"} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(total)
			var repair, restore time.Duration
			i := 0
			for b.Loop() {
				b.StopTimer()
				damages[name]()
				q := filepath.Join(dir, fmt.Sprintf("q-%s-%d", name, i))
				target := filepath.Join(dir, fmt.Sprintf("restore-%s-%d", name, i))
				i++
				b.StartTimer()
				start := time.Now()
				rep, err := Repair(b.Context(), r, sn, RepairOptions{Paths: []string{live}, Quarantine: q})
				repair += time.Since(start)
				if err != nil || rep.Errors > 0 || rep.FilesRestored != len(victims) {
					b.Fatalf("Repair: %v, %d errors, %d files restored, want %d", err, rep.Errors, rep.FilesRestored, len(victims))
				}
				start = time.Now()
				stats, err := restorer.Restore(b.Context(), r, sn, restorer.Options{Target: target})
				restore += time.Since(start)
				if err != nil || stats.Errors > 0 {
					b.Fatalf("Restore: %v, %d errors", err, stats.Errors)
				}
				b.StopTimer()
				if err := os.RemoveAll(q); err != nil {
					b.Fatal(err)
				}
				if err := os.RemoveAll(target); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(repair.Milliseconds())/float64(i), "repair-ms/op")
			b.ReportMetric(float64(restore.Milliseconds())/float64(i), "restore-ms/op")
			b.ReportMetric(repair.Seconds()/restore.Seconds(), "repair/restore")
		})
	}
}

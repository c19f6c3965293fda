package restorer

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/archiver"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/store/local"
)

// BenchmarkRestore restores a backup of 1,000 small files and 8 large ones
// (about 64 MiB, half of it compressible) from a local repository into a
// tmpfs when there is one, so that it measures the restorer and not a disk.
func BenchmarkRestore(b *testing.B) {
	ctx := b.Context()
	src := b.TempDir()
	rng := rand.New(rand.NewPCG(1, 1))
	var total int64
	write := func(name string, n int) {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rng.UintN(256))
			if i%2 == 0 && rng.IntN(2) == 0 {
				data[i] = 'a'
			}
		}
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
		total += int64(n)
	}
	for i := range 1000 {
		write(fmt.Sprintf("small/%02d/%d", i%50, i), 1<<10+rng.IntN(64<<10))
	}
	for i := range 8 {
		write(fmt.Sprintf("large/%d", i), 4<<20)
	}
	st, err := local.Create(filepath.Join(b.TempDir(), "repo"))
	if err != nil {
		b.Fatal(err)
	}
	r, err := repo.Init(ctx, st, []byte("pw"), crypto.KDFParams{Time: 1, MemoryKiB: 8 << 10, Threads: 1, Salt: make([]byte, 16)})
	if err != nil {
		b.Fatal(err)
	}
	sn, err := archiver.Backup(ctx, r, []string{src}, archiver.Options{Hostname: "h"})
	if err != nil {
		b.Fatal(err)
	}
	base := "/dev/shm"
	if fi, err := os.Stat(base); err != nil || !fi.IsDir() {
		base = ""
	}
	dir, err := os.MkdirTemp(base, "restorer-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	b.SetBytes(total)
	b.ReportAllocs()
	b.ResetTimer()
	var cpu time.Duration // of the process, which a busy machine inflates less than wall time
	for i := range b.N {
		target := filepath.Join(dir, fmt.Sprint(i))
		before := cpuTime(b)
		stats, err := Restore(ctx, r, sn, Options{Target: target})
		if err != nil || stats.Errors > 0 {
			b.Fatalf("Restore: %v, %d errors", err, stats.Errors)
		}
		cpu += cpuTime(b) - before
		b.StopTimer()
		if err := os.RemoveAll(target); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// cpuTime returns the user and system time the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

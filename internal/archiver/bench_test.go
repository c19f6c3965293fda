package archiver

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/snapshot"
)

// benchTree writes a tree shaped like the peer benchmark's corpus, of
// about size bytes: 30% source-like text in files of 0.5-40 KB in nested
// folders (about 14,000 files per GiB), 30% incompressible media files,
// 40% one disk image of text, zeros and random blocks. It returns the
// text files.
func benchTree(b *testing.B, dir string, size int) []string {
	b.Helper()
	r := mrand.New(mrand.NewPCG(1, 1))
	words := strings.Fields("func return if err nil ctx repo blob for range the council budget report office archive decision type struct package import")
	line := func() string {
		var s strings.Builder
		for range 3 + r.IntN(9) {
			s.WriteString(words[r.IntN(len(words))])
			s.WriteByte(' ')
		}
		s.WriteByte('\n')
		return s.String()
	}
	write := func(p string, data []byte) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	random := func(n int) []byte {
		out := make([]byte, n)
		for i := 0; i+8 <= n; i += 8 {
			v := r.Uint64()
			for j := range 8 {
				out[i+j] = byte(v >> (8 * j))
			}
		}
		return out
	}
	var texts []string
	for n := 0; n < size*3/10; {
		var s strings.Builder
		for want := 500 + r.IntN(40000); s.Len() < want; {
			s.WriteString(line())
		}
		p := filepath.Join(dir, "text", fmt.Sprintf("p%d/d%d/e%d/f%05d.go", r.IntN(30), r.IntN(6), r.IntN(4), len(texts)))
		write(p, []byte(s.String()))
		texts = append(texts, p)
		n += s.Len()
	}
	for i, n := 0, 0; n < size*3/10; i++ {
		data := append([]byte("\xff\xd8\xff\xe0"), random(100<<10+r.IntN(6<<20))...)
		write(filepath.Join(dir, "media", fmt.Sprintf("IMG_%04d.jpg", i)), data)
		n += len(data)
	}
	img := make([]byte, 0, size*4/10)
	for len(img) < size*4/10 {
		switch r.IntN(3) {
		case 0:
			img = append(img, make([]byte, 64<<10)...)
		case 1:
			img = append(img, random(64<<10)...)
		default:
			for range 1000 {
				img = append(img, line()...)
			}
		}
	}
	write(filepath.Join(dir, "vm", "disk.img"), img)
	return texts
}

// mutate applies a day of changes to a benchTree: 3% of the text files
// edited in place, 1% new, 0.5% deleted, 16 regions of the image
// rewritten.
func mutate(b *testing.B, dir string, texts []string) {
	b.Helper()
	r := mrand.New(mrand.NewPCG(2, 2))
	later := time.Now().Add(time.Hour)
	for i, p := range texts {
		switch {
		case i%33 == 0:
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				b.Fatal(err)
			}
			fmt.Fprintf(f, "// edited %d\n", r.IntN(1000))
			f.Close()
			os.Chtimes(p, later, later)
		case i%200 == 1:
			os.Remove(p)
		case i%100 == 2:
			os.WriteFile(p+".new.go", []byte(fmt.Sprintf("// new file %d\n%s", i, strings.Repeat("new code\n", 1+r.IntN(2000)))), 0o644)
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, "vm", "disk.img"), os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	fi, _ := f.Stat()
	for range 16 {
		buf := make([]byte, 16<<10)
		for i := range buf {
			buf[i] = byte(r.Uint32())
		}
		f.WriteAt(buf, r.Int64N(fi.Size()/4096)*4096)
	}
	f.Close()
}

// BenchmarkHealth backs up the same tree with and without fingerprints
// and health, the two arms alternating which goes first, and reports the
// median wall and CPU seconds of each arm and the overhead: first backups
// of a fresh tree (into a new repository each time), then incremental
// backups of a day's changes against the first. KALAJA_BENCH_TREE names a
// tree to use instead (the peer benchmark's corpus, say), left as it is:
// its incremental backups find nothing changed. Each arm runs under the
// pprof labels health=on or health=off and backup=first or backup=incr,
// so a CPU profile splits by arm:
//
//	go test -run '^$' -bench Health -benchtime 5x -cpuprofile cpu.prof ./internal/archiver/
//	go tool pprof -tagfocus health=on -top archiver.test cpu.prof
func BenchmarkHealth(b *testing.B) {
	dir, texts := os.Getenv("KALAJA_BENCH_TREE"), []string(nil)
	if dir == "" {
		dir = b.TempDir()
		texts = benchTree(b, dir, 256<<20)
	}
	paths := []string{dir}
	arms := func(b *testing.B, run func(b *testing.B, o Options) *snapshot.Snapshot) {
		var secs, cpus [2][]float64 // [0] without health, [1] with
		for i := 0; b.Loop(); i++ {
			for k := range 2 {
				on := (i+k)%2 == 1
				var sn *snapshot.Snapshot
				cpu0, start := cpuSeconds(), time.Now()
				labels := pprof.Labels("health", map[bool]string{true: "on", false: "off"}[on], "backup", path.Base(b.Name()))
				pprof.Do(b.Context(), labels, func(context.Context) {
					sn = run(b, Options{Hostname: "h", noHealth: !on})
				})
				d, c := time.Since(start).Seconds(), cpuSeconds()-cpu0
				if (sn.Health != nil) != on {
					b.Fatalf("health %v with health on %v", sn.Health, on)
				}
				secs[btoi(on)] = append(secs[btoi(on)], d)
				cpus[btoi(on)] = append(cpus[btoi(on)], c)
			}
		}
		b.Logf("wall seconds without: %.3f", secs[0])
		b.Logf("wall seconds with:    %.3f", secs[1])
		off, on := median(secs[0]), median(secs[1])
		b.ReportMetric(off, "s-without")
		b.ReportMetric(on, "s-with")
		b.ReportMetric(100*(on/off-1), "%wall")
		off, on = median(cpus[0]), median(cpus[1])
		b.ReportMetric(off, "cpu-s-without")
		b.ReportMetric(on, "cpu-s-with")
		b.ReportMetric(100*(on/off-1), "%cpu")
	}
	b.Run("first", func(b *testing.B) {
		arms(b, func(b *testing.B, o Options) *snapshot.Snapshot {
			b.StopTimer()
			tmp := b.TempDir()
			r := newRepoIn(b, tmp)
			b.StartTimer()
			sn, err := Backup(b.Context(), r, paths, o)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			os.RemoveAll(tmp) // so that repositories do not pile up in the page cache
			b.StartTimer()
			return sn
		})
	})
	b.Run("incr", func(b *testing.B) {
		r := newRepo(b)
		first, err := Backup(b.Context(), r, paths, Options{Hostname: "h"})
		if err != nil {
			b.Fatal(err)
		}
		if texts != nil {
			mutate(b, dir, texts)
		}
		arms(b, func(b *testing.B, o Options) *snapshot.Snapshot {
			o.Parent, o.Baseline = first, []*snapshot.Health{first.Health}
			sn, err := Backup(b.Context(), r, paths, o)
			if err != nil {
				b.Fatal(err)
			}
			if sn.Health != nil && sn.Health.Status != snapshot.Clean {
				b.Fatalf("a day of changes judged %s", sn.Health.Verdict())
			}
			return sn
		})
	})
}

// cpuSeconds is the user and system CPU time of the process so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func btoi(v bool) int {
	if v {
		return 1
	}
	return 0
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

package watcher

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/detect"
)

// Bounds on the content sampling, so the watcher stays cheap: at most
// detect.MaxBlocks blocks of detect.BlockSize bytes are read per written
// file; the sample cache holds features (about 200 bytes a file), never
// content.
const (
	maxSamples   = 100_000
	scanMaxFiles = 20_000
	scanMaxTime  = 5 * time.Second
)

// sampler reads bounded samples of files and remembers the last sample of
// each file, so the next write can be compared with it.
type sampler struct {
	cache map[string]*detect.Sample
	bufs  [detect.MaxBlocks][]byte
}

func newSampler() *sampler {
	s := &sampler{cache: map[string]*detect.Sample{}}
	for i := range s.bufs {
		s.bufs[i] = make([]byte, detect.BlockSize)
	}
	return s
}

// read samples the regular file at path; ok is false when it is gone or
// not a regular file.
func (s *sampler) read(path string) (*detect.Sample, bool) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOATIME, 0)
	if err != nil {
		if f, err = os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0); err != nil {
			return nil, false
		}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil, false
	}
	offs := detect.Offsets(fi.Size())
	blocks := make([][]byte, 0, len(offs))
	for i, off := range offs {
		n, err := f.ReadAt(s.bufs[i], off)
		if err != nil && err != io.EOF {
			break
		}
		blocks = append(blocks, s.bufs[i][:n])
	}
	smp := detect.Analyze(fi.Size(), blocks)
	return &smp, true
}

// put remembers a file's latest sample.
func (s *sampler) put(path string, smp *detect.Sample) {
	if len(s.cache) >= maxSamples {
		n := 0
		for k := range s.cache { // map order: a random half goes
			delete(s.cache, k)
			if n++; n >= maxSamples/2 {
				break
			}
		}
	}
	s.cache[path] = smp
}

// move renames cached samples at or below from (a file or a folder).
func (s *sampler) move(from, to string, dir bool) {
	if !dir {
		if smp, ok := s.cache[from]; ok {
			delete(s.cache, from)
			s.cache[to] = smp
		}
		return
	}
	for p, smp := range s.cache {
		if under(p, from) {
			delete(s.cache, p)
			s.cache[to+p[len(from):]] = smp
		}
	}
}

// scan samples the files already under roots, within scanMaxFiles and
// scanMaxTime, so that their first write can be compared with what they
// held. It returns how many files it sampled.
func (s *sampler) scan(ctx context.Context, roots []string) int {
	deadline := time.Now().Add(scanMaxTime)
	n := 0
	for _, r := range roots {
		filepath.WalkDir(r, func(p string, d fs.DirEntry, err error) error {
			if ctx.Err() != nil || n >= scanMaxFiles || time.Now().After(deadline) {
				return filepath.SkipAll
			}
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			if smp, ok := s.read(p); ok {
				s.put(p, smp)
				n++
			}
			return nil
		})
	}
	return n
}

// under reports whether p is dir or inside it.
func under(p, dir string) bool {
	return p == dir || len(p) > len(dir) && p[:len(dir)] == dir && (p[len(dir)] == '/' || dir == "/")
}

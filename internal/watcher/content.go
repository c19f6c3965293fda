package watcher

import (
	"context"
	"io/fs"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/detect"
	"github.com/kalaja/kalaja/internal/fswatch"
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
	// byContent finds the files whose cached samples are equal (copies).
	// Its entries may be stale (a file since rewritten, moved or
	// deleted): copies checks each against the cache and the disk.
	byContent map[contentKey][]string
	// ids holds the file each path was last read from (see
	// Watcher.linked); cleared when full.
	ids    map[string]fileID
	buf    []byte   // detect.MaxBlocks blocks, one after the other
	blocks [][]byte // slices of buf, reused
}

func newSampler() *sampler {
	return &sampler{cache: map[string]*detect.Sample{}, byContent: map[contentKey][]string{}, ids: map[string]fileID{}, buf: make([]byte, detect.MaxBlocks*detect.BlockSize)}
}

// read samples the regular file at path, and remembers which file that
// is (ids); ok is false when it is gone or not a regular file. It runs
// for every file written, so it goes straight to the system calls: no
// *os.File, whose registration with the runtime's poller would cost two
// more calls and an allocation per file, and a small file (every block
// sampled) is read in one call.
func (s *sampler) read(path string) (*detect.Sample, bool) {
	fd, err := openNoFollow(path)
	if err != nil {
		return nil, false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, false
	}
	if len(s.ids) >= maxSamples {
		clear(s.ids)
	}
	s.ids[path] = idOf(&st)
	blocks := s.blocks[:0]
	if st.Size <= int64(len(s.buf)) {
		n, _ := pread(fd, s.buf[:st.Size], 0)
		for off := 0; off < n; off += detect.BlockSize {
			blocks = append(blocks, s.buf[off:min(n, off+detect.BlockSize)])
		}
	} else {
		for i, off := range detect.Offsets(st.Size) {
			n, err := pread(fd, s.buf[i*detect.BlockSize:(i+1)*detect.BlockSize], off)
			if err != nil {
				break
			}
			blocks = append(blocks, s.buf[i*detect.BlockSize:i*detect.BlockSize+n])
		}
	}
	s.blocks = blocks
	smp := detect.Analyze(st.Size, blocks)
	return &smp, true
}

// openNoFollow opens path to read without following a symbolic link,
// blocking on a FIFO or changing its access time (when allowed: O_NOATIME
// needs the file's owner or CAP_FOWNER).
func openNoFollow(path string) (int, error) {
	open := func(flags int) (int, error) {
		for {
			fd, err := unix.Open(path, flags|unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
			if err != unix.EINTR {
				return fd, err
			}
		}
	}
	fd, err := open(unix.O_NOATIME)
	if err == unix.EPERM {
		fd, err = open(0)
	}
	return fd, err
}

// pread fills b from offset off of fd as far as the file goes, and returns
// how many bytes it read.
func pread(fd int, b []byte, off int64) (int, error) {
	n := 0
	for n < len(b) {
		m, err := unix.Pread(fd, b[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
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
	if k, ok := keyOf(smp); ok {
		if len(s.byContent) >= maxSamples {
			clear(s.byContent)
		}
		list := s.byContent[k]
		if !slices.Contains(list, path) {
			if len(list) >= maxCopies {
				list = list[1:]
			}
			s.byContent[k] = append(list, path)
		}
	}
}

// maxCopies bounds the paths remembered per content.
const maxCopies = 4

// contentKey is what two equal samples share: size and block hashes.
type contentKey struct {
	size int64
	n    int
	h    [detect.MaxBlocks]uint64
}

// keyOf returns smp's key; ok is false for a sample with no content.
func keyOf(smp *detect.Sample) (k contentKey, ok bool) {
	if smp == nil || smp.Size == 0 || len(smp.Blocks) == 0 {
		return k, false
	}
	k.size, k.n = smp.Size, len(smp.Blocks)
	for i, b := range smp.Blocks {
		k.h[i] = b.Hash
	}
	return k, true
}

// copies returns the other files whose cached samples equal smp (the last
// sample of path): copies of its content, as far as the sample tells (all
// of a file up to 16 KiB, four blocks of a larger one). The cache, not
// the disk, says which files there are: it follows the events read so
// far, so a copy a program deleted after the deletion being judged, but
// before the watcher read it, still counts, as it should.
func (s *sampler) copies(path string, smp *detect.Sample) []string {
	k, ok := keyOf(smp)
	if !ok {
		return nil
	}
	var out []string
	for _, p := range s.byContent[k] {
		if p == path {
			continue
		}
		if c, ok := keyOf(s.cache[p]); ok && c == k {
			out = append(out, p)
		}
	}
	return out
}

// drop forgets path, deleted, and returns its last sample and file.
func (s *sampler) drop(path string) (*detect.Sample, fileID, bool) {
	smp := s.cache[path]
	id, ok := s.ids[path]
	delete(s.cache, path)
	delete(s.ids, path)
	return smp, id, ok
}

// move renames cached samples at or below from (a file or a folder).
func (s *sampler) move(from, to string, dir bool) {
	if !dir {
		smp, id, ok := s.drop(from)
		s.moved(to, smp, id, ok)
		return
	}
	for p := range s.cache {
		if fswatch.Under(p, from) {
			smp, id, ok := s.drop(p)
			s.moved(to+p[len(from):], smp, id, ok)
		}
	}
	for p := range s.ids { // read, not yet put
		if fswatch.Under(p, from) {
			_, id, ok := s.drop(p)
			s.moved(to+p[len(from):], nil, id, ok)
		}
	}
}

// moved remembers what drop returned under a new path.
func (s *sampler) moved(path string, smp *detect.Sample, id fileID, ok bool) {
	if smp != nil {
		s.put(path, smp)
	}
	if ok {
		s.ids[path] = id
	}
}

// scan samples the files already under roots, within scanMaxFiles and
// scanMaxTime, so that their first write can be compared with what they
// held. It returns how many files it sampled.
func (s *sampler) scan(ctx context.Context, roots []string) int {
	deadline := time.Now().Add(scanMaxTime)
	n := 0
	for _, r := range roots {
		// The callback fails on nothing, so neither does the walk.
		_ = filepath.WalkDir(r, func(p string, d fs.DirEntry, err error) error {
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

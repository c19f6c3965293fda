package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/testtree"
)

var crashSeed = flag.Uint64("crash.seed", 0, "seed of TestCrash and TestConcurrentBackups (0: from the clock)")

// testSeed returns the seed of a randomised test, logged so that a failure
// can be rerun with -crash.seed.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -crash.seed=%d)", seed, seed)
	return seed
}

// TestCrash kills backups with SIGKILL at random moments and requires that
// the repository passes check after each, that the next backup reuses the
// packs a killed one stored, and that a completed backup afterwards restores
// the source exactly and passes verify. A rerun with the same seed makes the same tree,
// mutations and random draws; the delays scale with measured durations, and
// what a kill interrupts depends on timing.
func TestCrash(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	series, kills := 5, 10
	if testing.Short() {
		series, kills = 1, 8
	}
	src := filepath.Join(t.TempDir(), "src")
	tree := newCrashTree(t, src, seed)

	// A clean backup into a repository of its own gives the span kill moments
	// are drawn from, the bytes a full backup adds and its number of packs.
	ref := newEnv(t)
	ref.must("init")
	start := time.Now()
	full := ref.backupSummary(src)
	span := time.Since(start)
	t.Logf("full backup: %v, %d bytes added in %d blobs, %d packs", span.Round(time.Millisecond), full.BytesAdded, full.BlobsAdded, ref.packCount())

	reuse := newEnv(t)
	reuse.must("init")
	reuse.checkReuse(src, full.BytesAdded, ref.packCount())

	// Each series starts from an empty repository, so that its first backups
	// have the whole tree to store and are killed anywhere in it. A completed
	// backup is followed by a rewrite of a large file, so that the next ones
	// have packs to store too, and kill moments are drawn from then on up to
	// a little more than the completed backup took. Some backups ignore the
	// parent snapshot and read everything. A finished series' repository is
	// removed to bound the disk space the test needs.
	for s := range series {
		e := newEnv(t)
		e.must("init")
		limit := span
		for i := range kills {
			delay := time.Duration(rng.Int64N(int64(limit)))
			args := []string{"backup", "--quiet", src}
			if rng.IntN(4) == 0 {
				args = slices.Insert(args, 2, "--force")
			}
			began := time.Now()
			p := e.start(args...)
			timer := time.AfterFunc(delay, p.kill)
			completed := e.waitKilled(p)
			timer.Stop()
			t.Logf("series %d kill %d %q after %v: completed %v; %d packs, %d temporary files", s, i, args[2:len(args)-1], delay.Round(time.Millisecond), completed, e.packCount(), e.tempCount())
			if i%5 == 4 {
				e.must("check", "--read-data")
			} else {
				e.must("check")
			}
			switch {
			case completed:
				limit = time.Since(began) * 5 / 4
				tree.rewriteBig()
			case rng.IntN(3) == 0:
				tree.mutate()
			}
		}
		e.backup(src)
		e.restoreAndCompare("latest", src)
		// The completed backup logged whatever a killed one stored but did
		// not log, and signed what a killed append left unsigned.
		if r := e.run("verify"); r.code != 0 {
			t.Errorf("series %d: verify after the completed backup: exit %d\n%s%s", s, r.code, r.stdout, r.stderr)
		}
		if err := os.RemoveAll(e.repo); err != nil {
			t.Fatal(err)
		}
	}
}

// checkReuse kills the first backup into the repository once it has stored
// two thirds of the packs a full backup writes, and requires the completed
// rerun to add only what the killed one had not stored: less than half of
// full, the bytes a full backup adds.
func (e *testEnv) checkReuse(src string, full int64, packs int) {
	e.t.Helper()
	w := e.watch()
	p := e.start("backup", "--quiet", src)
	done := make(chan struct{})
	go func() {
		defer close(done)
		left := packs * 2 / 3
		w.created(func(name string) bool {
			if strings.HasPrefix(name, "data/") {
				left--
			}
			if left == 0 {
				p.kill()
			}
			return left > 0
		})
	}()
	completed := e.waitKilled(p)
	w.close()
	<-done
	if completed {
		e.t.Fatal("the backup completed before two thirds of its packs were stored")
	}
	stored := e.packBytes()
	if stored == 0 {
		e.t.Fatal("the killed backup stored no pack")
	}
	e.must("check")
	s := e.backupSummary(src)
	e.t.Logf("rerun after a kill: %d bytes were stored, %d added of %d", stored, s.BytesAdded, full)
	if s.BytesAdded >= full/2 {
		e.t.Errorf("rerun added %d bytes, a full backup %d: the killed backup's packs were not reused", s.BytesAdded, full)
	}
	if slack := full / 20; s.BytesAdded > full-stored+slack {
		e.t.Errorf("rerun added %d bytes; with %d of %d stored at most %d were missing", s.BytesAdded, stored, full, full-stored+slack)
	}
}

// proc is a running kalaja command.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
}

// start starts kalaja with args. The process is killed when the test ends,
// in case the test failed before waiting for it.
func (e *testEnv) start(args ...string) *proc {
	e.t.Helper()
	p := &proc{cmd: exec.Command(kalajaBin, args...)}
	p.cmd.Env = append(os.Environ(), e.vars...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		e.t.Fatalf("start kalaja %v: %v", args, err)
	}
	e.t.Cleanup(p.kill)
	return p
}

// kill sends p SIGKILL; after p has ended it does nothing.
func (p *proc) kill() { p.cmd.Process.Kill() }

// waitKilled waits for p and reports whether it completed (exit 0) rather
// than died of SIGKILL; any other end fails the test.
func (e *testEnv) waitKilled(p *proc) bool {
	e.t.Helper()
	err := p.cmd.Wait()
	if err == nil {
		return true
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return false
		}
	}
	e.t.Fatalf("kalaja %v: %v\nstdout:\n%s\nstderr:\n%s", p.cmd.Args[1:], err, &p.stdout, &p.stderr)
	return false
}

// backupSummary runs a complete backup of paths and returns its summary.
func (e *testEnv) backupSummary(paths ...string) snapshot.Summary {
	e.t.Helper()
	r := e.must(append([]string{"backup", "--json"}, paths...)...)
	var v struct {
		Summary *snapshot.Summary `json:"summary"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Summary == nil {
		e.t.Fatalf("backup output %q: %v", r.stdout, err)
	}
	return *v.Summary
}

// restoreAndCompare restores snapshot name into a new directory and requires
// it to equal src.
func (e *testEnv) restoreAndCompare(name, src string) {
	e.t.Helper()
	out := filepath.Join(e.t.TempDir(), "restore")
	e.must("restore", name, "--target", out)
	diffs := testtree.Compare(src, filepath.Join(out, src), testtree.CompareOptions{})
	for i, d := range diffs {
		if i == 20 {
			e.t.Errorf("... and %d more differences", len(diffs)-i)
			break
		}
		e.t.Errorf("restored %s differs from %s: %v", name, src, d)
	}
}

// packs returns the stored pack files of the repository.
func (e *testEnv) packs() []fs.FileInfo {
	e.t.Helper()
	var list []fs.FileInfo
	err := filepath.WalkDir(filepath.Join(e.repo, "data"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		list = append(list, fi)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return list
}

func (e *testEnv) packCount() int { return len(e.packs()) }

// tempCount returns the number of files in the repository's tmp/.
func (e *testEnv) tempCount() int {
	e.t.Helper()
	ents, err := os.ReadDir(filepath.Join(e.repo, "tmp"))
	if err != nil {
		e.t.Fatal(err)
	}
	return len(ents)
}

// packBytes returns the total size of the stored packs.
func (e *testEnv) packBytes() int64 {
	var n int64
	for _, fi := range e.packs() {
		n += fi.Size()
	}
	return n
}

// repoWatcher reports, through inotify, the names created in or moved into
// the directories a repository had when the watch began.
type repoWatcher struct {
	t    testing.TB
	f    *os.File
	dirs map[int32]string // watch descriptor -> directory relative to the repository
}

// watch starts watching every directory of the repository.
func (e *testEnv) watch() *repoWatcher {
	e.t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		e.t.Fatalf("inotify: %v", err)
	}
	w := &repoWatcher{t: e.t, f: os.NewFile(uintptr(fd), "inotify"), dirs: map[int32]string{}}
	err = filepath.WalkDir(e.repo, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		wd, err := unix.InotifyAddWatch(fd, p, unix.IN_CREATE|unix.IN_MOVED_TO)
		if err != nil {
			return fmt.Errorf("watch %s: %w", p, err)
		}
		rel, _ := filepath.Rel(e.repo, p)
		w.dirs[int32(wd)] = filepath.ToSlash(rel)
		return nil
	})
	if err != nil {
		w.f.Close()
		e.t.Fatal(err)
	}
	return w
}

// created calls fn with the repository-relative path of every name created
// or moved in, until fn returns false or the watcher is closed. A lost event
// (queue overflow) fails the test. It may run in its own goroutine.
func (w *repoWatcher) created(fn func(name string) bool) {
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return
		}
		for b := buf[:n]; len(b) >= unix.SizeofInotifyEvent; {
			wd := int32(binary.NativeEndian.Uint32(b))
			mask := binary.NativeEndian.Uint32(b[4:])
			size := int(binary.NativeEndian.Uint32(b[12:]))
			name := strings.TrimRight(string(b[unix.SizeofInotifyEvent:unix.SizeofInotifyEvent+size]), "\x00")
			b = b[unix.SizeofInotifyEvent+size:]
			if mask&unix.IN_Q_OVERFLOW != 0 {
				w.t.Error("inotify queue overflowed: events were lost")
				return
			}
			if !fn(w.dirs[wd] + "/" + name) {
				return
			}
		}
	}
}

// close ends the watch; a created call returns.
func (w *repoWatcher) close() { w.f.Close() }

// crashTree is the source of the crash test: large incompressible files so
// that a backup fills many packs, medium files, and many small text files in
// nested directories. rewriteBig and mutate change it between backups.
type crashTree struct {
	t     *testing.T
	rng   *rand.Rand
	bytes *rand.ChaCha8
	big   []string
	text  []string
	added int
}

const (
	crashBigFiles = 6
	crashBigSize  = 24 << 20
)

// newCrashTree generates a tree of about 200 MiB at dir from seed.
func newCrashTree(t *testing.T, dir string, seed uint64) *crashTree {
	t.Helper()
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	c := &crashTree{t: t, rng: rand.New(rand.NewPCG(seed, 1)), bytes: rand.NewChaCha8(key)}
	for _, d := range []string{"big", "mid"} {
		c.mkdir(filepath.Join(dir, d))
	}
	for i := range crashBigFiles {
		p := filepath.Join(dir, "big", fmt.Sprintf("big-%d.bin", i))
		c.write(p, c.random(crashBigSize))
		c.big = append(c.big, p)
	}
	for i := range 20 {
		n := 256<<10 + c.rng.IntN(3<<20)
		data := c.random(n)
		if i%2 == 0 {
			data = c.textLines(n)
		}
		c.write(filepath.Join(dir, "mid", fmt.Sprintf("mid-%02d", i)), data)
	}
	for i := range 20 {
		d := filepath.Join(dir, "text", fmt.Sprintf("d%02d", i), fmt.Sprintf("sub-%d", i%3))
		c.mkdir(d)
		for j := range 20 + c.rng.IntN(20) {
			p := filepath.Join(d, fmt.Sprintf("f%02d.txt", j))
			c.write(p, c.textLines(c.rng.IntN(64<<10)))
			c.text = append(c.text, p)
		}
	}
	return c
}

func (c *crashTree) mkdir(d string) {
	if err := os.MkdirAll(d, 0o755); err != nil {
		c.t.Fatal(err)
	}
}

func (c *crashTree) random(n int) []byte {
	b := make([]byte, n)
	c.bytes.Read(b)
	return b
}

// textLines returns n bytes of numbered lines.
func (c *crashTree) textLines(n int) []byte {
	var b bytes.Buffer
	for b.Len() < n {
		fmt.Fprintf(&b, "line %d: %x\n", b.Len(), c.rng.Uint64())
	}
	return b.Bytes()[:n]
}

func (c *crashTree) write(p string, data []byte) {
	if err := os.WriteFile(p, data, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// rewriteBig gives a large file new content.
func (c *crashTree) rewriteBig() {
	c.write(c.big[c.rng.IntN(len(c.big))], c.random(crashBigSize))
}

// mutate changes one to three files: a new region in a large file, a text
// file appended to or rewritten, or a new text file.
func (c *crashTree) mutate() {
	for range 1 + c.rng.IntN(3) {
		switch c.rng.IntN(4) {
		case 0:
			c.writeAt(c.big[c.rng.IntN(len(c.big))], c.random(64<<10), c.rng.Int64N(crashBigSize-64<<10))
		case 1:
			p := c.text[c.rng.IntN(len(c.text))]
			old, err := os.ReadFile(p)
			if err != nil {
				c.t.Fatal(err)
			}
			c.write(p, append(old, c.textLines(100)...))
		case 2:
			c.write(c.text[c.rng.IntN(len(c.text))], c.textLines(c.rng.IntN(64<<10)))
		case 3:
			p := filepath.Join(filepath.Dir(c.text[0]), fmt.Sprintf("added-%d.txt", c.added))
			c.added++
			c.write(p, c.textLines(c.rng.IntN(16<<10)))
			c.text = append(c.text, p)
		}
	}
}

// writeAt writes data into the existing file p at off.
func (c *crashTree) writeAt(p string, data []byte, off int64) {
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		c.t.Fatal(err)
	}
	_, err = f.WriteAt(data, off)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		c.t.Fatal(err)
	}
}

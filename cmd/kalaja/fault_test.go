package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/server"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/faulty"
	"github.com/kalaja/kalaja/internal/store/local"
	"github.com/kalaja/kalaja/internal/testtree"
)

// The fault suite of the server (issue 4): the server killed mid-upload,
// connections cut mid-request, the server's disk full. Each client either
// succeeds or fails with a clear error, and every acknowledged snapshot
// restores byte-identical.

// faultSeed returns the seed of a fault test's random choices, from
// KALAJA_FAULT_SEED if set (to repeat a run), else from the clock; it is
// logged either way.
func faultSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("KALAJA_FAULT_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("KALAJA_FAULT_SEED=%q: %v", v, err)
		}
	}
	t.Logf("seed %d (KALAJA_FAULT_SEED=%d repeats the random choices)", seed, seed)
	return seed
}

// running is a kalaja command started in the background.
type running struct {
	cmd       *exec.Cmd
	out, errb bytes.Buffer
	done      chan struct{}
	res       result
	took      time.Duration // from start to end
}

// background starts kalaja with args in e's environment without waiting
// for it.
func (e *testEnv) background(args ...string) *running {
	e.t.Helper()
	r := &running{cmd: exec.Command(kalajaBin, args...), done: make(chan struct{})}
	r.cmd.Env = append(os.Environ(), e.vars...)
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.errb
	if err := r.cmd.Start(); err != nil {
		e.t.Fatalf("start kalaja %v: %v", args, err)
	}
	begin := time.Now()
	go func() {
		defer close(r.done)
		err := r.cmd.Wait()
		r.took = time.Since(begin)
		r.res = result{stdout: r.out.String(), stderr: r.errb.String()}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			r.res.code = ee.ExitCode()
		} else if err != nil {
			r.res.code, r.res.stderr = -1, err.Error()
		}
	}()
	return r
}

// wait waits for the command to end and returns what it did.
func (r *running) wait() result {
	<-r.done
	return r.res
}

// exited reports whether the command has ended.
func (r *running) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// backupOutput is what backup --json prints.
type backupOutput struct {
	Snapshot string           `json:"snapshot"`
	Summary  snapshot.Summary `json:"summary"`
}

func parseBackup(t *testing.T, r result) backupOutput {
	t.Helper()
	var b backupOutput
	if err := json.Unmarshal([]byte(r.stdout), &b); err != nil || b.Snapshot == "" {
		t.Fatalf("backup exited 0 but printed %q (%v); stderr:\n%s", r.stdout, err, r.stderr)
	}
	return b
}

// assertClearFailure fails t unless r is a failed command whose message
// is a plain error (no panic, not empty) that names the server or its
// connection, or says one of also.
func assertClearFailure(t *testing.T, what string, r result, location string, also ...string) {
	t.Helper()
	msg := strings.TrimSpace(r.stderr)
	named := strings.Contains(msg, location)
	for _, s := range append([]string{"connection"}, also...) {
		named = named || strings.Contains(msg, s)
	}
	switch {
	case r.code != exitFailure:
		t.Errorf("%s: exit %d, want %d (failure)\nstdout:\n%s\nstderr:\n%s", what, r.code, exitFailure, r.stdout, msg)
	case msg == "":
		t.Errorf("%s: failed without a message", what)
	case strings.Contains(msg, "panic") || strings.Contains(msg, "goroutine "):
		t.Errorf("%s: panicked:\n%s", what, msg)
	case !named:
		t.Errorf("%s: the error names neither the server %s nor its connection:\n%s", what, location, msg)
	}
}

// ack is a snapshot a backup acknowledged (exit 0), with the rounds of
// the source tree it holds: src/r00 to src/rNN, NN = rounds-1.
type ack struct {
	id     string
	rounds int
}

// roundDir is the directory a round adds to the source tree.
func roundDir(src string, i int) string { return filepath.Join(src, fmt.Sprintf("r%02d", i)) }

// assertAcked restores every acknowledged snapshot and compares it with
// the source tree. The newest is restored whole; the others only the
// round they added (earlier rounds are the same subtrees, restored with
// the newest), and each must lack the rounds it did not back up.
func assertAcked(t *testing.T, e *testEnv, src string, acks []ack) {
	t.Helper()
	for i, a := range acks {
		out := filepath.Join(t.TempDir(), "out")
		must(t, os.Mkdir(out, 0o700))
		t.Cleanup(func() { testtree.MakeRemovable(out) })
		newest := i == len(acks)-1
		args := []string{"restore", a.id, "--target", out}
		if !newest {
			args = append(args, "--include", roundDir(src, a.rounds-1), "--include", roundDir(src, a.rounds))
		}
		e.must(args...)
		first := 0
		if !newest {
			first = a.rounds - 1
		}
		for r := first; r < a.rounds; r++ {
			assertSameTree(t, roundDir(src, r), filepath.Join(out, roundDir(src, r)))
		}
		if _, err := os.Lstat(filepath.Join(out, roundDir(src, a.rounds))); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("snapshot %s of %d rounds holds round %d (or: %v)", a.id, a.rounds, a.rounds, err)
		}
	}
}

// treeBytes returns the apparent size of the regular files below dir.
func treeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	must(t, err)
	return n
}

// addRound adds round i to the source tree src: the first round is a
// testtree (every kind of file and metadata), the others about 16 MB of
// incompressible files (a pack), so that a backup has uploads in flight for
// a while.
func addRound(t *testing.T, src string, i int, rng *rand.Rand) {
	t.Helper()
	dir := roundDir(src, i)
	if i == 0 {
		generate(t, dir, testtree.Options{Seed: rng.Int64(), Files: 30, MaxFileSize: 1 << 20})
		return
	}
	must(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
	for f := range 16 {
		b := make([]byte, 512<<10+rng.IntN(1<<20))
		for j := 0; j+8 <= len(b); j += 8 {
			binary.LittleEndian.PutUint64(b[j:], rng.Uint64())
		}
		name := filepath.Join(dir, fmt.Sprintf("f%d.bin", f))
		if f%3 == 0 {
			name = filepath.Join(dir, "sub", fmt.Sprintf("f%d.bin", f))
		}
		must(t, os.WriteFile(name, b, 0o644))
	}
}

// TestFaultServerKilled kills the server with SIGKILL at a random moment of
// each of 20 backups and starts it again at once on the same address and
// directories. Every backup must succeed or fail clearly; every
// acknowledged snapshot must restore, check and verify must pass, and a
// last backup must reuse what was uploaded.
func TestFaultServerKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 20 server crashes")
	}
	const rounds = 20
	rng := rand.New(rand.NewPCG(faultSeed(t), 1))
	base := t.TempDir()
	repoDir, serverDir, src := filepath.Join(base, "repo"), filepath.Join(base, "server"), filepath.Join(base, "src")
	s := startServerAt(t, repoDir, serverDir, "127.0.0.1:0")
	addr := hostPort(t, s.url)
	location := strings.TrimSuffix(s.url, "/")
	_, tokenFile := s.addToken(t, "host-1")
	e := s.client(t, tokenFile)
	e.must("init")
	must(t, os.Mkdir(src, 0o755))

	var (
		acks             []ack
		failed, inFlight int
		logs             []string
		took             time.Duration
	)
	for i := range rounds {
		addRound(t, src, i, rng)
		delay := time.Duration(rng.Int64N(int64(1500 * time.Millisecond)))
		b := e.background("backup", "--json", "--host", "fault", src)
		time.Sleep(delay) // the fault's moment, not a synchronisation
		if !b.exited() {
			inFlight++
		}
		s.kill(t)
		logs = append(logs, s.log())
		if i == rounds/2 {
			// A server that stays down outlasts the client's retries: the
			// backup gives up, clearly.
			r := e.run("backup", "--json", "--host", "fault", src)
			assertClearFailure(t, "backup while the server is down", r, location, "connection refused")
			t.Logf("backup while the server is down: %s", lastLine(r.stderr))
		}
		s = startServerAt(t, repoDir, serverDir, addr)
		r := b.wait()
		took += b.took
		t.Logf("round %d: kill at %v, backup took %v", i, delay.Round(time.Millisecond), b.took.Round(time.Millisecond))
		if r.code == 0 {
			acks = append(acks, ack{id: parseBackup(t, r).Snapshot, rounds: i + 1})
			continue
		}
		failed++
		assertClearFailure(t, fmt.Sprintf("round %d (killed after %v)", i, delay.Round(time.Millisecond)), r, location)
		t.Logf("round %d failed after a kill at %v: %s", i, delay.Round(time.Millisecond), lastLine(r.stderr))
	}
	t.Logf("%d rounds: %d acknowledged, %d failed clearly; %d kills landed while the backup ran; %v in backups",
		rounds, len(acks), failed, inFlight, took.Round(time.Millisecond))
	t.Logf("server answers: %s", countStatuses(append(logs, s.log())))

	start := time.Now()
	e.must("check", "--read-data")
	e.must("verify", "--read-data")
	assertAcked(t, e, src, acks)
	t.Logf("check, verify and %d restores: %v", len(acks), time.Since(start).Round(time.Millisecond))

	// The last backup reuses what the acknowledged ones uploaded: it
	// adds at most the rounds none of them holds (and their trees).
	last := parseBackup(t, e.must("backup", "--json", "--host", "fault", src))
	covered := 0
	if len(acks) > 0 {
		covered = acks[len(acks)-1].rounds
	}
	var bound int64 = 1 << 20
	for i := covered; i < rounds; i++ {
		bound += treeBytes(t, roundDir(src, i))
	}
	t.Logf("last backup: %d of %d bytes read, %d bytes added (bound %d: %d rounds not acknowledged)",
		last.Summary.BytesRead, last.Summary.TotalBytes, last.Summary.BytesAdded, bound, rounds-covered)
	if last.Summary.BytesAdded > bound {
		t.Errorf("the last backup added %d bytes, more than the %d of the rounds no snapshot held", last.Summary.BytesAdded, bound)
	}
	assertAcked(t, e, src, []ack{{id: last.Snapshot, rounds: rounds}})
	e.must("check")
}

// hostPort returns the host:port of a server URL.
func hostPort(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	must(t, err)
	return p.Host
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// countStatuses counts the statuses of the requests in server logs.
func countStatuses(logs []string) string {
	n := map[string]int{}
	for _, l := range logs {
		for _, line := range strings.Split(l, "\n") {
			if _, rest, ok := strings.Cut(line, " status="); ok && strings.Contains(line, "msg=request") {
				st, _, _ := strings.Cut(rest, " ")
				n[st]++
			}
		}
	}
	return fmt.Sprint(n)
}

// cutProxy forwards TCP connections to a server and cuts some of them
// mid-stream: every connection whose number (from 1) is not a multiple of
// keep is closed, both ways, with a reset, once a random number of bytes
// (from its seeded rng) went through it in the direction being cut. It
// works below TLS, which passes through untouched.
type cutProxy struct {
	ln     net.Listener
	target string
	keep   int
	down   atomic.Bool // cut the server's answers instead of the requests

	mu    sync.Mutex
	rng   *rand.Rand
	conns int

	cuts atomic.Int64
	wg   sync.WaitGroup
}

// newCutProxy listens on a free port of 127.0.0.1 and forwards to target;
// the test's end stops it.
func newCutProxy(t *testing.T, target string, keep int, seed uint64) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	p := &cutProxy{ln: ln, target: target, keep: keep, rng: rand.New(rand.NewPCG(seed, 2))}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	return p
}

// connections returns how many connections the proxy accepted.
func (p *cutProxy) connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns
}

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns++
		limit := int64(-1)
		if p.conns%p.keep != 0 {
			limit = 4<<10 + p.rng.Int64N(3<<20)
		}
		p.mu.Unlock()
		p.wg.Add(1)
		go p.forward(c, limit)
	}
}

// forward copies c to a new connection to the target and back; limit,
// if not negative, is where the stream being cut is cut.
func (p *cutProxy) forward(c net.Conn, limit int64) {
	defer p.wg.Done()
	defer c.Close()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	up, down := limit, int64(-1)
	if p.down.Load() {
		up, down = down, up
	}
	var once sync.Once
	cut := func() {
		once.Do(func() {
			p.cuts.Add(1)
			c.(*net.TCPConn).SetLinger(0)
			s.(*net.TCPConn).SetLinger(0)
			c.Close()
			s.Close()
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.copy(s, c, up, cut)
	}()
	p.copy(c, s, down, cut)
	<-done
}

// copy copies src to dst; after limit bytes (if not negative) it calls
// cut. Either end closing ends both.
func (p *cutProxy) copy(dst, src net.Conn, limit int64, cut func()) {
	var r io.Reader = src
	if limit >= 0 {
		r = io.LimitReader(src, limit)
	}
	_, err := io.Copy(dst, r)
	if limit >= 0 && err == nil {
		// The limit was reached, or the sender closed first: either way
		// the connection ends here; only the former counts as a cut.
		var one [1]byte
		if n, _ := src.Read(one[:]); n > 0 {
			cut()
			return
		}
	}
	src.Close()
	dst.Close()
}

// TestFaultConnectionCut backs up, restores and checks through a proxy
// that cuts connections mid-request and mid-answer.
func TestFaultConnectionCut(t *testing.T) {
	const rounds = 6
	seed := faultSeed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	s := startServer(t)
	p := newCutProxy(t, hostPort(t, s.url), 2, seed)
	_, tokenFile := s.addToken(t, "host-1")
	e := s.client(t, tokenFile)
	location := "https://" + p.ln.Addr().String()
	e.vars = append(e.vars, "KALAJA_REPOSITORY="+location+"/")
	e.must("init")

	src := filepath.Join(t.TempDir(), "src")
	must(t, os.Mkdir(src, 0o755))
	var (
		acks   []ack
		failed int
	)
	start := time.Now()
	for i := range rounds {
		addRound(t, src, i, rng)
		r := e.run("backup", "--json", "--host", "cut", src)
		if r.code == 0 {
			acks = append(acks, ack{id: parseBackup(t, r).Snapshot, rounds: i + 1})
			continue
		}
		failed++
		assertClearFailure(t, fmt.Sprintf("round %d", i), r, location)
		t.Logf("round %d failed: %s", i, lastLine(r.stderr))
	}
	t.Logf("%d backups through the proxy: %d acknowledged, %d failed clearly; %d of %d connections cut mid-request; %v",
		rounds, len(acks), failed, p.cuts.Load(), p.connections(), time.Since(start).Round(time.Millisecond))
	if len(acks) == 0 {
		t.Fatal("no backup got through the proxy")
	}

	start, upCuts := time.Now(), p.cuts.Load()
	p.down.Store(true)
	assertAcked(t, e, src, acks)
	e.must("check", "--read-data")
	t.Logf("%d restores and a check through the proxy: %d connections cut mid-answer; %v",
		len(acks), p.cuts.Load()-upCuts, time.Since(start).Round(time.Millisecond))
	t.Logf("server answers: %s", countStatuses([]string{s.log()}))
}

// writeRandom writes a file of n incompressible bytes from rng.
func writeRandom(t *testing.T, name string, n int, rng *rand.Rand) {
	t.Helper()
	b := make([]byte, n)
	for j := 0; j+8 <= n; j += 8 {
		binary.LittleEndian.PutUint64(b[j:], rng.Uint64())
	}
	must(t, os.WriteFile(name, b, 0o644))
}

// fullMessages are what a clear "the server's disk is full" error says:
// the system's ENOSPC message, or the server's own words for it.
var fullMessages = []string{"storage is full", "Insufficient Storage"}

// assertFullFailure fails t unless r failed clearly; it logs whether the
// message says that the server's storage is full.
func assertFullFailure(t *testing.T, r result, location string) {
	t.Helper()
	assertClearFailure(t, "backup onto a full disk", r, location)
	for _, m := range fullMessages {
		if strings.Contains(r.stderr, m) {
			t.Logf("backup onto a full disk failed clearly: %s", lastLine(r.stderr))
			return
		}
	}
	t.Errorf("backup onto a full disk: the error does not say that the server's storage is full: %s", lastLine(r.stderr))
}

// TestFaultDiskFull fills the server's disk during a backup: the backup
// fails clearly, earlier snapshots still restore, and once space is
// freed the next backup succeeds and check passes.
func TestFaultDiskFull(t *testing.T) {
	rng := rand.New(rand.NewPCG(faultSeed(t), 1))
	t.Run("tmpfs", func(t *testing.T) {
		mnt := filepath.Join(t.TempDir(), "fs")
		must(t, os.Mkdir(mnt, 0o700))
		if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=32m,mode=0700"); err != nil {
			t.Skipf("cannot mount a tmpfs (%v; it needs CAP_SYS_ADMIN): TestFaultDiskFull/injected covers a full disk", err)
		}
		t.Cleanup(func() {
			if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", mnt, err)
			}
		})
		s := startServerAt(t, filepath.Join(mnt, "repo"), filepath.Join(t.TempDir(), "server"), "127.0.0.1:0")
		_, tokenFile := s.addToken(t, "host-1")
		e := s.client(t, tokenFile)
		diskFull(t, e, strings.TrimSuffix(s.url, "/"), rng, func(full bool) {
			filler := filepath.Join(mnt, "filler")
			if !full {
				must(t, os.Remove(filler))
				return
			}
			// Fill the file system, then leave 2 MiB: less than the
			// backup's first pack.
			f, err := os.Create(filler)
			must(t, err)
			chunk := make([]byte, 1<<20)
			var n int64
			for {
				w, err := f.Write(chunk)
				n += int64(w)
				if errors.Is(err, syscall.ENOSPC) {
					break
				}
				must(t, err)
			}
			must(t, f.Truncate(max(n-2<<20, 0)))
			must(t, f.Close())
		})
		if !strings.Contains(s.log(), "no space left on device") {
			t.Errorf("the server's log does not say that its disk is full:\n%s", grepLines(s.log(), "level=WARN"))
		}
	})
	t.Run("injected", func(t *testing.T) {
		dir := t.TempDir()
		st, err := local.Create(filepath.Join(dir, "repo"))
		must(t, err)
		tokens, err := server.OpenTokens(filepath.Join(dir, "tokens"))
		must(t, err)
		token, err := tokens.Add("host-1")
		must(t, err)
		tokenFile := filepath.Join(dir, "token")
		must(t, os.WriteFile(tokenFile, []byte(token+"\n"), 0o600))
		enospc := &fs.PathError{Op: "write", Path: filepath.Join(dir, "repo", "tmp", "data-1"), Err: syscall.ENOSPC}
		var logs bytes.Buffer
		var mu sync.Mutex
		newServer := func(s store.Store) http.Handler {
			srv, err := server.New(server.Options{Store: s, Tokens: tokens, Logger: slog.New(slog.NewTextHandler(lockedBuffer{&mu, &logs}, nil))})
			must(t, err)
			return srv
		}
		ok, full := newServer(st), newServer(faulty.New(st, faulty.Fault{Op: faulty.OpSave, Type: store.Packs, Err: enospc}))
		var current atomic.Pointer[http.Handler]
		current.Store(&ok)
		ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			(*current.Load()).ServeHTTP(w, r)
		}))
		ts.EnableHTTP2 = true
		ts.StartTLS()
		t.Cleanup(ts.Close)
		certFile := filepath.Join(dir, "cert.pem")
		must(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600))
		e := envAt(t, ts.URL+"/")
		e.vars = append(e.vars, "KALAJA_SERVER_CERT="+certFile, "KALAJA_SERVER_TOKEN_FILE="+tokenFile)
		diskFull(t, e, ts.URL, rng, func(f bool) {
			if f {
				current.Store(&full)
			} else {
				current.Store(&ok)
			}
		})
		mu.Lock()
		defer mu.Unlock()
		t.Logf("server answers: %s", countStatuses([]string{logs.String()}))
	})
}

// lockedBuffer is an io.Writer appending to a buffer under a lock.
type lockedBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// diskFull runs the disk-full scenario against the server e uses: a
// backup, then fill(true) fills the server's disk, a backup that must fail
// clearly, a restore of the first, fill(false) frees the space, and a
// backup that must succeed and restore, and check.
func diskFull(t *testing.T, e *testEnv, location string, rng *rand.Rand, fill func(full bool)) {
	t.Helper()
	e.must("init")
	src := filepath.Join(t.TempDir(), "src")
	must(t, os.MkdirAll(filepath.Join(src, "r00"), 0o755))
	for i := range 4 {
		writeRandom(t, filepath.Join(src, "r00", fmt.Sprintf("f%d.bin", i)), 1<<20, rng)
	}
	first := parseBackup(t, e.must("backup", "--json", "--host", "full", src))

	fill(true)
	must(t, os.Mkdir(filepath.Join(src, "r01"), 0o755))
	for i := range 8 {
		writeRandom(t, filepath.Join(src, "r01", fmt.Sprintf("f%d.bin", i)), 1<<20, rng)
	}
	start := time.Now()
	r := e.run("backup", "--json", "--host", "full", src)
	t.Logf("the backup onto a full disk ended after %v", time.Since(start).Round(time.Millisecond))
	assertFullFailure(t, r, location)
	assertAcked(t, e, src, []ack{{id: first.Snapshot, rounds: 1}})

	fill(false)
	second := parseBackup(t, e.must("backup", "--json", "--host", "full", src))
	e.must("check", "--read-data")
	assertAcked(t, e, src, []ack{{id: first.Snapshot, rounds: 1}, {id: second.Snapshot, rounds: 2}})
}

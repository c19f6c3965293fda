// Package watcher watches protected folders for ransomware and wiper
// behaviour and responds. It composes an event source (internal/fswatch),
// cheap content features (a bounded sample of each written file, compared
// with the cached sample of what it held), the process table (which
// process tree each event is charged to) and the pure scoring of
// internal/detect; on an alert it stops the offending processes
// (SIGSTOP, so an operator can inspect or kill them) and hands the alert
// to the caller, who may alert further and take a protective snapshot.
//
// Events caused by the watcher's own process are never scored (they still
// update the content cache); its own process and its ancestors are never
// stopped. It also guards the files Kalaja keeps on the host
// (Config.Guard): a write, rename or deletion there by a process not
// running Kalaja's executable alerts at once. docs/design.md, "Watcher (detector version 1)", documents the
// signals, the process trees, the response and the limits.
package watcher

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/detect"
	"github.com/kalaja/kalaja/internal/fswatch"
)

// Config configures a Watcher.
type Config struct {
	Paths    []string           // protected roots (absolute)
	Detect   detect.Config      // scoring; detect.DefaultConfig() gives the documented defaults
	Backend  string             // "auto" (fanotify if permitted, else inotify), "fanotify", "inotify"
	Stop     bool               // SIGSTOP the offending process tree/group when an alert fires
	Canaries bool               // place and watch canary files under each path
	Logger   *slog.Logger       // may be nil
	OnAlert  func(detect.Alert) // called for every alert, after the stop (if any) was done; from Run's goroutine, so it must not block long
	Now      func() time.Time   // clock for event times; nil means time.Now
	// RawDevices are the block devices watched for raw writes: nil means
	// every block device in /dev (and, with fanotify, those created
	// later); an empty non-nil slice means none. A drill or test on a
	// shared machine names its own loop device, so that other programs'
	// raw writes are not taken for its attack.
	RawDevices []string
	// Realtime handles events at real-time priority (fswatch.Options):
	// fewer files lost on a busy machine; needs root. With Stop it also
	// holds suspects on the event thread's CPU (see holder).
	Realtime bool
	// Guard are the files and folders Kalaja keeps on the host (a local
	// repository, the state directory, password, token and key files),
	// inside the protected paths or not. Any write, rename or deletion
	// there by a process not running Kalaja's own executable alerts at
	// once (detect.BackupTamper) and is stopped; reads are not seen.
	// Kalaja's own changes there are neither alerts nor scored. Paths
	// that do not exist are left out (and logged). It needs PIDs
	// (fanotify): with inotify nothing is guarded, and the log says so.
	Guard []string
}

// execReporter is a source that may report the starts of
// fswatch.Options.Exec (fanotify).
type execReporter interface {
	Execs() bool
}

// maxPending bounds the written files waiting for their rename.
const maxPending = 4096

// Watcher watches the protected paths. Create it with New, then call Run
// once.
type Watcher struct {
	cfg      Config
	log      *slog.Logger
	roots    []string
	src      fswatch.Source
	det      *detect.Detector
	procs    *procs
	hold     *holder // nil unless Realtime and Stop
	samples  *sampler
	canaries map[string]bool
	placed   []string
	guard    *guard          // nil: nothing guarded
	pending  map[string]bool // written files gone before they were sampled (renamed away)
	// unwritten are files created and not (yet) written: where a hard
	// link puts content that already exists (see linked).
	unwritten map[string]*newFile
	hurry     bool       // the batch being handled asks for the next at once (see handle)
	raised    uint64     // the detector's Raised after the last batch
	ticked    time.Time  // when the proc connector was last drained
	mu        sync.Mutex // guards placed, stopped, after and syncs (used from any goroutine)
	runOnce   sync.Once

	// stopped maps the processes this watcher stopped to their alert's
	// group, and groups holds those groups; after the paths that events of
	// the groups' processes named once the alert was raised (events
	// already queued when the stop took effect, of processes that ended
	// before it): see Touched. nstopped is len(stopped), read without the
	// lock on every event.
	stopped  map[int]int
	groups   map[int]bool
	after    map[int][]string
	nstopped atomic.Int32
	// unsettled holds the processes stopped but not yet seen stopped:
	// SIGSTOP takes effect asynchronously, after a system call under way
	// (a write, a truncation) has finished. Sync waits for them.
	unsettled map[int]bool
	// syncs are the marker files Sync waits for, by path; nsyncs is
	// len(syncs), read without the lock on every event.
	syncs   map[string]chan struct{}
	nsyncs  atomic.Int32
	syncSeq atomic.Uint64
}

// maxAfter bounds the paths remembered for one alerted group (Touched).
const maxAfter = 4096

// settleTimeout bounds Sync's wait for the processes it stopped to be
// seen stopped.
const settleTimeout = time.Second

// New validates cfg, places the canary files (if asked) and opens the
// event source, so that Backend and Canaries answer before Run. If Run is
// never called the caller leaks the source's descriptors.
func New(cfg Config) (*Watcher, error) {
	if len(cfg.Paths) == 0 {
		return nil, errors.New("watcher: no path to protect")
	}
	if cfg.Backend == "" {
		cfg.Backend = "auto"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	det, err := detect.New(cfg.Detect)
	if err != nil {
		return nil, fmt.Errorf("watcher: %w", err)
	}
	w := &Watcher{cfg: cfg, log: cfg.Logger, det: det, samples: newSampler(), canaries: map[string]bool{}, pending: map[string]bool{}, unwritten: map[string]*newFile{},
		stopped: map[int]int{}, groups: map[int]bool{}, after: map[int][]string{}, unsettled: map[int]bool{},
		syncs: map[string]chan struct{}{}}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	for _, p := range cfg.Paths {
		a, err := filepath.Abs(p)
		if err == nil {
			a, err = filepath.EvalSymlinks(a)
		}
		if err != nil {
			return nil, fmt.Errorf("watcher: %w", err)
		}
		if fi, err := os.Stat(a); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("watcher: %s is not a folder", p)
		}
		w.roots = append(w.roots, a)
	}
	guarded, exe := w.guarded()
	if cfg.Canaries {
		// Placed before the source opens, so that even without PIDs
		// (inotify) their creation is not taken for an attack.
		if w.placed, err = placeCanaries(w.roots, guarded); err != nil {
			return nil, fmt.Errorf("watcher: %w", err)
		}
		for _, c := range w.placed {
			w.canaries[c] = true
		}
	}
	if w.src, err = fswatch.Open(cfg.Backend, w.roots, fswatch.Options{Devices: cfg.RawDevices, Log: w.log, Realtime: cfg.Realtime,
		Guard: guarded, Exec: exe}); err != nil {
		return nil, errors.Join(fmt.Errorf("watcher: %w", err), removeCanaries(w.placed))
	}
	ex, _ := w.src.(execReporter)
	switch {
	case len(guarded) == 0:
	case !w.src.PIDs() || ex == nil || !ex.Execs():
		w.log.Warn("Kalaja's own files are not guarded: that needs fanotify (root) reporting the starts of Kalaja's executable, to tell Kalaja's processes from others", "paths", guarded)
	default:
		if w.guard, err = newGuard(guarded, exe); err != nil {
			return nil, errors.Join(fmt.Errorf("watcher: guard: %w", err), w.src.Close(), removeCanaries(w.placed))
		}
	}
	w.procs = newProcs()
	if cfg.Realtime && cfg.Stop && w.src.PIDs() {
		w.hold = newHolder()
	}
	if w.src.PIDs() {
		if err := w.procs.listen(); err != nil {
			w.log.Warn("process tree tracking from /proc only: short-lived processes may not be tied to their parent", "err", err)
		}
	}
	return w, nil
}

// guarded resolves Config.Guard (absolute, symbolic links resolved,
// missing paths left out and logged) and this process's executable.
// Nothing is guarded when the executable cannot be found.
func (w *Watcher) guarded() (paths []string, exe string) {
	if len(w.cfg.Guard) == 0 {
		return nil, ""
	}
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		w.log.Warn("Kalaja's own files are not guarded: its own executable is unknown", "err", err)
		return nil, ""
	}
	for _, p := range w.cfg.Guard {
		a, err := filepath.Abs(p)
		if err == nil {
			a, err = filepath.EvalSymlinks(a)
		}
		if err != nil {
			w.log.Warn("not guarded", "path", p, "err", err)
			continue
		}
		if !slices.Contains(paths, a) {
			paths = append(paths, a)
		}
	}
	if len(paths) == 0 {
		return nil, ""
	}
	return paths, exe
}

// Guarded lists the paths guarded (Config.Guard, resolved), or none
// when guarding is off (see Config.Guard).
func (w *Watcher) Guarded() []string {
	if w.guard == nil {
		return nil
	}
	return slices.Clone(w.guard.paths)
}

// Backend reports which backend is in use and whether it can stop
// processes (it knows their PIDs and Config.Stop is set).
func (w *Watcher) Backend() (name string, canStop bool) {
	return w.src.Name(), w.src.PIDs() && w.cfg.Stop
}

// Canaries lists the canary files placed (so a drill can exclude them
// from damage counts). They are removed when Run returns.
func (w *Watcher) Canaries() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.placed)
}

// Run watches until ctx is done. ready is called (once) when the
// marks/watches are in place and the event goroutine is reading, so that
// an event from then on is read as it comes, on a busy machine too; it is
// called on that goroutine, and should return at once. It samples the files
// already present first (bounded, see docs/design.md), so that their first
// write can be compared with what they held. Run returns nil when ctx
// ends it; it may be called once.
func (w *Watcher) Run(ctx context.Context, ready func()) error {
	first := false
	w.runOnce.Do(func() { first = true })
	if !first {
		return errors.New("watcher: Run called twice")
	}
	defer func() {
		_ = w.src.Close() // an event descriptor, read only: nothing to lose
		w.procs.close()
		if w.hold != nil {
			w.hold.expire(true)
		}
		w.mu.Lock()
		if err := removeCanaries(w.placed); err != nil {
			w.log.Warn("canary files not removed", "err", err)
		}
		w.placed = nil
		w.mu.Unlock()
	}()
	name, canStop := w.Backend()
	n := w.samples.scan(ctx, w.roots)
	w.log.Info("watching", "paths", w.roots, "backend", name, "pids", w.src.PIDs(), "stop", canStop,
		"canaries", len(w.placed), "files sampled", n, "guarded", w.Guarded())

	handle := w.handle
	if ready != nil {
		handle = func(batch []fswatch.Event) bool {
			if ready != nil {
				ready() // the source's first call: it is reading
				ready = nil
			}
			return w.handle(batch)
		}
	}
	return w.src.Run(ctx, handle)
}

// handle processes one batch of events, in order, then drains the proc
// connector when it has not for a while (an empty batch: no event came),
// so that its socket does not overflow. Everything that takes the process table's lock runs here,
// on the source's goroutine, so that a real-time handler never waits for a
// lock held by a thread of normal priority. It asks for the next batch at
// once when the batch raised an actor's score, had an event of a held
// suspect, or a file was found cut to nothing by a process that still has
// it open.
func (w *Watcher) handle(batch []fswatch.Event) bool {
	w.hurry = false
	if w.hold != nil && len(batch) > 0 {
		w.hold.follow() // the suspects must not run on a CPU the event thread left
	}
	for _, ev := range batch {
		w.one(ev)
	}
	rising := w.det.Raised() != w.raised
	w.raised = w.det.Raised()
	// After the batch: an attack's first batch should not wait for the
	// messages that piled up meanwhile (a process table misses only
	// processes it never saw, and those it reads from /proc at once).
	if now := time.Now(); len(batch) == 0 || now.Sub(w.ticked) >= fswatch.Idle {
		w.procs.tick()
		w.ticked = now
		if w.hold != nil {
			w.hold.expire(false)
		}
	}
	return w.hurry || rising
}

func (w *Watcher) one(ev fswatch.Event) {
	self := ev.PID != 0 && ev.PID == w.procs.self
	if ev.Op == fswatch.Create && w.nsyncs.Load() > 0 && w.synced(ev.Path) {
		return
	}
	if !self && ev.PID != 0 && w.nstopped.Load() > 0 {
		w.noteStopped(ev)
	}
	if w.hold != nil && w.hold.holds(ev.PID) {
		// A suspect's next events are read at once, at real-time
		// priority: paced at normal priority, the event thread would
		// share the CPU the suspect is held on with everything else.
		w.hurry = true
	}
	if w.guard != nil {
		if ev.Op == fswatch.Exec {
			w.guard.executed(ev)
			return
		}
		if w.guard.covers(ev) {
			if !self && !w.guard.own(ev.PID) {
				w.observe(ev.PID, tamperEvent(ev))
			}
			return // Kalaja's own work is not scored
		}
	}
	var de *detect.Event
	switch ev.Op {
	case fswatch.Overflow:
		w.log.Warn("the kernel dropped file events (queue overflow); some activity was not scored")
		return
	case fswatch.Create:
		if !ev.Dir {
			if len(w.unwritten) >= maxUnwritten {
				clear(w.unwritten)
			}
			w.unwritten[ev.Path] = &newFile{at: w.cfg.Now()}
		}
		de = &detect.Event{Op: detect.Create, Path: ev.Path, Dir: ev.Dir}
	case fswatch.Write:
		delete(w.unwritten, ev.Path)
		smp, ok := w.samples.read(ev.Path)
		if !ok {
			if _, err := os.Lstat(ev.Path); err != nil {
				if len(w.pending) >= maxPending {
					clear(w.pending)
				}
				w.pending[ev.Path] = true // renamed away already: judged at the rename
			}
			return
		}
		old := w.samples.cache[ev.Path]
		w.samples.put(ev.Path, smp)
		de = &detect.Event{Op: detect.Write, Path: ev.Path, Old: old, New: smp}
	case fswatch.Modify:
		if !self && ev.PID != 0 && w.det.LockedDown(w.cfg.Now()) {
			w.observe(ev.PID, &detect.Event{Op: detect.Writing, Path: ev.Path})
		}
		old := w.samples.cache[ev.Path]
		if old == nil || old.Size == 0 {
			return
		}
		fi, err := os.Lstat(ev.Path)
		if err != nil || !fi.Mode().IsRegular() || fi.Size() != 0 {
			return
		}
		if !self && ev.PID != 0 && hasOpenForWrite(ev.PID, ev.Path) {
			w.hurry = true // cut to nothing and still open: judged at close, which should be read soon
			return
		}
		if fi, err := os.Lstat(ev.Path); err != nil || fi.Size() != 0 {
			return // rewritten (and closed) meanwhile: judged at close
		}
		smp := detect.Analyze(0, nil)
		w.samples.put(ev.Path, &smp)
		de = &detect.Event{Op: detect.Write, Path: ev.Path, Old: old, New: &smp}
	case fswatch.Delete:
		if ev.Dir {
			return
		}
		old, id, known := w.samples.drop(ev.Path)
		delete(w.pending, ev.Path)
		delete(w.unwritten, ev.Path)
		copies := w.copies(ev.Path, old)
		if len(copies) == 0 && known && !self {
			copies = w.linked(ev.Path, old, id)
		}
		de = &detect.Event{Op: detect.Delete, Path: ev.Path, Old: old, Copies: copies}
	case fswatch.Rename:
		w.rename(ev, self)
		return
	case fswatch.RawWrite:
		de = &detect.Event{Op: detect.RawWrite, Path: ev.Path}
	default:
		return
	}
	if self {
		return
	}
	de.Canary = w.canaries[ev.Path] && canaryHit(ev.Path, de.Old, de.New)
	w.observe(ev.PID, de)
}

// copies returns the files other than canaries that hold the content of
// p, deleted, whose last sample was old. The canaries all hold the same
// bytes: one is no copy of another, or deleting every canary would look
// like removing duplicates.
func (w *Watcher) copies(p string, old *detect.Sample) []string {
	return slices.DeleteFunc(w.samples.copies(p, old), func(c string) bool { return w.canaries[c] })
}

// maxUnwritten bounds the files remembered as created and not written.
const maxUnwritten = 256

// newFile is a file created and not (yet) written.
type newFile struct {
	at    time.Time
	id    fileID // once known
	known bool
}

// linked returns the files created within FreshAge and never written that
// are the file id, last read at p, now deleted, if its content was old:
// hard links made to p before it was unlinked (an antivirus moving a file
// into quarantine with link and unlink, git finishing an object file, a
// rename through a temporary name). A link adds a name to a file that
// exists, so its creation brings no close after writing and it is not
// sampled then; each such name is looked up once, when a deletion first
// needs it, and sampled when it is the deleted file. Such a file then
// holds the deleted file's content as a copy would.
func (w *Watcher) linked(p string, old *detect.Sample, id fileID) []string {
	want, ok := keyOf(old)
	if !ok || len(w.unwritten) == 0 {
		return nil
	}
	now := w.cfg.Now()
	var out []string
	for c, f := range w.unwritten {
		if now.Sub(f.at) > w.cfg.Detect.FreshAge {
			delete(w.unwritten, c)
			continue
		}
		if c == p || w.canaries[c] {
			continue
		}
		if !f.known {
			var st unix.Stat_t
			if err := unix.Lstat(c, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
				delete(w.unwritten, c) // gone, or not a file
				continue
			}
			f.id, f.known = idOf(&st), true
		}
		if f.id != id {
			continue
		}
		smp, ok := w.samples.read(c)
		if !ok {
			continue
		}
		w.samples.put(c, smp)
		delete(w.unwritten, c)
		if k, ok := keyOf(smp); ok && k == want {
			out = append(out, c)
		}
	}
	return out
}

// rename handles a move: the cache and canary bookkeeping, the rename
// itself, content written just before it (judged here if it could not be
// read under the old name) and a file it replaced.
func (w *Watcher) rename(ev fswatch.Event, self bool) {
	if ev.Dir {
		w.samples.move(ev.OldPath, ev.Path, true)
		for c := range w.canaries {
			if fswatch.Under(c, ev.OldPath) {
				w.moveCanary(c, ev.Path+c[len(ev.OldPath):])
			}
		}
		return
	}
	delete(w.unwritten, ev.Path) // replaced
	if f, ok := w.unwritten[ev.OldPath]; ok {
		delete(w.unwritten, ev.OldPath)
		w.unwritten[ev.Path] = f
	}
	replaced := w.samples.cache[ev.Path]
	src := w.samples.cache[ev.OldPath]
	written := w.pending[ev.OldPath]
	delete(w.pending, ev.OldPath)
	// A file renamed over another is judged on what the rename put there,
	// read now: the sample cached under a temporary name may be of a later
	// file under the same name (a program saving document after document
	// through one temporary name, whose events the kernel merged), caught
	// half written.
	reread := false
	if written || src == nil || replaced != nil {
		if smp, ok := w.samples.read(ev.Path); ok {
			reread = true
			if written {
				w.judge(ev, self, &detect.Event{Op: detect.Write, Path: ev.OldPath, Old: src, New: smp, Canary: w.canaries[ev.OldPath] && canaryHit(ev.OldPath, src, smp)})
			}
			src = smp
		}
	}
	_, id, known := w.samples.drop(ev.OldPath)
	if reread {
		known = false // the read remembered the file now at ev.Path
	} else {
		delete(w.samples.ids, ev.Path) // the file it replaced
	}
	w.samples.moved(ev.Path, src, id, known)
	canary := false
	if w.canaries[ev.OldPath] {
		if filepath.Base(ev.OldPath) == filepath.Base(ev.Path) && fswatch.InRoots(ev.Path, w.roots) {
			w.moveCanary(ev.OldPath, ev.Path) // moved along with its folder's content
		} else {
			canary = true
		}
	}
	w.judge(ev, self, &detect.Event{Op: detect.Rename, Path: ev.Path, OldPath: ev.OldPath, Canary: canary})
	if replaced != nil && src != nil {
		w.judge(ev, self, &detect.Event{Op: detect.Write, Path: ev.Path, Old: replaced, New: src, Canary: w.canaries[ev.Path] && canaryHit(ev.Path, replaced, src)})
	}
}

func (w *Watcher) judge(ev fswatch.Event, self bool, de *detect.Event) {
	if !self {
		w.observe(ev.PID, de)
	}
}

func (w *Watcher) moveCanary(from, to string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.canaries, from)
	w.canaries[to] = true
	if i := slices.Index(w.placed, from); i >= 0 {
		w.placed[i] = to
	}
}

// observe charges an event to its process tree and responds to an alert.
func (w *Watcher) observe(pid int, de *detect.Event) {
	de.Time = w.cfg.Now()
	if pid != 0 {
		de.Actor = w.procs.actor(pid)
	}
	before := w.det.Raised()
	a := w.det.Observe(*de)
	if a == nil {
		if w.hold != nil && pid != 0 {
			switch {
			case suspect(w.det, de.Actor, before):
				w.hold.hold(pid)
				for _, a := range w.procs.forkers(pid) {
					w.hold.hold(a)
				}
				if w.hold.holdKin(de.Actor) {
					for _, k := range w.procs.kinOf(de.Actor) {
						w.hold.hold(k)
					}
				}
			case w.hold.kinHeld(de.Actor):
				w.hold.hold(pid)
			}
		}
		return
	}
	w.respond(a)
}

// respond stops the implicated processes (if configured and possible),
// logs the alert and hands it to OnAlert. A raw write's alert names the
// loop device; the file behind it is named too, read now: the device may
// be detached before the alert is healed.
func (w *Watcher) respond(a *detect.Alert) {
	for _, p := range a.Paths() {
		if b, ok := fswatch.BackingFile(p); ok && !slices.Contains(a.Files, b) {
			a.Files = append(a.Files, b)
		}
	}
	if w.cfg.Stop && w.src.PIDs() && len(a.PIDs) > 0 {
		stopped, err := w.procs.stop(w.procs.targets(a.PIDs))
		// Stopped after the offenders, who are the hurry.
		w.procs.siblings(stopped, func(more []int) {
			s2, err2 := w.procs.stop(more)
			stopped, err = append(stopped, s2...), errors.Join(err, err2)
		})
		a.Stopped = len(stopped) > 0
		if err != nil {
			a.StopError = err.Error()
		}
		for _, p := range stopped {
			if !slices.Contains(a.PIDs, p) {
				a.PIDs = append(a.PIDs, p)
			}
		}
		slices.Sort(a.PIDs)
		w.mu.Lock()
		for _, p := range stopped {
			w.stopped[p] = a.Group
			w.unsettled[p] = true
		}
		if a.Group != 0 {
			w.groups[a.Group] = true
			delete(w.after, a.Group) // this alert's paths are its own
		}
		w.nstopped.Store(int32(len(w.stopped)))
		w.mu.Unlock()
	}
	sigs := make([]string, len(a.Signals))
	for i, h := range a.Signals {
		sigs[i] = fmt.Sprintf("%s=%g", h.Signal, h.Score)
	}
	w.log.Error("ALERT: ransomware or wiper behaviour", "scope", a.Scope, "pid", a.PID, "command", a.Command,
		"uid", a.UID, "score", a.Score, "signals", sigs, "pids", a.PIDs, "stopped", a.Stopped, "files", len(a.Files))
	if w.cfg.OnAlert != nil {
		w.cfg.OnAlert(*a)
	}
}

// noteStopped remembers the paths of ev if its process is one this watcher
// stopped, or of a group an alert stopped.
func (w *Watcher) noteStopped(ev fswatch.Event) {
	group := w.procs.actor(ev.PID).Group
	w.mu.Lock()
	defer w.mu.Unlock()
	if g, ok := w.stopped[ev.PID]; ok {
		group = g
	} else if !w.groups[group] {
		return
	}
	for _, p := range []string{ev.OldPath, ev.Path} {
		if p != "" && len(w.after[group]) < maxAfter {
			w.after[group] = append(w.after[group], p)
		}
	}
}

// Touched returns the paths that events of alert a's group named after
// this watcher stopped it (at most 4096 per group, since its last alert): what its processes
// had done but the watcher had not yet read when the alert was raised,
// including processes of the group that ended before the stop. Call Sync
// first to have every event queued before the call read.
func (w *Watcher) Touched(a detect.Alert) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := slices.Clone(w.after[a.Group])
	for _, p := range a.PIDs {
		if g, ok := w.stopped[p]; ok && g != a.Group {
			out = append(out, w.after[g]...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Sync returns once the watcher has read every file event queued before
// the call, and every event of the processes it stopped: it waits until
// each process stopped since the last Sync is seen stopped (every thread)
// or gone (at most settleTimeout), then creates a marker file in the first protected folder and
// waits until the event of its creation has come through the queue, which
// the kernel keeps in order. It removes the marker. It must not be called
// from Run's goroutine (OnAlert), which reads the events it waits for.
func (w *Watcher) Sync(ctx context.Context) error {
	w.mu.Lock()
	pids := slices.Collect(maps.Keys(w.unsettled))
	w.mu.Unlock()
	if rest := awaitStop(ctx, pids, settleTimeout); len(rest) > 0 {
		w.log.Warn("stopped processes not yet seen stopped; what they do next may be missed", "pids", rest)
	}
	w.mu.Lock()
	for _, p := range pids {
		delete(w.unsettled, p)
	}
	w.mu.Unlock()
	name := filepath.Join(w.roots[0], fmt.Sprintf(".kalaja-sync-%d-%d", os.Getpid(), w.syncSeq.Add(1)))
	ch := make(chan struct{})
	w.mu.Lock()
	w.syncs[name] = ch
	w.nsyncs.Store(int32(len(w.syncs)))
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.syncs, name)
		w.nsyncs.Store(int32(len(w.syncs)))
		w.mu.Unlock()
		if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			w.log.Warn("remove the sync marker", "path", name, "err", err)
		}
	}()
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("watcher sync: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("watcher sync: %w", err)
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// synced reports whether p is a Sync marker, and releases its waiter.
func (w *Watcher) synced(p string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch, ok := w.syncs[p]
	if ok {
		close(ch)
		delete(w.syncs, p)
		w.nsyncs.Store(int32(len(w.syncs)))
	}
	return ok
}

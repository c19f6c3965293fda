package drill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Watcher is what the drill needs of a watcher (watcher.Watcher is one):
// it watches until ctx ends, calling ready once its marks are in place.
type Watcher interface {
	Run(ctx context.Context, ready func()) error
	Backend() (name string, canStop bool)
	Canaries() []string
}

// Alert is what the drill keeps of one of the watcher's alerts.
type Alert struct {
	Time    time.Time `json:"time"`
	PID     int       `json:"pid"`
	PIDs    []int     `json:"pids,omitempty"`
	Command string    `json:"command"`
	Score   float64   `json:"score"`
	Signals []string  `json:"signals"`
	Files   []string  `json:"files,omitempty"`
	Stopped bool      `json:"stopped"`
}

// WatchFunc makes a watcher over paths that calls onAlert for each alert
// after stopping the offending processes. onAlert must not block.
type WatchFunc func(paths []string, onAlert func(Alert)) (Watcher, error)

// Config configures Run and MeasureOverhead.
type Config struct {
	Sandbox *Sandbox
	// Child starts the drill's own child processes (attacks, office-save).
	Child Child
	// Env is the environment of the real programs (normally os.Environ()).
	Env []string
	// Watch makes the watcher for a scenario; nil runs without one.
	Watch WatchFunc
	// Tree is the tree generated afresh for each scenario.
	Tree Tree
	// BulkBytes is the size of the compress workload's dataset; log-rotate
	// starts from three logs of an eighth of it.
	BulkBytes int64
	// SlowInterval is slow-encrypt's pause between files.
	SlowInterval time.Duration
	// Settle is how long to wait for a late alert after a workload ended
	// on its own.
	Settle time.Duration
	// Timeout ends a scenario that neither finished nor was detected.
	Timeout time.Duration
	// Scenarios are the names to run; empty runs all.
	Scenarios []string
	// Load runs busy work beside the scenarios (see load): two CPU-bound
	// processes and a parallel compile loop, started before the first
	// scenario and stopped after the last.
	Load bool
	// Logger gets progress; nil discards.
	Logger *slog.Logger
	// OnResult, if set, is called as each scenario ends.
	OnResult func(Result)
	// Prepared, if set, is called for each scenario once its tree is laid
	// out and its preparation done, just before it starts (and before the
	// watcher, if any): to back the sandbox up, say. An error ends the
	// scenario with that error.
	Prepared func(ctx context.Context, sc Scenario) error
	// Recover, if set, is called after each attack on the tree (not the
	// backup-* attacks on the host stand-in) has been stopped (or
	// has ended) and its damage counted, while the watcher still runs,
	// with when the attack started and its first alert (nil if none): it
	// brings the sandbox back (kalaja recover, or waits for the watcher's
	// healing) and says how. The drill then stops the watcher and counts
	// what came back and what was lost (Recovery).
	Recover func(ctx context.Context, sc Scenario, started time.Time, alert *Alert) (*Recovery, error)
}

// Recovery is what bringing an attacked sandbox back showed.
type Recovery struct {
	// Judged says a backup was taken after the attack and its health
	// judged: Suspect, for Reasons.
	Judged  bool     `json:"judged"`
	Suspect bool     `json:"suspect"`
	Reasons []string `json:"reasons,omitempty"`
	// Seconds is how long the recovery took; for healing, from the
	// attack's start (its first damaging write comes within moments) to
	// the healed tree.
	Seconds float64 `json:"seconds"`
	// Healed counts the entries the watcher's healing restored (with
	// healing, the damage is repaired before the drill counts it).
	Healed int `json:"healed,omitempty"`
	// FilesRecovered counts the files the attack damaged that are byte
	// for byte as before it again; FilesLost the files of the tree before
	// the attack that are not (set by the drill).
	FilesRecovered int    `json:"files_recovered"`
	FilesLost      int    `json:"files_lost"`
	Error          string `json:"error,omitempty"`
}

// Defaults for the zero values of Config.
const (
	DefaultFiles        = 200
	DefaultBulkBytes    = 64 << 20
	DefaultSlowInterval = 3 * time.Second
	DefaultSettle       = 2 * time.Second
	DefaultTimeout      = 5 * time.Minute
)

func (c *Config) defaults() {
	if c.Tree.Files == 0 {
		c.Tree.Files = DefaultFiles
	}
	if c.Tree.Seed == 0 {
		c.Tree.Seed = 1
	}
	if c.BulkBytes == 0 {
		c.BulkBytes = DefaultBulkBytes
	}
	if c.SlowInterval == 0 {
		c.SlowInterval = DefaultSlowInterval
	}
	if c.Settle == 0 {
		c.Settle = DefaultSettle
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Run runs the configured scenarios one after another, each on a freshly
// generated tree, and reports what the watcher made of them. An error is
// returned only when the drill itself cannot go on (the sandbox cannot be
// reset, ctx ended) or its load failed (Config.Load); a scenario that
// fails to set up is reported with its error and the others still run.
func Run(ctx context.Context, cfg Config) (_ *Report, err error) {
	cfg.defaults()
	list, err := selectScenarios(cfg.Scenarios)
	if err != nil {
		return nil, err
	}
	rep := &Report{Sandbox: cfg.Sandbox.Root(), Files: cfg.Tree.Files, Load: cfg.Load}
	r := &runner{cfg: &cfg}
	if cfg.Load {
		l, err := startLoad(ctx, Programs{Env: cfg.Env})
		if err != nil {
			return nil, err
		}
		defer func() { err = errors.Join(err, l.stop()) }()
	}
	for _, sc := range list {
		res, err := r.scenario(ctx, sc, cfg.Watch)
		if err != nil {
			return rep, err
		}
		if res.backend != "" {
			rep.Backend, rep.CanStop = res.backend, res.canStop
		}
		cfg.Logger.Info("scenario done", "scenario", sc.Name, "detected", res.Detected, "damaged", res.FilesDamaged, "error", res.Error)
		rep.Results = append(rep.Results, res.Result)
		if cfg.OnResult != nil {
			cfg.OnResult(res.Result)
		}
	}
	rep.summarise()
	return rep, nil
}

// outcome is a Result with what only the runner needs.
type outcome struct {
	Result
	started time.Time // when the workload's process started
	backend string
	canStop bool
	wall    time.Duration // start to exit (or to the alert)
	cpu     time.Duration // a watch process's CPU time over the same span
	peakRSS int64         // a watch process's peak resident memory, bytes
}

// runner runs scenarios one after another.
type runner struct {
	cfg  *Config
	tree *pristine // the generated tree, once made
	// lead, when set, is how long after the tree was synced to disk the
	// workload starts, with or without a watcher (which starts within
	// it): so that timed runs with and without one begin in the same
	// state (see MeasureOverhead).
	lead time.Duration
}

// layout resets the sandbox and lays out the tree, generating it the
// first time. It returns the number of files.
func (r *runner) layout(ctx context.Context, progs Programs) (int, error) {
	sb := r.cfg.Sandbox
	if err := sb.Reset(); err != nil {
		return 0, err
	}
	if r.tree != nil {
		return len(r.tree.files), r.tree.restore(sb)
	}
	files, err := Generate(ctx, sb, progs, r.cfg.Tree)
	if err != nil {
		return 0, fmt.Errorf("generate tree: %w", err)
	}
	if r.tree, err = capture(sb, files); err != nil {
		return 0, err
	}
	return len(files), nil
}

// scenario lays out a fresh tree, prepares sc, and runs it under a
// watcher made by watch (none if nil). The returned error means the drill
// cannot go on; a failure of the scenario alone is in Result.Error.
func (r *runner) scenario(ctx context.Context, sc Scenario, watch WatchFunc) (out outcome, fatal error) {
	cfg := r.cfg
	sb := cfg.Sandbox
	out.Result = Result{Scenario: sc.Name, Kind: sc.Kind, Family: sc.Family}
	st := &stage{cfg: cfg, sb: sb, progs: Programs{Env: cfg.Env}, child: cfg.Child}
	defer func() {
		if err := st.detach(ctx); err != nil && out.Error == "" {
			out.Error = err.Error()
		}
		if err := st.unmount(ctx); err != nil && out.Error == "" {
			out.Error = err.Error()
		}
	}()
	fail := func(err error) (outcome, error) {
		out.Error = err.Error()
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		return out, nil
	}
	n, err := r.layout(ctx, st.progs)
	if errors.Is(err, ErrUnsafe) {
		return out, err // the sandbox cannot be reset: stop the drill
	}
	if err != nil {
		return fail(err)
	}
	if err := prepareWork(sb); err != nil {
		return fail(err)
	}
	if err := sc.prepare(ctx, st); err != nil {
		return fail(fmt.Errorf("prepare: %w", err))
	}
	if cfg.Prepared != nil {
		if err := cfg.Prepared(ctx, sc); err != nil {
			return fail(fmt.Errorf("prepared: %w", err))
		}
	}
	before, err := hashTree(sb)
	if err != nil {
		return fail(err)
	}
	out.FilesTotal = n
	if sc.Name == WipeRaw {
		out.FilesTotal++
	}
	out.FilesTotal += st.hostFiles
	unix.Sync()
	synced := time.Now()

	var w *watching
	if watch != nil {
		// The watcher sees wipe-raw's device by itself: it watches every
		// block device.
		if w, err = startWatching(ctx, watch, []string{sb.Root()}); err != nil {
			return fail(err)
		}
		out.backend, out.canStop = w.w.Backend()
	}
	if r.lead > 0 {
		if late := time.Since(synced) - r.lead; late > 0 {
			cfg.Logger.Warn("the watcher took longer to start than the lead before a timed run", "lead", r.lead, "late", late)
		}
		if err := sleep(ctx, time.Until(synced.Add(r.lead))); err != nil {
			_ = w.stop() // err is the failure to report
			return fail(err)
		}
	}
	cmd, err := sc.start(ctx, st)
	if err != nil {
		_ = w.stop() // err is the failure to report
		return fail(err)
	}
	if err := run(ctx, cmd, w, cfg, &out); err != nil {
		_ = w.stop() // err is the failure to report
		return fail(err)
	}
	var canaries []string
	if w != nil {
		canaries = w.w.Canaries()
	}
	// Detached first, so that what the loop device buffered is in the
	// disk image before the damage is counted and the tree recovered.
	if err := st.detach(ctx); err != nil {
		_ = w.stop() // err is the failure to report
		return fail(fmt.Errorf("detach loop device: %w", err))
	}
	var after map[string]digest
	if sc.Kind == KindAttack {
		if after, err = hashTree(sb); err != nil {
			_ = w.stop() // err is the failure to report
			return fail(err)
		}
		out.FilesDamaged = damaged(sb, before, after, canaries)
		// Recovered while the watcher still runs: its healing waits for
		// it to read what the stopped processes did.
		if cfg.Recover != nil && sc.Family != FamilyBackup {
			rec, err := cfg.Recover(ctx, sc, out.started, out.Alert)
			if rec == nil {
				rec = &Recovery{}
			}
			if err != nil {
				rec.Error = err.Error()
			}
			out.Recovery = rec
		}
	}
	if err := w.stop(); err != nil {
		return fail(fmt.Errorf("watcher: %w", err))
	}
	if rec := out.Recovery; rec != nil {
		now, err := hashTree(sb)
		if err != nil {
			return fail(err)
		}
		rec.FilesRecovered, rec.FilesLost = recovered(sb, before, after, now, canaries)
	}
	return out, ctx.Err()
}

// run starts cmd in a session of its own and waits until it ends, an
// alert comes, or the timeout; after an alert about an attack, also
// until its processes are stopped (at most cfg.Settle). Then it kills
// what is left of its process group and of the attack's processes
// elsewhere, and waits for late alerts. It fills in the timing and alert
// fields of out.
func run(ctx context.Context, cmd *exec.Cmd, w *watching, cfg *Config, out *outcome) error {
	var output tail
	cmd.Stdout, cmd.Stderr = &output, &output
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	// A process that outlives the command (a detached or stopped worker
	// the kills below missed) would hold the output pipe open and Wait
	// with it.
	cmd.WaitDelay = 5 * time.Second
	var alerts <-chan Alert
	if w != nil {
		alerts = w.alerts
	}
	pw, _ := w.watcher().(*procWatcher)
	var cpu0 time.Duration
	if pw != nil {
		cpu0, _ = pw.usage()
	}
	start := time.Now()
	out.started = start
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	if w != nil {
		w.start(cmd.Process.Pid)
		defer func() { out.ForeignAlerts = int(w.foreign.Load()) }()
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	timer := time.NewTimer(cfg.Timeout)
	defer timer.Stop()

	var first *Alert
	var exitErr error
	finished := false
	select {
	case exitErr = <-exited:
		finished = true
	case a := <-alerts:
		first = &a
	case <-timer.C:
	case <-ctx.Done():
	}
	out.wall = time.Since(start)
	if pw != nil {
		cpu1, peak := pw.usage()
		out.cpu, out.peakRSS = cpu1-cpu0, peak
	}
	if first != nil && out.Kind == KindAttack {
		out.Running = stillRunning(ctx, cfg, cmd.Process.Pid)
	}
	if !finished {
		_ = unix.Kill(-cmd.Process.Pid, unix.SIGKILL) // fails only if the group is gone, which exited reports
		// Before the wait: Wait also waits until the output pipe is
		// closed, and a process of the attack outside its group holds
		// it (a worker stopped by the watcher between its fork, where
		// it called setsid, and its exec).
		if err := killAttacks(cfg.Sandbox.Root()); err != nil {
			return err
		}
		exitErr = <-exited
	}
	if err := killAttacks(cfg.Sandbox.Root()); err != nil {
		return err
	}
	if first == nil && alerts != nil {
		select {
		case a := <-alerts:
			first = &a
		case <-time.After(cfg.Settle):
		case <-ctx.Done():
		}
	}
	out.Seconds = out.wall.Seconds()
	out.Finished = finished
	if first != nil {
		out.Detected = true
		out.Alert = first
		out.Stopped = first.Stopped
		at := first.Time
		if at.IsZero() {
			at = time.Now()
		}
		out.DetectionMS = float64(at.Sub(start).Microseconds()) / 1000
		out.Alerts = 1
	drain:
		for {
			select {
			case <-alerts:
				out.Alerts++
			default:
				break drain
			}
		}
	}
	if out.Kind == KindBenign {
		out.FalseAlarms = out.Alerts
		if !finished && first == nil && ctx.Err() == nil {
			return fmt.Errorf("did not finish in %s", cfg.Timeout)
		}
	}
	if finished && exitErr != nil {
		return fmt.Errorf("%w: %s", exitErr, output.String())
	}
	return ctx.Err()
}

// stillRunning counts the attack's processes (but its first, launcher)
// not stopped, waiting up to cfg.Settle for them to be: a signal takes
// effect when its process next runs, and a split attack's workers are
// stopped by alerts of their own.
func stillRunning(ctx context.Context, cfg *Config, launcher int) int {
	deadline := time.Now().Add(cfg.Settle)
	for {
		n := 0
		for pid, stopped := range attackProcs(cfg.Sandbox.Root()) {
			if !stopped && pid != launcher {
				n++
			}
		}
		if n == 0 || time.Now().After(deadline) || sleep(ctx, 10*time.Millisecond) != nil {
			return n
		}
	}
}

// watching is a watcher running in its own goroutine, owned by the
// scenario that started it and ended by stop.
type watching struct {
	w       Watcher
	alerts  chan Alert
	cancel  context.CancelFunc
	done    chan error
	mu      sync.Mutex
	sid     int     // the scenario's session, once started
	root    string  // the sandbox: attack processes on it are the scenario's, in any session
	early   []Alert // alerts that came before the session was known
	foreign atomic.Int64
}

// maxEarly bounds the alerts held until the scenario's session is known.
const maxEarly = 64

// start records the scenario's session (its first process's PID) and
// sorts the alerts that came before it: the watcher handles events at
// real-time priority, so it can stop a scenario's process and alert before
// the runner learns the PID. Those processes are stopped, so still there to
// ask; an early alert whose processes are all gone came from before.
func (w *watching) start(sid int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sid = sid
	for _, a := range w.early {
		if ours, known := w.ours(a); ours && known {
			w.queue(a)
		} else {
			w.foreign.Add(1)
		}
	}
	w.early = nil
}

// receive queues an alert about the scenario's processes and counts any
// other. Called from the watcher's goroutine right after it stopped the
// processes, so they still exist: an alert whose processes are all alive
// and in another session (say, a raw write elsewhere on the machine) is
// not the scenario's; one whose processes are gone gets the benefit of
// the doubt, as only the scenario works in the sandbox.
func (w *watching) receive(a Alert) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sid == 0 {
		if len(w.early) < maxEarly {
			w.early = append(w.early, a)
		} else {
			w.foreign.Add(1)
		}
		return
	}
	if ours, known := w.ours(a); known && !ours {
		w.foreign.Add(1)
		return
	}
	w.queue(a)
}

// ours reports whether any of a's processes is in the scenario's session
// or is an attack on the sandbox (a split attack's worker, in a session of
// its own), and known whether any of them still exists.
func (w *watching) ours(a Alert) (ours, known bool) {
	for _, pid := range append(a.PIDs, a.PID) {
		if pid <= 0 || !alive(pid) {
			continue // a zombie: killed after the stop, its alert read late
		}
		if s, err := unix.Getsid(pid); err == nil {
			known = true
			if !ours && s != w.sid {
				ours, _ = attackProc(pid, w.root)
			}
			ours = ours || s == w.sid
		}
	}
	return ours, known
}

func (w *watching) queue(a Alert) {
	select {
	case w.alerts <- a:
	default: // the drill only needs the first few
	}
}

// startWatching makes a watcher over paths and runs it until its marks
// are in place.
func startWatching(ctx context.Context, watch WatchFunc, paths []string) (*watching, error) {
	wt := &watching{alerts: make(chan Alert, 256), root: paths[0]}
	w, err := watch(paths, wt.receive)
	if err != nil {
		return nil, fmt.Errorf("start watcher: %w", err)
	}
	wt.w = w
	wctx, cancel := context.WithCancel(ctx)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		var once bool
		done <- w.Run(wctx, func() {
			if !once {
				once = true
				close(ready)
			}
		})
	}()
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	select {
	case <-ready:
		wt.cancel, wt.done = cancel, done
		return wt, nil
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("watcher ended before it was ready: %w", err)
	case <-t.C:
		cancel()
		err := <-done // nil, or why the cancelled watcher failed
		return nil, errors.Join(errors.New("watcher not ready after a minute"), err)
	}
}

// watcher returns the running watcher, or nil.
func (w *watching) watcher() Watcher {
	if w == nil {
		return nil
	}
	return w.w
}

// stop ends the watcher and waits for it. A nil watching is fine.
func (w *watching) stop() error {
	if w == nil {
		return nil
	}
	w.cancel()
	err := <-w.done
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// sleep waits d (nothing if d <= 0), or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

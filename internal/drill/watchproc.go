package drill

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// WatchLine is one line of JSON a watch process writes on its standard
// output: Ready once its marks are in place, then an Alert per alert.
type WatchLine struct {
	Ready *WatchReady `json:"ready,omitempty"`
	Alert *Alert      `json:"alert,omitempty"`
}

// WatchReady describes a watch process that is ready.
type WatchReady struct {
	Backend  string   `json:"backend"`
	CanStop  bool     `json:"can_stop"`
	Canaries []string `json:"canaries"`
}

// WatchProcess returns a WatchFunc that runs the watcher in a process of
// its own, so that its CPU time and memory can be told apart from the
// drill's: c.Command(ctx, args..., paths...) must start a process that
// watches paths, writes WatchLines, and ends on SIGTERM (the kalaja
// binary's hidden "drill watch" command).
func WatchProcess(c Child, args ...string) WatchFunc {
	return func(paths []string, onAlert func(Alert)) (Watcher, error) {
		return &procWatcher{child: c, args: append(append([]string(nil), args...), paths...), onAlert: onAlert}, nil
	}
}

// procWatcher is a watcher in a child process.
type procWatcher struct {
	child   Child
	args    []string
	onAlert func(Alert)

	mu    sync.Mutex
	ready WatchReady
	pid   int
}

// Run starts the watch process and relays its lines until ctx ends, then
// stops it with SIGTERM and waits for it.
func (p *procWatcher) Run(ctx context.Context, ready func()) error {
	cmd := p.child.Command(context.WithoutCancel(ctx), p.args...)
	var errOut tail
	cmd.Stderr = &errOut
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("watch process: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("watch process: %w", err)
	}
	p.mu.Lock()
	p.pid = cmd.Process.Pid
	p.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { _ = cmd.Process.Signal(syscall.SIGTERM) }) // fails only once it has ended
	defer stop()
	sc := bufio.NewScanner(out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l WatchLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			continue
		}
		switch {
		case l.Ready != nil:
			p.mu.Lock()
			p.ready = *l.Ready
			p.mu.Unlock()
			ready()
		case l.Alert != nil:
			p.onAlert(*l.Alert)
		}
	}
	err = cmd.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("watch process ended: %v: %s", err, errOut.String())
}

// Backend reports the watch process's backend, once it is ready.
func (p *procWatcher) Backend() (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ready.Backend, p.ready.CanStop
}

// Canaries lists the watch process's canary files, once it is ready.
func (p *procWatcher) Canaries() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ready.Canaries
}

// usage returns the watch process's CPU time so far and its peak
// resident memory, read from /proc; zeros when it is not running.
func (p *procWatcher) usage() (cpu time.Duration, peak int64) {
	p.mu.Lock()
	pid := p.pid
	p.mu.Unlock()
	if pid == 0 {
		return 0, 0
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// Fields after the command name (which may hold spaces): utime
		// and stime are the 12th and 13th.
		if i := strings.LastIndexByte(string(b), ')'); i > 0 {
			f := strings.Fields(string(b)[i+1:])
			if len(f) > 12 {
				ut, _ := strconv.ParseInt(f[11], 10, 64)
				st, _ := strconv.ParseInt(f[12], 10, 64)
				cpu = time.Duration(ut+st) * time.Second / clockTicks
			}
		}
	}
	return cpu, statusKB(fmt.Sprintf("/proc/%d/status", pid), "VmHWM:") << 10
}

// clockTicks is the kernel's USER_HZ, 100 on every Linux architecture Go
// supports.
const clockTicks = 100

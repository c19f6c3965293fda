package drill

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// busyLoops is how many CPU-bound processes the load runs.
const busyLoops = 2

// load is busy work beside the drill (Config.Load): two CPU-bound
// processes (a shell loop each) and a compile loop (go build -a of
// cmd/gofmt, the standard library it needs included, so that the
// compiler runs in parallel, with a build cache of its own emptied every
// round). Its processes run in sessions of their own, so the watcher
// charges them apart from the scenarios; its files are outside the
// sandbox, on whatever file system holds the temporary folder.
type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	dir    string
	mu     sync.Mutex
	err    error
}

// startLoad starts the load; stop ends it.
func startLoad(ctx context.Context, progs Programs) (*load, error) {
	dir, err := os.MkdirTemp("", "kalaja-drill-load-")
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	l := &load{cancel: cancel, dir: dir}
	command := func(name string, extra []string, args ...string) (*exec.Cmd, error) {
		cmd, err := progs.Command(ctx, dir, extra, name, args...)
		if err != nil {
			return nil, err
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
		cmd.Cancel = func() error { return unix.Kill(-cmd.Process.Pid, unix.SIGKILL) }
		return cmd, nil
	}
	for range busyLoops {
		cmd, err := command("sh", nil, "-c", "while :; do :; done")
		if err == nil {
			err = cmd.Start()
		}
		if err != nil {
			return nil, errors.Join(fmt.Errorf("load: %w", err), l.stop())
		}
		l.wg.Go(func() { _ = cmd.Wait() }) // killed by stop
	}
	env := []string{"GOCACHE=" + dir + "/cache", "GOTMPDIR=", "GOFLAGS=", "GOTOOLCHAIN=local", "GOPROXY=off", "GOENV=off"}
	if _, err := command("go", env, "version"); err != nil {
		return nil, errors.Join(fmt.Errorf("load: %w", err), l.stop())
	}
	l.wg.Go(func() {
		for ctx.Err() == nil {
			if err := os.RemoveAll(dir + "/cache"); err != nil {
				l.fail(err)
				return
			}
			cmd, err := command("go", env, "build", "-a", "-o", os.DevNull, "cmd/gofmt")
			if err != nil {
				l.fail(err)
				return
			}
			if out, err := cmd.CombinedOutput(); err != nil && ctx.Err() == nil {
				l.fail(fmt.Errorf("go build: %w: %s", err, out))
				return
			}
		}
	})
	return l, nil
}

func (l *load) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.err = errors.Join(l.err, err)
}

// stop ends the load, removes its files and reports whether the compile
// loop failed.
func (l *load) stop() error {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := os.RemoveAll(l.dir); err != nil {
		l.err = errors.Join(l.err, fmt.Errorf("load: %w", err))
	}
	return l.err
}

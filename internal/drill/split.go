package drill

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// splitWorkers is how many workers the split attacks start at once.
const splitWorkers = 8

// split runs encrypt-rename over the tree split among splitWorkers
// workers running at once, each over every splitWorkers-th file (so each
// works in every folder), none the child of another worker, each in a
// session of its own. With detach each is double-forked: started by a
// short-lived process that exits at once, so it is reparented to init (or
// the nearest subreaper), as cron, at and systemd-run start jobs; the
// launcher then waits for the workers by polling. Without, the launcher
// starts each with setsid and waits for it.
func (a *attacker) split(ctx context.Context, detach bool) error {
	files, err := a.targets()
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	for w := range splitWorkers {
		args := []string{"attack", "--ext", a.o.Ext}
		if detach {
			args = append(args, "--detach")
		}
		for i := w; i < len(files); i += splitWorkers {
			args = append(args, "--only", files[i])
		}
		args = append(args, EncryptRename, a.sb.Root())
		g.Go(func() error {
			cmd := a.o.Child.Command(ctx, args...)
			if !detach {
				cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
				if out, err := cmd.CombinedOutput(); err != nil {
					return fmt.Errorf("worker: %w: %s", err, out)
				}
				return nil
			}
			out, err := cmd.Output()
			if err != nil {
				return fmt.Errorf("start detached worker: %w", err)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
			if err != nil {
				return fmt.Errorf("detached worker's PID %q: %w", out, err)
			}
			return waitGone(ctx, pid)
		})
	}
	return g.Wait()
}

// workerExe is where the split attacks' launcher and workers run from: a
// copy of the drill's executable, as ransomware runs from a binary of its
// own (the watcher stops the other processes that run the executable of
// a process it stops, but never those running its own).
const workerExe = WorkDir + "/split-worker"

// prepareSplit copies the drill's executable to workerExe.
func prepareSplit(_ context.Context, st *stage) error {
	src, err := os.Open(st.child.Args[0])
	if err != nil {
		return fmt.Errorf("copy the worker executable: %w", err)
	}
	defer func() { _ = src.Close() }() // read only
	dst, err := st.sb.OpenFile(workerExe, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		_ = dst.Close() // the copy's error is the one to report
		return fmt.Errorf("copy the worker executable: %w", err)
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("copy the worker executable: %w", err)
	}
	st.child = Child{Args: append([]string{st.sb.Path(workerExe)}, st.child.Args[1:]...), Env: st.child.Env}
	return nil
}

// detach starts the attack args describe (without --detach) in a
// session of its own, prints its PID and returns without waiting for it.
func detach(c Child, args []string) error {
	cmd := c.Command(context.Background(), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	fmt.Println(cmd.Process.Pid)
	return cmd.Process.Release()
}

// waitGone waits until pid no longer exists (or is a zombie) or ctx ends.
func waitGone(ctx context.Context, pid int) error {
	for alive(pid) {
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X'
}

// attackProcs returns the drill's attack processes working on the
// sandbox at root, wherever they are in the process tree (detached
// workers are not in the scenario's session), each with whether it is
// stopped.
func attackProcs(root string) map[int]bool {
	out := map[int]bool{}
	names, _ := filepath.Glob("/proc/[0-9]*")
	for _, n := range names {
		pid, err := strconv.Atoi(filepath.Base(n))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if ok, stopped := attackProc(pid, root); ok {
			out[pid] = stopped
		}
	}
	return out
}

// attackProc reports whether pid is a live drill attack process on the
// sandbox at root, and whether it is stopped.
func attackProc(pid int, root string) (ok, stopped bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false, false
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if len(args) < 3 || args[len(args)-1] != root || !isAttack(args) {
		return false, false
	}
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false, false
	}
	i := bytes.LastIndexByte(st, ')')
	if i < 0 || i+2 >= len(st) || st[i+2] == 'Z' || st[i+2] == 'X' {
		return false, false
	}
	return true, st[i+2] == 'T'
}

// isAttack reports whether a command line is a drill attack child
// ("EXE [drill] attack [flags] NAME ROOT": Child.Args, then "attack").
func isAttack(args []string) bool {
	for i := 1; i < len(args); i++ {
		if args[i] == "attack" && (i == 1 || args[i-1] == "drill") {
			return true
		}
	}
	return false
}

// killAttacks kills every attack process on the sandbox at root,
// repeating until none is left (a worker may be starting another).
func killAttacks(root string) error {
	for range 50 {
		procs := attackProcs(root)
		if len(procs) == 0 {
			return nil
		}
		for pid := range procs {
			_ = unix.Kill(pid, unix.SIGKILL) // gone already: fine
		}
		time.Sleep(10 * time.Millisecond)
	}
	return errors.New("attack processes outlived SIGKILL")
}

package drill

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// ErrMissingProgram is wrapped when a program a scenario needs (sqlite3,
// git, zstd, losetup, ...) is not installed.
var ErrMissingProgram = errors.New("program not installed")

// packages names the Debian package of each program the drill runs.
var packages = map[string]string{
	"sqlite3": "sqlite3", "git": "git", "zstd": "zstd", "gzip": "gzip", "tar": "tar",
	"losetup": "mount (util-linux)", "go": "golang-go, or a Go toolchain on PATH", "sh": "dash",
	"mv": "coreutils", "seq": "coreutils", "sed": "sed", "find": "findutils", "rm": "coreutils", "gcc": "gcc",
	"logrotate": "logrotate", "rsync": "rsync", "clamscan": "clamav", "iconv": "libc-bin", "awk": "mawk", "cp": "coreutils", "mount": "mount (util-linux)", "umount": "mount (util-linux)",
}

// Programs runs the real programs the drill needs with a given
// environment (normally the drill's own, os.Environ()).
type Programs struct {
	Env []string
}

// Command returns name with args, to run in dir with p's environment plus
// extra variables. It wraps ErrMissingProgram when name is not on PATH.
func (p Programs) Command(ctx context.Context, dir string, extra []string, name string, args ...string) (*exec.Cmd, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %s (Debian package %s)", ErrMissingProgram, name, packages[name])
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	cmd.Env = append(append([]string(nil), p.Env...), extra...)
	return cmd, nil
}

// Run runs name with args in dir, stdin as its input, and returns an
// error holding the end of its output when it fails.
func (p Programs) Run(ctx context.Context, dir, stdin string, name string, args ...string) error {
	return p.RunEnv(ctx, dir, nil, stdin, name, args...)
}

// RunEnv is Run with extra environment variables.
func (p Programs) RunEnv(ctx context.Context, dir string, extra []string, stdin string, name string, args ...string) error {
	cmd, err := p.Command(ctx, dir, extra, name, args...)
	if err != nil {
		return err
	}
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := out.String()
		if len(msg) > 2000 {
			msg = "..." + msg[len(msg)-2000:]
		}
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(msg))
	}
	return nil
}

// Output runs name with args and returns its standard output.
func (p Programs) Output(ctx context.Context, dir string, name string, args ...string) (string, error) {
	cmd, err := p.Command(ctx, dir, nil, name, args...)
	if err != nil {
		return "", err
	}
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(ee.Stderr))
		}
		return "", fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}

package drill

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
)

// Child says how the drill starts its own processes (attacks, their
// workers, the office-save workload): Args is the argument prefix that
// reaches RunChild (for the kalaja binary, its path and "drill"), and Env
// their environment.
type Child struct {
	Args []string
	Env  []string
}

// Command returns the child process running RunChild with args.
func (c Child) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.Args[0], append(c.Args[1:len(c.Args):len(c.Args)], args...)...)
	cmd.Env = c.Env
	return cmd
}

// ErrUsage is wrapped when RunChild's arguments are wrong.
var ErrUsage = errors.New("usage")

// RunChild is the body of a drill child process. args are
//
//	attack [--interval D] [--device DEV] [--only PATH]... [--ext EXT] [--detach] NAME ROOT
//	benign NAME ROOT
//
// ROOT must be a sandbox (see Open, which applies p); attacks are named
// by the Encrypt*, Intermittent, EncodeBase64, SlowEncrypt, MultiProcess
// and Wipe* constants, the one benign child workload is "office-save".
// With --detach the attack is started in a session of its own, its PID
// printed, and RunChild returns without waiting (a split-detached
// worker). Refusals wrap ErrUnsafe, bad arguments ErrUsage.
func RunChild(ctx context.Context, args []string, c Child, p Policy, logger *slog.Logger) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: attack or benign", ErrUsage)
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o AttackOptions
	fs.DurationVar(&o.Interval, "interval", 0, "pause between files")
	fs.StringVar(&o.Device, "device", "", "loop device")
	fs.StringVar(&o.Ext, "ext", "", "extension of renamed files")
	fs.Func("only", "a file to attack", func(s string) error { o.Only = append(o.Only, s); return nil })
	detached := fs.Bool("detach", false, "start the attack in a session of its own and return")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("%w: %s [flags] NAME SANDBOX", ErrUsage, args[0])
	}
	name, root := fs.Arg(0), fs.Arg(1)
	sb, err := Open(root, p)
	if err != nil {
		return err
	}
	defer func() { _ = sb.Close() }() // closes a folder descriptor: nothing to lose
	o.Child, o.Logger = c, logger
	switch args[0] {
	case "attack":
		if *detached {
			return detach(c, slices.DeleteFunc(slices.Clone(args), func(a string) bool { return a == "--detach" }))
		}
		return Attack(ctx, sb, name, o)
	case "benign":
		if name != OfficeSave {
			return fmt.Errorf("%w: unknown child workload %q", ErrUsage, name)
		}
		return saveDocuments(ctx, sb)
	}
	return fmt.Errorf("%w: %q is not attack or benign", ErrUsage, strings.Join(args, " "))
}

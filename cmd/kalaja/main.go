// Command kalaja backs up folders into an encrypted, deduplicated,
// compressed repository and restores them. See README.md and docs/design.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/crypto"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// Exit codes, documented in README.md ("Exit codes").
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitPartial     = 3
	exitNoRepo      = 10
	exitWrongPass   = 12
	exitTampered    = 13
	exitWriteOnly   = 14
	exitInterrupted = 130
)

// Errors that map to exit codes (see exitCode).
var (
	errPartial = errors.New("some files could not be read")
	errNoRepo  = errors.New("repository does not exist")
	errDamaged = errors.New("the repository has errors")
)

// usageError marks a mistake in how the command was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.Is(err, errPartial):
		return exitPartial
	case errors.Is(err, errNoRepo):
		return exitNoRepo
	case errors.Is(err, blob.ErrWrongPassword):
		return exitWrongPass
	case errors.Is(err, blob.ErrTampered):
		return exitTampered
	case errors.Is(err, crypto.ErrWriteOnly):
		return exitWriteOnly
	}
	return exitFailure
}

// The garbage collector's targets (GOGC in the environment wins over both).
//
// A backup's working set is mostly long-lived buffers (chunks, chunker and
// compressor state) with little garbage between collections; a lower
// target cuts peak memory for a few percent of CPU (docs/design.md,
// "Memory").
//
// A watcher's live heap is a few MiB and every event makes garbage; each
// collection has to stop its event loop, which it can only do between two
// reads, and meanwhile sends the loop's thread a signal every few
// microseconds. A higher target makes that rare for a few MiB of memory
// (docs/design.md, "Garbage collection").
const (
	backupGCPercent = 50
	watchGCPercent  = 400
)

// setGCPercent sets the collector's target unless GOGC is set, and
// returns the function that restores the previous one.
func setGCPercent(percent int) (restore func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	old := debug.SetGCPercent(percent)
	return func() { debug.SetGCPercent(old) }
}

func main() {
	setGCPercent(backupGCPercent)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kalaja:", err)
	}
	os.Exit(exitCode(err))
}

func newRootCommand() *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:   "kalaja",
		Short: "Encrypted, deduplicated, tamper-evident backups",
		Long: `kalaja backs up folders into an encrypted, deduplicated, compressed
repository whose objects are immutable and named by the hash of their bytes,
and restores them.

The repository comes from --repo or KALAJA_REPOSITORY. The password comes from
the file named by --password-file or KALAJA_PASSWORD_FILE, from
KALAJA_PASSWORD, or from a prompt on the terminal.

Exit codes: 0 success; 1 failure; 2 wrong usage; 3 backup saved but some files
could not be read; 10 no repository at the given location; 12 wrong password;
13 the repository or its ledger was tampered with (verify, backup, check);
14 the key is write-only and the command reads snapshots (use a full key);
130 interrupted.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVarP(&g.repo, "repo", "r", "", "repository location (default $KALAJA_REPOSITORY)")
	pf.StringVar(&g.passwordFile, "password-file", "", "read the password from this file (default $KALAJA_PASSWORD_FILE)")
	pf.BoolVar(&g.json, "json", false, "print machine-readable JSON")
	pf.BoolVarP(&g.quiet, "quiet", "q", false, "print only errors")
	pf.StringVar(&g.serverCert, "cert", "", "pin this certificate (PEM) of an https:// repository's server (default $KALAJA_SERVER_CERT)")
	pf.StringVar(&g.stateDir, "state-dir", "", "where this client keeps the ledger checkpoints it has seen (default $KALAJA_STATE_DIR, else $XDG_STATE_HOME/kalaja or ~/.local/state/kalaja)")
	pf.StringVar(&g.cacheDir, "cache-dir", "", "where this client caches the repository's index (default $KALAJA_CACHE_DIR, else $XDG_CACHE_HOME/kalaja or ~/.cache/kalaja)")
	pf.BoolVar(&g.noCache, "no-cache", false, "hold the index in memory, reading every index file, instead of caching it on disk")
	root.AddCommand(
		newInitCommand(g), newBackupCommand(g), newSnapshotsCommand(g), newLsCommand(g),
		newDiffCommand(g), newRestoreCommand(g), newCheckCommand(g), newKeyCommand(g),
		newVerifyCommand(g), newLedgerCommand(g), newWitnessCommand(g),
		newVersionCommand(g), newDrillCommand(g), newWatchCommand(g), newServeCommand(g),
		newForgetCommand(g), newPruneCommand(g), newRecoverCommand(g),
	)
	root.AddCommand(newAdminCommand(g))
	return root
}

// args wraps a cobra argument validator so its failures are usage errors.
func args(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := v(cmd, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}

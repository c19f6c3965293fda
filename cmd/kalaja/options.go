package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"golang.org/x/term"

	"github.com/kalaja/kalaja/internal/atomicfile"
	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/local"
	"github.com/kalaja/kalaja/internal/store/remote"
	"github.com/kalaja/kalaja/internal/store/s3"
)

// globalOptions are the flags every command shares, resolved against the
// environment once by resolve.
type globalOptions struct {
	repo         string
	passwordFile string
	json         bool
	quiet        bool
	stateDir     string
	serverCert   string
	cacheDir     string
	noCache      bool
}

// env returns the flag's value, or the environment variable when unset.
func env(flag, name string) string {
	if flag != "" {
		return flag
	}
	return os.Getenv(name)
}

func (g *globalOptions) repoPath() (string, error) {
	p := env(g.repo, "KALAJA_REPOSITORY")
	if p == "" {
		return "", usageError{errors.New("no repository given: use --repo or set KALAJA_REPOSITORY")}
	}
	return p, nil
}

// password returns the repository password from a file, the environment,
// or the terminal. confirm asks twice on a terminal (for new passwords).
func (g *globalOptions) password(confirm bool) ([]byte, error) {
	return readPassword(env(g.passwordFile, "KALAJA_PASSWORD_FILE"), "KALAJA_PASSWORD", "password", confirm)
}

// readPassword reads a password from file (if set), else env variable
// envName, else a terminal prompt naming what.
func readPassword(file, envName, what string, confirm bool) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read %s file: %w", what, err)
		}
		b = bytes.TrimRight(b, "\r\n")
		if len(b) == 0 {
			return nil, fmt.Errorf("%s file %s is empty", what, file)
		}
		return b, nil
	}
	if p := os.Getenv(envName); p != "" {
		return []byte(p), nil
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil || !term.IsTerminal(int(tty.Fd())) {
		return nil, usageError{fmt.Errorf("no %s: set %s_FILE or %s, or run on a terminal", what, envName, envName)}
	}
	defer func() { _ = tty.Close() }() // a terminal: nothing is buffered that could be lost
	ask := func(prompt string) ([]byte, error) {
		if _, err := fmt.Fprint(tty, prompt); err != nil {
			return nil, fmt.Errorf("prompt for %s: %w", what, err)
		}
		b, err := term.ReadPassword(int(tty.Fd()))
		_, _ = fmt.Fprintln(tty) // only ends the line the hidden input left open
		return b, err
	}
	p, err := ask("enter " + what + ": ")
	if err != nil {
		return nil, err
	}
	if len(p) == 0 {
		return nil, fmt.Errorf("empty %s", what)
	}
	if confirm {
		again, err := ask("enter " + what + " again: ")
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(p, again) {
			return nil, fmt.Errorf("the two %ss differ", what)
		}
	}
	return p, nil
}

// openStore opens the repository's store and reads its public
// configuration, without the password.
func (g *globalOptions) openStore(ctx context.Context) (store.Store, repo.Config, error) {
	path, err := g.repoPath()
	if err != nil {
		return nil, repo.Config{}, err
	}
	var st store.Store
	switch {
	case s3.IsLocation(path):
		st, err = openS3(ctx, path)
	case remote.IsLocation(path):
		st, err = g.openRemote(ctx, path)
	default:
		st, err = local.Open(path)
	}
	if err != nil {
		if errors.Is(err, blob.ErrNotFound) {
			return nil, repo.Config{}, fmt.Errorf("%w: %s (create one with 'kalaja init')", errNoRepo, path)
		}
		return nil, repo.Config{}, err
	}
	cfg, err := repo.LoadConfig(ctx, st)
	if err != nil {
		return nil, repo.Config{}, err
	}
	return st, cfg, nil
}

// open opens the repository; withIndex also loads the blob index.
func (g *globalOptions) open(ctx context.Context, withIndex bool) (*repo.Repository, error) {
	return g.openFor(ctx, "", withIndex)
}

// openToRead opens the repository for a command that reads snapshots,
// trees or file content: with a write-only key it fails before loading
// anything, with an error wrapping crypto.ErrWriteOnly (exit 14) that
// names the command.
func (g *globalOptions) openToRead(ctx context.Context, command string, withIndex bool) (*repo.Repository, error) {
	return g.openFor(ctx, command, withIndex)
}

// openFor opens the repository for command, which reads content unless
// it is "". It tries first the key file that opened it last time, whose
// name it keeps in <state dir>/<repository id>/key.
func (g *globalOptions) openFor(ctx context.Context, command string, withIndex bool) (*repo.Repository, error) {
	st, cfg, err := g.openStore(ctx)
	if err != nil {
		return nil, err
	}
	pw, err := g.password(false)
	if err != nil {
		return nil, err
	}
	hintFile := ""
	if root, err := g.stateRoot(); err == nil {
		hintFile = filepath.Join(root, cfg.ID.String(), "key")
	}
	hint, _ := os.ReadFile(hintFile) // no hint: every key file is tried
	r, err := repo.OpenHint(ctx, st, pw, strings.TrimSpace(string(hint)))
	if err != nil {
		return nil, err
	}
	if hintFile != "" && r.KeyName() != strings.TrimSpace(string(hint)) {
		// Best effort: without the hint the next run tries every key file.
		_ = os.MkdirAll(filepath.Dir(hintFile), 0o700)
		_ = atomicfile.Write(hintFile, []byte(r.KeyName()+"\n"), 0o600)
	}
	if command != "" {
		if err := r.RequireRead(); err != nil {
			return nil, fmt.Errorf("%s: %w", command, err)
		}
	}
	// Argon2id's 64 MiB are garbage now: hand them back before the real
	// work starts, so they neither count in the peak nor set the GC's goal.
	debug.FreeOSMemory()
	if !g.noCache {
		if root, err := g.cacheRoot(); err != nil {
			g.warn("%v; the index is held in memory", err)
		} else {
			r.SetCacheDir(root)
		}
	}
	if withIndex {
		if err := r.LoadIndex(ctx); err != nil {
			g.warn("%v (run 'kalaja check')", err)
		}
	}
	return r, nil
}

// findSnapshot resolves a user's snapshot name.
func findSnapshot(ctx context.Context, g *globalOptions, r *repo.Repository, name string) (*snapshot.Snapshot, error) {
	list, err := r.Snapshots(ctx)
	if err != nil {
		g.warn("%v", err)
	}
	return snapshot.Find(list, name, nil)
}

// warn prints a warning to stderr.
func (g *globalOptions) warn(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	fmt.Fprintln(os.Stderr, "warning:", strings.ReplaceAll(msg, "\n", "\n  "))
}

// printf prints human output unless --quiet or --json.
func (g *globalOptions) printf(format string, a ...any) {
	if !g.quiet && !g.json {
		// Best effort: these lines report on work that is done (or are
		// followed by an error that is returned), so a stdout that cannot
		// be written must not turn a success into a failure.
		_, _ = fmt.Fprintf(os.Stdout, format, a...)
	}
}

// printJSON writes v as one JSON document on stdout.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

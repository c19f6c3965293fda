package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/parentcache"
	"github.com/kalaja/kalaja/internal/repo"
)

// stateRoot is the directory where this client keeps what it must remember
// between runs: per repository, its pin of the ledger.
func (g *globalOptions) stateRoot() (string, error) {
	if d := env(g.stateDir, "KALAJA_STATE_DIR"); d != "" {
		return d, nil
	}
	if x := os.Getenv("XDG_STATE_HOME"); x != "" {
		return filepath.Join(x, "kalaja"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", usageError{fmt.Errorf("no state directory: set --state-dir or KALAJA_STATE_DIR (%v)", err)}
	}
	return filepath.Join(home, ".local", "state", "kalaja"), nil
}

// cacheRoot is the directory where this client caches what it can read
// again from the repository: per repository, its index (repo.SetCacheDir).
func (g *globalOptions) cacheRoot() (string, error) {
	if d := env(g.cacheDir, "KALAJA_CACHE_DIR"); d != "" {
		return d, nil
	}
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
		return filepath.Join(x, "kalaja"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", usageError{fmt.Errorf("no cache directory: set --cache-dir or KALAJA_CACHE_DIR, or use --no-cache (%v)", err)}
	}
	return filepath.Join(home, ".cache", "kalaja"), nil
}

// openLedger opens r's ledger (creating its key on first use) as this
// client sees it (ledger.OpenClient).
func (g *globalOptions) openLedger(ctx context.Context, r *repo.Repository) (*ledger.Client, error) {
	lg, err := ledger.Open(ctx, r.Store(), r.Config().ID, r.Keys())
	if err != nil {
		return nil, err
	}
	root, err := g.stateRoot()
	if err != nil {
		return nil, err
	}
	return ledger.OpenClient(lg, filepath.Join(root, r.Config().ID.String()))
}

// parentCache is where a write-only host keeps its own last snapshots for
// incremental backups: <state dir>/<repository id>/parents.
func (g *globalOptions) parentCache(r *repo.Repository) (*parentcache.Cache, error) {
	root, err := g.stateRoot()
	if err != nil {
		return nil, err
	}
	return parentcache.New(filepath.Join(root, r.Config().ID.String(), "parents"), r.Keys()), nil
}

// openWithLedger opens the repository (without its blob index) and its
// ledger.
func (g *globalOptions) openWithLedger(ctx context.Context) (*repo.Repository, *ledger.Client, error) {
	r, err := g.open(ctx, false)
	if err != nil {
		return nil, nil, err
	}
	lc, err := g.openLedger(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	return r, lc, nil
}

// alertLogPath is this host's alert log, which watch appends to and
// snapshots and recover read: flag if set, else KALAJA_ALERT_LOG, else
// alerts.jsonl in the state directory.
func (g *globalOptions) alertLogPath(flag string) (string, error) {
	if p := env(flag, "KALAJA_ALERT_LOG"); p != "" {
		return p, nil
	}
	root, err := g.stateRoot()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	return filepath.Join(root, "alerts.jsonl"), nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kalaja/kalaja/internal/atomicfile"
	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/fleet"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/server"
	"github.com/kalaja/kalaja/internal/store"
)

// openFleet opens the vault's state in SERVER-DIR/fleet, over the served
// repository st (a local directory at localDir, or "" for S3).
func openFleet(serverDir string, st store.Store, localDir string, tokens *server.Tokens, overdue time.Duration, log *slog.Logger) (*fleet.State, error) {
	dir := filepath.Join(serverDir, "fleet")
	lo := &logOpener{st: st, keyFile: filepath.Join(dir, "logkey")}
	src := &fleet.Source{Store: st, OpenLog: lo.open}
	if localDir != "" {
		src.Free = func() int64 { return freeBytes(localDir) }
	}
	return fleet.Open(dir, time.Now, fleet.LedgerLogger(lo.open), fleet.WithSlog(log), fleet.WithOverdue(overdue),
		fleet.WithTokenHosts(tokens.Hosts), fleet.WithSource(src))
}

// logOpener opens the served repository's ledger read-only, once it has
// one: the repository ID from its config, the log key pinned in keyFile
// on first use from the key the repository publishes.
type logOpener struct {
	st      store.Store
	keyFile string

	mu  sync.Mutex
	log *ledger.Log
}

func (o *logOpener) open(ctx context.Context) (*ledger.Log, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.log != nil {
		return o.log, nil
	}
	cfg, err := repo.LoadConfig(ctx, o.st)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(o.keyFile)
	key := strings.TrimSpace(string(b))
	if errors.Is(err, fs.ErrNotExist) {
		if key, err = ledger.PublishedKey(ctx, o.st); err != nil {
			return nil, err
		}
		if err := atomicfile.Write(o.keyFile, []byte(key+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("pin the ledger key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("read the pinned ledger key: %w", err)
	}
	if o.log, err = ledger.OpenReadOnly(o.st, cfg.ID, key); err != nil {
		return nil, fmt.Errorf("ledger key pinned in %s: %v: %w", o.keyFile, err, blob.ErrCorrupt)
	}
	return o.log, nil
}

// freeBytes returns the bytes free for an unprivileged user on the file
// system of dir, or -1 if unknown.
func freeBytes(dir string) int64 {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return -1
	}
	return int64(fs.Bavail) * fs.Bsize
}

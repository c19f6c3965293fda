package archiver

import (
	"context"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// warmWorkers is how many folders warm lists at once.
const warmWorkers = 8

// warm lists the folders below paths and stats their entries with several
// goroutines, ahead of the walker, which does both one at a time in order:
// on a cold cache the walker then finds the folders and inodes in memory
// instead of waiting on one disk read after another (docs/measurements.md,
// "Folder warming"). It only reads
// metadata, so it does not ask Options.Exclude (which need not be safe for
// concurrent use), and its errors are the walker's to find and report. It
// returns when ctx ends or everything is listed.
func warm(ctx context.Context, paths []string) {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(warmWorkers)
	var dir func(string)
	dir = func(p string) {
		if ctx.Err() != nil {
			return
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return
		}
		var st unix.Stat_t
		for _, e := range entries {
			sub := filepath.Join(p, e.Name())
			_ = unix.Lstat(sub, &st) // only brings the inode into memory; errors are the walker's
			if e.IsDir() && !g.TryGo(func() error { dir(sub); return nil }) {
				dir(sub)
			}
		}
	}
	for _, p := range paths {
		g.Go(func() error { dir(p); return nil })
	}
	_ = g.Wait() // every goroutine returns nil
}

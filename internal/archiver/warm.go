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
		f, err := os.Open(p)
		if err != nil {
			return
		}
		defer func() { _ = f.Close() }() // a folder, read only
		entries, err := f.ReadDir(-1)
		if err != nil {
			return
		}
		fd := int(f.Fd())
		var st unix.Stat_t
		for _, e := range entries {
			// Only brings the inode into memory; errors are the walker's.
			_ = unix.Fstatat(fd, e.Name(), &st, unix.AT_SYMLINK_NOFOLLOW)
			if e.IsDir() {
				sub := filepath.Join(p, e.Name())
				if !g.TryGo(func() error { dir(sub); return nil }) {
					dir(sub)
				}
			}
		}
	}
	for _, p := range paths {
		g.Go(func() error { dir(p); return nil })
	}
	_ = g.Wait() // every goroutine returns nil
}

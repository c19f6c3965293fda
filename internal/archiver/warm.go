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

// warm lists the folders below paths and stats their subfolders and one
// file of each with several goroutines, ahead of the walker, which lists
// and stats one at a time in order: on a cold cache the walker then finds
// the folders and inodes in memory instead of waiting on one disk read
// after another (docs/measurements.md, "Folder warming"). It only reads
// metadata, so it does not ask Options.Exclude (which need not be safe
// for concurrent use), and its errors are the walker's to find and
// report. It returns when ctx ends or everything is listed.
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
		file := false
		for _, e := range entries {
			// Only brings the inode into memory; errors are the walker's.
			// One file a folder: the file system reads the inodes around
			// it with it (ext4 reads ahead in its inode table), and the
			// walker's own lstat of the others then finds them in memory.
			// Stat-ing every file doubled the walk's path lookups on a
			// warm cache, where nothing is read.
			if e.IsDir() || !file {
				_ = unix.Fstatat(fd, e.Name(), &st, unix.AT_SYMLINK_NOFOLLOW)
			}
			file = file || !e.IsDir()
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

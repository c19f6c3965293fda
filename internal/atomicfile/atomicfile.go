// Package atomicfile replaces a file whole and durably, for the small
// state files Kalaja keeps beside a repository or a server (tokens, usage
// counters, pinned checkpoints, TLS keys).
//
// github.com/google/renameio/v2 does the same but does not fsync the
// directory after the rename, so a crash soon after can bring the old file
// back; this package does.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Write replaces the file at path with data, with permissions exactly
// perm (the umask does not apply). It writes a temporary file in path's
// directory, fsyncs it, renames it over path and fsyncs the directory, so
// that a reader sees the old file or the new one, never a mix, and after a
// crash the file is the old one or the new one in full; once Write returns
// nil the new one survives a crash. On error the temporary file is removed
// and path is unchanged, unless only the final directory sync failed: then
// path holds data, not yet durably. The directory must exist. A symbolic
// link at path is replaced, not followed. Concurrent Writes of one path
// each leave a whole file; the last rename wins.
func Write(path string, data []byte, perm fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	renamed := false
	defer func() {
		if !renamed {
			_ = f.Close() // closed already, or err says what failed
			if rerr := os.Remove(f.Name()); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("replace %s: sync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	renamed = true
	return syncDir(dir)
}

// syncDir fsyncs a directory, so that a rename in it is durable. File
// systems that cannot sync a directory (EINVAL) are taken as done.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer func() { _ = d.Close() }() // a folder, read only; Sync reported its state
	if err := d.Sync(); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

package backup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// orphanScanEvery is how often a backup lists every pack of the store for
// packs that no index file lists (repo.IndexOrphans) when no backup of
// this client was interrupted since the last listing. At 100 million
// chunks the listing is over a million packs, most of a small backup's
// time, so it is not done at every backup.
const orphanScanEvery = 24 * time.Hour

// A runMark is a running backup's mark in the repository's cache
// directory: <cache>/<repository ID>/backups/run-<random>, a file the
// backup holds an exclusive flock on while it runs and removes when it
// ends. The kernel drops the lock however the process ends, so a mark
// that nobody holds was left by a backup that was killed or crashed, whose
// packs may be orphans; backups/scanned is touched after each listing.
type runMark struct {
	dir   string
	f     *os.File // nil: no mark (no cache, or it could not be made)
	name  string   // of f
	stale []string // marks of interrupted backups, removed by scanned
}

// markRun leaves this backup's mark in dir (a repository's cache
// directory) and reports whether the backup should look for orphan packs:
// always without a cache (dir ""), or when another backup of this client
// is running or was interrupted, or when the last listing is older than
// orphanScanEvery or unknown. An error leaves no mark and asks for the
// listing, as without a cache.
func markRun(dir string, now time.Time) (*runMark, bool, error) {
	if dir == "" {
		return &runMark{}, true, nil
	}
	m := &runMark{dir: filepath.Join(dir, "backups")}
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return &runMark{}, true, fmt.Errorf("backup marks: %w", err)
	}
	entries, err := os.ReadDir(m.dir)
	if err != nil {
		return &runMark{}, true, fmt.Errorf("backup marks: %w", err)
	}
	scan := false
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "run-") {
			continue
		}
		held, err := isHeld(filepath.Join(m.dir, e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // its backup just ended
		}
		if err != nil {
			return &runMark{}, true, fmt.Errorf("backup marks: %w", err)
		}
		// Either way some packs may be listed by no index file yet: a
		// running backup's, which this one may reuse, or an interrupted
		// one's.
		scan = true
		if !held {
			m.stale = append(m.stale, e.Name())
		}
	}
	if fi, err := os.Stat(filepath.Join(m.dir, "scanned")); err != nil || now.Sub(fi.ModTime()) >= orphanScanEvery || fi.ModTime().After(now) {
		scan = true
	}
	// The mark is locked before it gets its name, so that no other backup
	// sees it unheld.
	f, err := os.CreateTemp(m.dir, "new-")
	if err != nil {
		return &runMark{}, true, fmt.Errorf("backup mark: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return &runMark{}, true, fmt.Errorf("backup mark: lock: %w", err)
	}
	name := filepath.Join(m.dir, "run-"+strings.TrimPrefix(filepath.Base(f.Name()), "new-"))
	if err := os.Rename(f.Name(), name); err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return &runMark{}, true, fmt.Errorf("backup mark: %w", err)
	}
	m.f, m.name = f, name
	return m, scan, nil
}

// isHeld reports whether another open file description holds a lock on
// the file at path.
func isHeld(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer func() { _ = f.Close() }() // read only; closing drops a lock taken here
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return true, nil
	}
	return false, err
}

// scanned records that the store's packs were listed now: the marks of
// interrupted backups are removed, and backups/scanned touched.
func (m *runMark) scanned(now time.Time) error {
	if m.f == nil {
		return nil
	}
	var errs []error
	for _, name := range m.stale {
		if err := os.Remove(filepath.Join(m.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	p := filepath.Join(m.dir, "scanned")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		errs = append(errs, err)
	} else if err := os.Chtimes(p, now, now); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("backup marks: %w", err)
	}
	return nil
}

// end drops the backup's lock on its mark, and removes the mark if the
// backup succeeded (ok): the packs it stored are then listed in its index
// files. A failed backup's mark stays, unheld, so that the next backup
// looks for the packs it left unlisted.
func (m *runMark) end(ok bool) {
	if m.f == nil {
		return
	}
	if ok {
		_ = os.Remove(m.name) // a mark left behind costs one listing of the packs
	}
	_ = m.f.Close() // read only
}

package recovery

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/kalaja/kalaja/internal/alert"
	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/detect"
	"github.com/kalaja/kalaja/internal/fswatch"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/snapshot"
)

// HealSource is what healing reads: what a repair reads, and the
// repository's snapshots.
type HealSource interface {
	Source
	Snapshots(ctx context.Context) ([]*snapshot.Snapshot, error)
	// RefreshIndex reads the index files stored since the index was
	// last read: a watcher heals from snapshots taken after it started.
	RefreshIndex(ctx context.Context) error
}

// Prover is the ledger as healing asks it which snapshots it proves:
// ledger.Client.
type Prover interface {
	ProvenSnapshots(ctx context.Context) (map[blob.ID]ledger.Proven, ledger.Checkpoint, error)
}

// HealOptions configures healing after an alert.
type HealOptions struct {
	Host  string   // this host, whose snapshots are candidates
	Roots []string // the protected folders (absolute, clean): only paths under them are healed
	// Skip are paths never to heal: the watcher's canary files, which no
	// snapshot holds and the watcher keeps in place.
	Skip []string
	// Alerts is the host's alert log so far (nil for none); the alert
	// being healed need not be in it yet.
	Alerts *alert.Log
	// Quarantine is where what the healing takes away goes; empty means
	// DefaultQuarantine of the first path healed.
	Quarantine string
	OnError    func(path string, err error)
	// Watch, if set, is the watcher that raised the alert: healing waits
	// until it has read the events queued when the processes were
	// stopped, and heals what they name too.
	Watch Watch
}

// Watch is the watcher as healing asks it what the stopped processes did
// that the alert could not name yet: watcher.Watcher.
type Watch interface {
	Sync(ctx context.Context) error
	Touched(a detect.Alert) []string
}

// syncTimeout bounds the wait for the watcher to read what was queued.
const syncTimeout = 5 * time.Second

// Heal repairs in place, from the newest clean snapshot the ledger proves
// that was taken before the incident a began, every path a names (the
// files its processes wrote, renamed, truncated or deleted, and the file
// behind a loop device they wrote to, after flushing it), every path
// o.Watch saw them touch after it stopped them, and every file they hold
// open for writing, that lies under o.Roots: each is
// made what the snapshot holds, and what the attack left in its place is
// moved into the quarantine, as Repair does. It returns what it did as an
// alert log line; an error means nothing could be healed, and says why.
// An alert that names nothing under o.Roots but o.Skip (only canaries)
// heals nothing, and is no error.
func Heal(ctx context.Context, src HealSource, lg Prover, a detect.Alert, o HealOptions) (alert.Healing, error) {
	start := time.Now()
	h := alert.Healing{Healed: alert.Healed{Alert: a.Time, PID: a.PID}}
	done := func(err error) (alert.Healing, error) {
		h.Time = time.Now()
		h.Healed.Seconds = time.Since(start).Seconds()
		if err != nil {
			h.Healed.Error = err.Error()
		}
		return h, err
	}
	// The files behind the loop devices the alert names, read before the
	// wait below: a device can be detached meanwhile.
	backing := map[string]string{}
	for _, p := range a.Paths() {
		if b, ok := fswatch.BackingFile(p); ok {
			backing[p] = b
		}
	}
	if o.Watch != nil {
		sctx, cancel := context.WithTimeout(ctx, syncTimeout)
		err := o.Watch.Sync(sctx)
		cancel()
		if err == nil {
			a.Files = append(slices.Clip(a.Files), o.Watch.Touched(a)...)
		} else if o.OnError != nil {
			o.OnError("", fmt.Errorf("the files the processes touched after the alert are not healed: %w", err))
		}
	}
	a.Files = append(slices.Clip(a.Files), OpenForWrite(a.PIDs, o.Roots)...)
	paths := healPaths(a, o.Roots, o.Skip, backing)
	h.Healed.Paths = len(paths)
	if len(paths) == 0 {
		return done(nil) // the alert names only canaries: nothing of the user's was touched
	}
	proven, _, err := lg.ProvenSnapshots(ctx)
	if err != nil {
		return done(fmt.Errorf("ledger: %w", err))
	}
	list, err := src.Snapshots(ctx)
	if err != nil && len(list) == 0 {
		return done(err)
	}
	if err := src.RefreshIndex(ctx); err != nil && o.OnError != nil {
		o.OnError("", fmt.Errorf("read the index files added since the watcher started: %w", err))
	}
	log := &alert.Log{}
	if o.Alerts != nil {
		*log = *o.Alerts
	}
	if !slices.ContainsFunc(log.Alerts, func(b detect.Alert) bool { return b.Time.Equal(a.Time) && b.PID == a.PID }) {
		log.Alerts = append(slices.Clip(log.Alerts), a)
	}
	c, err := Choose(list, Options{Host: o.Host, Paths: paths, Alerts: log,
		Proven: func(id blob.ID) bool { _, ok := proven[id]; return ok }})
	if err != nil {
		return done(err)
	}
	h.Healed.Snapshot = c.Snapshot.ID.String()
	q := o.Quarantine
	if q == "" {
		if q, err = DefaultQuarantine(paths[0], start); err != nil {
			return done(err)
		}
	}
	rep, err := Repair(ctx, src, c.Snapshot, RepairOptions{Paths: paths, Quarantine: q, OnError: o.OnError})
	if rep != nil {
		h.Healed.Restored = rep.FilesRestored + rep.OtherRestored + rep.LinksRestored
		h.Healed.Quarantined = rep.Quarantined
		h.Healed.Verified = rep.Verified
		h.Healed.Errors = rep.Errors
		if rep.Quarantined > 0 {
			h.Healed.Quarantine = q
		}
	}
	return done(err)
}

// healPaths returns the paths a names that lie under roots, but for those
// in skip: its files and both sides of its renames, and for a raw write to
// a loop device the file behind it (from backing, read earlier, else read
// now).
func healPaths(a detect.Alert, roots, skip []string, backing map[string]string) []string {
	var out []string
	for _, p := range a.Paths() {
		b, ok := backing[p]
		if !ok {
			b, ok = fswatch.BackingFile(p)
		}
		if ok {
			flush(p)
			p = b
		}
		if fswatch.InRoots(p, roots) && !slices.Contains(skip, p) && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// flush writes what is buffered for block device dev to its medium: for a
// loop device, into the file behind it, so that the file is what the
// attack left before it is healed (and no later flush writes over the
// healed file's old inode only). An error leaves it to the kernel.
func flush(dev string) {
	f, err := os.Open(dev)
	if err != nil {
		return
	}
	_ = f.Sync()  // best effort: healing goes on either way
	_ = f.Close() // opened to flush, not written
}

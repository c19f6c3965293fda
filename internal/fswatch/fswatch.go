// Package fswatch reports file events under protected folders on Linux,
// with the process that caused them where the kernel says so. Two sources:
//
//   - Fanotify (Linux 5.17+, CAP_SYS_ADMIN): a filesystem mark on each
//     protected folder's filesystem, reporting directory handles and names
//     (FAN_REPORT_DFID_NAME) for FAN_CREATE, FAN_MODIFY, FAN_CLOSE_WRITE,
//     FAN_DELETE and FAN_RENAME, with the PID of the process; events outside
//     the folders are dropped in user space. It also marks every block
//     device in /dev for FAN_MODIFY, so a process writing a raw disk is
//     seen, and /dev itself so devices created later are marked too. A
//     write to a loop device counts only when the file behind it is in a
//     protected folder.
//   - Inotify (any user): a watch on every folder under the protected
//     ones, added as folders appear; no PIDs. Block devices are watched
//     for IN_MODIFY when the user may read them.
//
// Both deliver batches of Events in kernel order to one handler goroutine.
package fswatch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Op is what happened.
type Op uint8

// The operations a Source reports.
const (
	Create   Op = iota + 1 // a file or folder (Dir) appeared
	Modify                 // a file's content or size changed (a write or truncate; the file may still be open)
	Write                  // a file opened for writing was closed
	Delete                 // a file or folder (Dir) was removed
	Rename                 // a file or folder (Dir) moved from OldPath to Path
	RawWrite               // a block device (Path) was written to
	Overflow               // the kernel dropped events (queue full)
)

var opNames = [...]string{"", "create", "modify", "write", "delete", "rename", "raw-write", "overflow"}

// String returns the operation's name.
func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", o)
}

// Event is one file event. PID is 0 when the source does not know it.
type Event struct {
	Op      Op
	Path    string
	OldPath string // Rename: the former path
	Dir     bool
	PID     int
}

// Source delivers events under the protected folders. Its marks or watches
// are in place when Open returns.
type Source interface {
	// Run reads events until ctx is done or the source fails, calling
	// handle (from Run's goroutine) with each batch. It returns nil when
	// ctx ended it. Run may be called once.
	Run(ctx context.Context, handle func([]Event)) error
	// Close releases the kernel objects; call it after Run returned.
	Close() error
	// Name is "fanotify" or "inotify".
	Name() string
	// PIDs reports whether events carry the PID of their process.
	PIDs() bool
}

// ErrUnsupported is returned by Open when the asked-for backend cannot be
// used here (kernel too old, or not permitted).
var ErrUnsupported = errors.New("fswatch: backend not available")

// Options are the optional settings of Open.
type Options struct {
	// Devices are the block devices watched for raw writes. Nil means
	// every block device in /dev (and those created later, with
	// fanotify); an empty non-nil slice means none.
	Devices []string
	Log     *slog.Logger // may be nil
}

// Open starts watching roots (folders) with backend "fanotify",
// "inotify" or "auto" (fanotify if permitted, else inotify). When auto
// falls back, the reason fanotify was not used is logged.
func Open(backend string, roots []string, opts Options) (Source, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	clean, err := cleanRoots(roots)
	if err != nil {
		return nil, err
	}
	switch backend {
	case "fanotify":
		return openFanotify(clean, opts.Devices, log)
	case "inotify":
		return openInotify(clean, opts.Devices, log)
	case "auto", "":
		s, err := openFanotify(clean, opts.Devices, log)
		if err == nil {
			return s, nil
		}
		log.Warn("fanotify unavailable, using inotify: no process IDs, so no process can be stopped", "reason", err)
		return openInotify(clean, opts.Devices, log)
	}
	return nil, fmt.Errorf("fswatch: unknown backend %q (want auto, fanotify or inotify)", backend)
}

// cleanRoots makes roots absolute with symbolic links resolved, as the
// kernel reports paths.
func cleanRoots(roots []string) ([]string, error) {
	if len(roots) == 0 {
		return nil, errors.New("fswatch: no folder to watch")
	}
	var out []string
	for _, r := range roots {
		a, err := filepath.Abs(r)
		if err != nil {
			return nil, fmt.Errorf("fswatch: %s: %w", r, err)
		}
		if a, err = filepath.EvalSymlinks(a); err != nil {
			return nil, fmt.Errorf("fswatch: %w", err)
		}
		out = append(out, a)
	}
	return out, nil
}

// under reports whether p is root or inside it.
func under(p, root string) bool {
	return p == root || root == "/" || strings.HasPrefix(p, root) && len(p) > len(root) && p[len(root)] == '/'
}

// inRoots reports whether p lies in one of roots.
func inRoots(p string, roots []string) bool {
	for _, r := range roots {
		if under(p, r) {
			return true
		}
	}
	return false
}

// blockDevices returns the block devices in /dev.
func blockDevices() []string {
	entries, err := os.ReadDir("/dev")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.Type()&fs.ModeDevice != 0 && e.Type()&fs.ModeCharDevice == 0 {
			out = append(out, "/dev/"+e.Name())
		}
	}
	return out
}

// coalesce is how long a source waits before reading again once it has
// read quietRuns batches in a row with nothing but writes still in progress
// (Modify) or events outside the protected folders: a busy file system (a
// database writing page after page). Meanwhile the kernel merges repeated
// events on the same file, so such a stream costs a few hundred reads a
// second instead of one per write. Any other event (a file closed,
// renamed, deleted) ends the run, so an attack, which closes, renames or
// deletes file after file, is read without this delay.
const (
	coalesce  = 5 * time.Millisecond
	quietRuns = 8
)

// pacer counts quiet batches in a row and delays reading after a run.
type pacer struct{ quiet int }

// readLoop reads the kernel's event buffers from f (of the given kind)
// until ctx is done, has decode turn each into Events appended to a batch,
// hands every non-empty batch to handle, and paces long runs of writes in
// progress.
func readLoop(ctx context.Context, f *os.File, buf []byte, kind string, handle func([]Event), decode func(b []byte, batch []Event) []Event) error {
	stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Now()) })
	defer stop()
	var batch []Event
	var pace pacer
	for {
		if ctx.Err() != nil {
			return nil // also when events never stop coming (a busy file system)
		}
		n, err := f.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("fswatch: read %s: %w", kind, err)
		}
		batch = decode(buf[:n], batch[:0])
		if len(batch) > 0 {
			handle(batch)
		}
		pace.after(ctx, batch)
	}
}

// after is called after each batch; it waits when the run is long enough.
func (p *pacer) after(ctx context.Context, batch []Event) {
	for _, e := range batch {
		if e.Op != Modify {
			p.quiet = 0
			return
		}
	}
	if p.quiet++; p.quiet < quietRuns {
		return
	}
	t := time.NewTimer(coalesce)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

package backup

import (
	"context"
	"sync"

	"github.com/kalaja/kalaja/internal/detect"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/repo"
)

// Protector takes the watcher's protective snapshots: after an alert, a
// backup of the protected folders through Run (so the ledger is checked
// before and records the snapshot after), tagged ProtectiveTag, that leaves
// out every file any alert so far implicated and the canary files. It is
// safe for concurrent use; snapshots are taken one at a time.
type Protector struct {
	r     *repo.Repository
	lc    *ledger.Client
	paths []string
	opts  Options

	mu      sync.Mutex
	damaged map[string]bool
}

// NewProtector returns a Protector of paths in r. opts are the backup's
// options; Protective and Exclude are set by the Protector.
func NewProtector(r *repo.Repository, lc *ledger.Client, paths, canaries []string, opts Options) *Protector {
	p := &Protector{r: r, lc: lc, paths: paths, opts: opts, damaged: map[string]bool{}}
	for _, c := range canaries {
		p.damaged[c] = true
	}
	p.opts.Protective = true
	p.opts.Exclude = func(path string) bool { return p.damaged[path] }
	return p
}

// Snapshot adds the files alert a implicates to those left out, and saves
// a protective snapshot.
func (p *Protector) Snapshot(ctx context.Context, a detect.Alert) (*Result, int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range a.Paths() {
		p.damaged[f] = true
	}
	res, err := Run(ctx, p.r, p.lc, p.paths, p.opts)
	return res, len(p.damaged), err
}

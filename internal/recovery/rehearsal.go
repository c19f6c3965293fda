package recovery

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kalaja/kalaja/internal/alert"
	"github.com/kalaja/kalaja/internal/backup"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/detect"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store/local"
)

// Rehearsal is recovery as the drill rehearses it (kalaja drill --recover):
// a repository of its own in a folder outside the sandbox, a backup of the
// sandbox before each attack, and after it either a backup (whose health
// must be suspect) and a recovery in place, or the watcher's healing.
type Rehearsal struct {
	r    *repo.Repository
	lc   *ledger.Client
	host string

	// log is the rehearsal's alert log: the alerts it recovered from and
	// the resolutions of its recoveries, as an operator's would hold.
	log alert.Log

	mu       sync.Mutex
	healing  sync.WaitGroup
	lastHeal chan struct{} // closed when the last healing started ended
	healed   time.Time     // when the last healing ended
	heals    []error       // the healings' errors, since the last Healed
	restored int           // the entries they restored
}

// rehearsalHost is the host name the rehearsal's snapshots carry.
const rehearsalHost = "kalaja-drill"

// NewRehearsal makes a repository and a ledger client state in dir (which
// must be empty or new), with a random password nobody needs again.
func NewRehearsal(ctx context.Context, dir string) (*Rehearsal, error) {
	st, err := local.Create(filepath.Join(dir, "repo"))
	if err != nil {
		return nil, fmt.Errorf("rehearsal repository: %w", err)
	}
	pw := make([]byte, 32)
	rand.Read(pw)
	kdf, err := crypto.DefaultKDF()
	if err != nil {
		return nil, err
	}
	r, err := repo.Init(ctx, st, pw, kdf)
	if err != nil {
		return nil, fmt.Errorf("rehearsal repository: %w", err)
	}
	lg, err := ledger.Open(ctx, st, r.Config().ID, r.Keys())
	if err != nil {
		return nil, err
	}
	lc, err := ledger.OpenClient(lg, filepath.Join(dir, "state"))
	if err != nil {
		return nil, err
	}
	return &Rehearsal{r: r, lc: lc, host: rehearsalHost}, nil
}

// Backup backs root up through the backup use case and returns the
// snapshot.
func (h *Rehearsal) Backup(ctx context.Context, root string) (*snapshot.Snapshot, error) {
	res, err := backup.Run(ctx, h.r, h.lc, []string{root}, backup.Options{Host: h.host})
	if err != nil {
		return nil, err
	}
	return res.Snapshot, nil
}

// Recover repairs root in place from the newest clean snapshot before the
// incident (a, if not nil, began it), as kalaja recover does, with the
// quarantine in quarantine, and returns the report.
//
// As after a recovery in earnest, the incident is then resolved, so that
// the next attack's recovery is not held to the snapshots before this one.
func (h *Rehearsal) Recover(ctx context.Context, root, quarantine string, a *detect.Alert) (*Report, error) {
	if a != nil {
		h.log.Alerts = append(h.log.Alerts, *a)
	}
	log := h.log
	o := RecoverOptions{Choose: Options{Host: h.host, Paths: []string{root}, Alerts: &log}, Repair: RepairOptions{Quarantine: quarantine}, Force: true}
	_, _, rep, err := Recover(ctx, h.r, h.lc, o)
	if err == nil && rep.Errors > 0 {
		err = fmt.Errorf("%d paths could not be recovered: %s", rep.Errors, problems(rep))
	}
	if err == nil {
		h.log.Resolutions = append(h.log.Resolutions, alert.Resolution{Time: time.Now(), Resolved: alert.Resolved{By: "recover"}})
	}
	return rep, err
}

// Heal starts healing, as kalaja watch --heal does, the paths alert a names
// under roots but skip, in the background; Healed waits for it. As in
// kalaja watch, healings run one at a time, in the order of their alerts:
// the alerts of one attack name the same files.
func (h *Rehearsal) Heal(ctx context.Context, a detect.Alert, w Watch, roots, skip []string, quarantine string) {
	h.healing.Add(1)
	h.mu.Lock()
	prev, done := h.lastHeal, make(chan struct{})
	h.lastHeal = done
	h.mu.Unlock()
	go func() {
		defer h.healing.Done()
		defer close(done)
		if prev != nil {
			<-prev
		}
		var mu sync.Mutex
		var problems []string
		onError := func(path string, err error) {
			mu.Lock()
			defer mu.Unlock()
			if len(problems) < 3 {
				problems = append(problems, path+": "+err.Error())
			}
		}
		hl, err := Heal(ctx, h.r, h.lc, a, HealOptions{Host: h.host, Roots: roots, Skip: skip, Alerts: alertLog(a), Quarantine: quarantine, Watch: w, OnError: onError})
		if err == nil && hl.Healed.Errors > 0 {
			err = fmt.Errorf("%d paths could not be healed: %s", hl.Healed.Errors, strings.Join(problems, "; "))
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		h.healed = time.Now()
		h.heals = append(h.heals, err)
		h.restored += hl.Healed.Restored
	}()
}

// Healed waits for the healings started so far and returns when the last
// ended, how many there were, how many entries they restored, and their
// errors joined; it forgets them.
func (h *Rehearsal) Healed() (at time.Time, n, restored int, err error) {
	h.healing.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	var msgs []string
	for _, err := range h.heals {
		if err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	n, at, restored = len(h.heals), h.healed, h.restored
	h.heals, h.restored = nil, 0
	if len(msgs) > 0 {
		return at, n, restored, fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	return at, n, restored, nil
}

// alertLog is a log of one alert.
func alertLog(a detect.Alert) *alert.Log { return &alert.Log{Alerts: []detect.Alert{a}} }

// problems lists a report's first problems.
func problems(rep *Report) string {
	var out []string
	for i, p := range rep.Problems {
		if i == 3 {
			out = append(out, "...")
			break
		}
		out = append(out, p.Path+": "+p.Error)
	}
	return strings.Join(out, "; ")
}

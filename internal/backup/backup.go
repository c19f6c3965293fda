// Package backup is the backup use case, the one sequence that every
// snapshot goes through, whether a user, a timer or the watcher's
// protective snapshot asks for it: check that the ledger extends what this
// client saw (nothing is written into a rolled-back or forked log), clear
// the temporary files of dead writers, index packs an interrupted backup
// left, choose the parent snapshot, archive, and record every stored object
// and the snapshot in the ledger.
//
// A write-only key cannot read snapshots or trees: its parent, baseline and
// parent trees come from the host's parent cache (internal/parentcache),
// which the backup refreshes after storing the snapshot.
package backup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/kalaja/kalaja/internal/archiver"
	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/parentcache"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store"
)

// ProtectiveTag is the tag of a protective snapshot: one the watcher took
// after an alert, leaving out the files the attack touched.
const ProtectiveTag = "protective"

// Options configures one backup.
type Options struct {
	Host    string   // hostname to record
	Tags    []string // recorded in the snapshot
	Version string   // program version recorded in the snapshot
	// ReadAll reads every file, even those the parent says are unchanged;
	// the parent is still what the snapshot's health is judged against.
	ReadAll bool
	// Protective marks the snapshot as protective (ProtectiveTag).
	Protective bool
	// Exclude, OnError and Progress are passed to the archiver (see
	// archiver.Options).
	Exclude  func(path string) bool
	OnError  func(path string, err error)
	Progress *archiver.Progress
	// Log receives what the backup repaired (Info) and what it could not
	// read besides files (Warn); nil discards both.
	Log *slog.Logger
	// Cache is the host's parent cache, used when the key is write-only
	// (a full key reads the repository instead); nil makes every backup
	// with a write-only key read every file.
	Cache *parentcache.Cache
}

// Result is what a backup made.
type Result struct {
	Snapshot *snapshot.Snapshot
	// Checkpoint is the ledger checkpoint that records the snapshot.
	Checkpoint ledger.Checkpoint
	// TrustedParent reports that unchanged files took the parent's
	// content without index lookups (see verified.go).
	TrustedParent bool
}

// Run backs paths up into r. Its snapshot's ledger record carries the
// snapshot's health verdict. lc is the repository's ledger as this client
// sees it; with a nil lc the ledger is neither checked nor appended to,
// which only the build that measures the ledger's cost does.
//
// A ledger that does not extend what this client saw is an error wrapping
// blob.ErrTampered, and nothing is written. An error after the snapshot
// was stored (the ledger could not record it) names the snapshot, and
// Result.Snapshot is set.
func Run(ctx context.Context, r *repo.Repository, lc *ledger.Client, paths []string, o Options) (*Result, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, err := archiver.CleanPaths(paths)
	if err != nil {
		return nil, err
	}
	var latest ledger.Checkpoint
	if lc != nil {
		if latest, _, err = lc.Check(ctx); err != nil {
			return nil, fmt.Errorf("ledger: %w (nothing was backed up; run 'kalaja verify' for details)", err)
		}
		// With the administrator's key pinned, a request only it signed
		// tells the backup that a prune runs meanwhile (repo.CheckPruned).
		adm, err := lc.Admin("")
		if err != nil {
			return nil, fmt.Errorf("ledger: %w (nothing was backed up)", err)
		}
		if adm != nil {
			r.SetAdminKey(adm)
		}
	}
	if c, ok := r.Store().(tempCleaner); ok {
		if err := c.CleanTemp(time.Minute); err != nil {
			log.Warn("cleaning temporary files", "err", err)
		}
	}
	mark, scan, err := markRun(r.CacheDir(), time.Now())
	if err != nil {
		log.Warn("the store's packs are listed at every backup", "err", err)
	}
	saved := false
	defer func() { mark.end(saved) }()
	if scan {
		if n, err := r.IndexOrphans(ctx); err != nil {
			log.Warn("re-indexing packs (run 'kalaja check')", "err", err)
		} else {
			if n > 0 {
				log.Info(fmt.Sprintf("indexed %d packs no index listed (left by an interrupted backup, or stored by one still running)", n))
			}
			if err := mark.scanned(time.Now()); err != nil {
				log.Warn("the store's packs will be listed again by the next backup", "err", err)
			}
		}
	}
	opts := archiver.Options{
		Hostname: o.Host, Tags: o.Tags, Version: o.Version, Ledger: ref(latest),
		Exclude: o.Exclude, OnError: o.OnError, Progress: o.Progress, ReadAll: o.ReadAll,
	}
	if o.Protective && !slices.Contains(opts.Tags, ProtectiveTag) {
		opts.Tags = append(slices.Clone(opts.Tags), ProtectiveTag)
	}
	var trees map[blob.ID][]byte // the new snapshot's trees, for the cache
	var cached *parentcache.Entry
	if r.Keys().CanRead() {
		list, err := r.Snapshots(ctx)
		if err != nil {
			log.Warn("some snapshots cannot be read: the parent is chosen among the others", "err", err)
		}
		same := func(s *snapshot.Snapshot) bool {
			return s.Hostname == o.Host && s.SamePaths(abs) && !slices.Contains(s.Tags, ProtectiveTag)
		}
		opts.Parent, _ = snapshot.Find(list, "latest", same)
		opts.Baseline = Baseline(list, same)
	} else if o.Cache != nil {
		cached = loadParent(ctx, r, o.Cache, o.Host, abs, log)
		if cached != nil {
			opts.Parent, opts.Baseline, opts.LoadTree = cached.Snapshot, cached.Baseline, cached.LoadTree
		}
		if !o.Protective {
			trees = map[blob.ID][]byte{}
			opts.SavedTree = func(id blob.ID, data []byte) { trees[id] = data }
		}
	}
	if opts.Parent != nil && !opts.ReadAll {
		if trusted(r.CacheDir(), opts.Parent.ID, r.Removals()) {
			opts.TrustParent = true
			log.Debug("no pack was deleted since the parent snapshot was stored: unchanged files take its content without index lookups", "parent", opts.Parent.ID.Short())
		}
	}
	// What the backup adds leaves memory for the index cache as its index
	// files are stored: a first backup of millions of files stays within
	// the cache's memory bound (docs/design.md 7.2).
	r.Index().SetSpill(true)
	sn, err := archiver.Backup(ctx, r, abs, opts)
	if err := r.Index().SpillErr(); err != nil {
		log.Warn("spilling the backup's new index entries into the cache", "err", err)
	}
	if err != nil {
		return nil, err
	}
	saved = true // every pack it stored is listed in an index file
	res := &Result{Snapshot: sn, Checkpoint: latest, TrustedParent: opts.TrustParent}
	if err := recordVerified(r.CacheDir(), sn.ID, r.CheckedRemovals()); err != nil {
		log.Warn("the next backup looks up every unchanged file's content in the index", "err", err)
	}
	if trees != nil {
		e := &parentcache.Entry{Snapshot: sn, Trees: trees}
		if sn.Health != nil && sn.Health.Status == snapshot.Clean {
			e.Baseline = append(e.Baseline, sn.Health)
		}
		if cached != nil {
			e.Baseline = append(e.Baseline, cached.Baseline...)
		}
		e.Baseline = e.Baseline[:min(len(e.Baseline), BaselineSize)]
		if err := o.Cache.Save(e); err != nil {
			log.Warn("the parent cache could not be saved: the next backup reads every file", "err", err)
		}
	}
	if lc != nil {
		now := time.Now()
		recs := ledger.Records(r.Written(), o.Host, now)
		for i, rec := range recs {
			if rec.Kind == ledger.KindSnapshot && rec.ID == sn.ID && sn.Health != nil {
				v := sn.Health.Verdict()
				recs[i].Health = &v
			}
		}
		if res.Checkpoint, err = lc.Record(ctx, recs, o.Host, now); err != nil {
			return res, fmt.Errorf("snapshot %s was saved, but %w", sn.ID.Short(), err)
		}
	}
	return res, nil
}

// loadParent returns the cached parent of host's backups of paths, or nil:
// none cached, a cache that does not open (reported), or a parent
// snapshot the repository no longer holds. Any of these costs a full
// read, never a wrong snapshot.
func loadParent(ctx context.Context, r *repo.Repository, c *parentcache.Cache, host string, paths []string, log *slog.Logger) *parentcache.Entry {
	e, err := c.Load(host, paths)
	if err != nil {
		if !errors.Is(err, blob.ErrNotFound) {
			log.Warn("the parent cache cannot be used: every file is read", "err", err)
		}
		return nil
	}
	if _, err := r.Store().Stat(ctx, store.Handle{Type: store.Snapshots, Name: e.Snapshot.ID.String()}); err != nil {
		log.Warn("the cached parent snapshot is not in the repository: every file is read", "snapshot", e.Snapshot.ID.Short(), "err", err)
		return nil
	}
	return e
}

// BaselineSize is how many of the host's earlier clean snapshots a new
// snapshot's health is judged against.
const BaselineSize = 10

// Baseline returns the health records of the newest clean snapshots of
// list that same accepts, at most BaselineSize, newest first. Protective
// snapshots are neither parents nor baseline (Run's same excludes them):
// they leave out the files an attack touched, so a backup judged against
// one would take the damage for new files.
func Baseline(list []*snapshot.Snapshot, same func(*snapshot.Snapshot) bool) []*snapshot.Health {
	sorted := slices.Clone(list)
	snapshot.Sort(sorted)
	var out []*snapshot.Health
	for i := len(sorted) - 1; i >= 0 && len(out) < BaselineSize; i-- {
		if s := sorted[i]; same(s) && s.Health != nil && s.Health.Status == snapshot.Clean {
			out = append(out, s.Health)
		}
	}
	return out
}

// tempCleaner is a store that keeps temporary files of writers that may
// have died: the local directory store.
type tempCleaner interface {
	CleanTemp(age time.Duration) error
}

// ref returns a checkpoint as a snapshot records it.
func ref(cp ledger.Checkpoint) *snapshot.Checkpoint {
	if cp.N == 0 {
		return nil
	}
	return &snapshot.Checkpoint{Size: cp.N, Root: cp.Hash[:]}
}

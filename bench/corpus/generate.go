package main

import (
	"cmp"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"
)

// stats counts what was written.
type stats struct {
	files int
	bytes int64
}

// job writes one independent part of the corpus; its output depends only on
// the seed and the plan, never on which worker runs it or when.
type job struct {
	size int64
	run  func() (stats, error)
}

// generate writes a corpus of about size bytes into dir.
func generate(dir string, size int64, seed uint64) (stats, error) {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return stats{}, fmt.Errorf("%s is not empty", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return stats{}, err
	}
	r := newRand(key(seed, "plan"))
	vmSize := size * 4 / 10
	mediaBudget := size * 3 / 10
	textBudget := size - vmSize - mediaBudget

	projects, libSizes := planProjects(r, textBudget)
	libs := make([][]libFile, len(libSizes))
	for i, n := range libSizes {
		libs[i] = newLibrary(seed, i, n)
	}

	jobs := []job{{size: vmSize, run: func() (stats, error) { return writeVM(dir, seed, vmSize) }}}
	for i, p := range projects {
		jobs = append(jobs, job{size: p.budget, run: func() (stats, error) {
			return writeProject(dir, seed, i, p, libs)
		}})
	}
	for i, f := range planMedia(r, mediaBudget) {
		jobs = append(jobs, job{size: f.size, run: func() (stats, error) {
			return writeMedia(dir, seed, i, f)
		}})
	}
	// Largest first keeps the workers busy until the end.
	slices.SortStableFunc(jobs, func(a, b job) int { return cmp.Compare(b.size, a.size) })

	var (
		mu    sync.Mutex
		total stats
		g     errgroup.Group
	)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, j := range jobs {
		g.Go(func() error {
			st, err := j.run()
			mu.Lock()
			total.files += st.files
			total.bytes += st.bytes
			mu.Unlock()
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return total, err
	}
	return total, fixDirTimes(dir)
}

// fixDirTimes gives every directory the same modification time, so that
// copies of two generated trees are identical in metadata too.
func fixDirTimes(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, path)
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if err := os.Chtimes(d, baseTime, baseTime); err != nil {
			return err
		}
	}
	return nil
}

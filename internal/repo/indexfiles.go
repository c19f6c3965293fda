package repo

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/kalaja/kalaja/internal/index"
	"github.com/kalaja/kalaja/internal/store"
)

// indexReaders is how many index files EachIndexFile reads and decodes
// while its callback works on another; as many more may wait decoded.
const indexReaders = 2

// EachIndexFile lists the index files and calls fn with each one's name and
// the packs it lists, in no particular order, one call at a time (never
// concurrently). While fn runs, at most 2*indexReaders further files are
// being read or wait decoded, so memory is bounded by a few index files,
// not by the index. It does not change the in-memory index.
//
// Files that cannot be read, decrypted or decoded are skipped and returned
// as *IndexError values joined in the error, as LoadIndex does; the other
// files are all given to fn. An error from fn stops the reading and is
// returned as it is; so is the context's error.
func (r *Repository) EachIndexFile(ctx context.Context, fn func(name string, packs []index.Pack) error) error {
	var names []string
	if err := r.st.List(ctx, store.Index, func(fi store.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	}); err != nil {
		return fmt.Errorf("list index: %w", err)
	}
	type decoded struct {
		name  string
		packs []index.Pack
		err   error
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(rctx)
	todo := make(chan string)
	out := make(chan decoded, indexReaders)
	g.Go(func() error {
		defer close(todo)
		for _, name := range names {
			select {
			case todo <- name:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	var readers sync.WaitGroup
	for range indexReaders {
		readers.Add(1)
		g.Go(func() error {
			defer readers.Done()
			for name := range todo {
				packs, err := r.loadIndexFile(gctx, name)
				select {
				case out <- decoded{name, packs, err}:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			return nil
		})
	}
	go func() {
		readers.Wait()
		close(out)
	}()
	var errs []error
	var fnErr error
	for d := range out {
		switch {
		case fnErr != nil || gctx.Err() != nil:
			// Stopping: drain what the readers still send.
		case d.err != nil:
			errs = append(errs, &IndexError{d.name, d.err})
		default:
			if fnErr = fn(d.name, d.packs); fnErr != nil {
				cancel()
			}
		}
	}
	werr := g.Wait()
	switch {
	case fnErr != nil:
		return fnErr
	case ctx.Err() != nil:
		return ctx.Err()
	case werr != nil:
		return werr
	}
	return errors.Join(errs...)
}

package repo

import (
	"context"

	"github.com/kalaja/kalaja/internal/index"
)

// EachIndexFile lists the index files and calls fn with each one's name and
// the packs it lists, in no particular order, one call at a time (never
// concurrently). While fn runs, fewer than indexReaders() further files
// are being read or wait decoded, so memory is bounded by a few index
// files, not by the index. It does not change the in-memory index.
//
// Files that cannot be read, decrypted or decoded are skipped and returned
// as *IndexError values joined in the error, as LoadIndex does; the other
// files are all given to fn. An error from fn stops the reading and is
// returned as it is; so is the context's error.
func (r *Repository) EachIndexFile(ctx context.Context, fn func(name string, packs []index.Pack) error) error {
	names, err := r.indexNames(ctx, nil)
	if err != nil {
		return err
	}
	return r.readIndexFiles(ctx, names, fn)
}

// Package store defines where repository objects live: the role interfaces
// the rest of Kalaja uses, and the names of object kinds. Implementations are
// in subpackages: local (a directory), s3 (a bucket with Object Lock),
// remote (a kalaja serve server over HTTPS), and faulty (a decorator that
// injects faults, for tests); storetest is the conformance suite they all
// pass. A store moves bytes; it does not know formats, only the one rule of
// which names each kind of object may have (Handle.Check), which every
// store and the server apply.
//
// The interfaces are append-only on purpose: Saver never overwrites and there
// is no delete in Store. Removal is the separate Remover interface, which only
// administrative code paths receive.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/kalaja/kalaja/internal/blob"
)

// ErrExists reports that Save found an object of that name already stored.
var ErrExists = errors.New("object already exists")

// FileType is a kind of object; its value is the directory (or key prefix)
// the objects live under.
type FileType string

// Object kinds.
const (
	Config    FileType = "config"
	Keys      FileType = "keys"
	Packs     FileType = "data"
	Index     FileType = "index"
	Snapshots FileType = "snapshots"

	// The ledger (docs/design.md, "Ledger"): record batches, Merkle tiles,
	// signed checkpoints, witness co-signatures, the log's keys, and the
	// administrator's signed requests that authorise removal records.
	LedgerEntries     FileType = "ledger/entries"
	LedgerTiles       FileType = "ledger/tiles"
	LedgerCheckpoints FileType = "ledger/checkpoints"
	LedgerWitness     FileType = "ledger/witness"
	LedgerKeys        FileType = "ledger/keys"
	LedgerRemovals    FileType = "ledger/removals"
)

// Listable are the kinds of named objects, each kept under its own
// directory or key prefix. Config is the one unnamed object.
var Listable = []FileType{Keys, Packs, Index, Snapshots,
	LedgerEntries, LedgerTiles, LedgerCheckpoints, LedgerWitness, LedgerKeys, LedgerRemovals}

// Handle names one object.
type Handle struct {
	Type FileType
	Name string
}

// String returns "type/name".
func (h Handle) String() string {
	if h.Type == Config {
		return string(h.Type)
	}
	return fmt.Sprintf("%s/%s", h.Type, h.Name)
}

// Object names one content-addressed object a client stored, with its
// size: what the ledger records of it.
type Object struct {
	Type FileType
	ID   blob.ID // the SHA-256 of its bytes, which is its name
	Size int64
}

// FileInfo describes a stored object.
type FileInfo struct {
	Name string
	Size int64
	// Stamp is when the store recorded the object, by the store's clock
	// (a local file's modification time, an S3 object's first version's
	// LastModified, the server's stamp), never a time a client claims. Retention
	// and forget's policy are computed from it. Zero if the store does not
	// know.
	Stamp time.Time
	// Host is the identity the store authenticated when the object was
	// stored, by the store's records, never a client's claim: the host of
	// the server token that stored a snapshot. "" if the store does not
	// know (a local directory, S3, objects other than snapshots).
	Host string
}

// Saver adds objects.
type Saver interface {
	// Save stores data under h atomically and durably: when it returns nil
	// the object survives a crash, and a crash before that leaves no object
	// named h. It never replaces an existing object: it returns an error
	// wrapping ErrExists instead. It refuses a handle Handle.Check refuses
	// with that error (wrapping ErrInvalidHandle), and returns ctx.Err()
	// (leaving no object) when ctx is already done.
	Save(ctx context.Context, h Handle, data []byte) error
}

// Loader reads objects. A missing object is reported with an error wrapping
// blob.ErrNotFound, a handle Handle.Check refuses with its error.
type Loader interface {
	// Load returns the whole object.
	Load(ctx context.Context, h Handle) ([]byte, error)
	// ReadAt fills p from the object starting at off; a short object is an
	// error wrapping io.ErrUnexpectedEOF.
	ReadAt(ctx context.Context, h Handle, p []byte, off int64) error
}

// Lister enumerates objects.
type Lister interface {
	// List calls fn for every object of type t, in no particular order,
	// stopping at the first error fn returns. It reports only names
	// Handle.Check accepts: anything else a backend holds is not an
	// object of the repository. A type that is not in Listable is an
	// error wrapping ErrInvalidHandle.
	List(ctx context.Context, t FileType, fn func(FileInfo) error) error
	// Stat describes one object; errors as for Loader.
	Stat(ctx context.Context, h Handle) (FileInfo, error)
}

// Store is what ordinary clients get: add, read, list. No deletion.
type Store interface {
	Saver
	Loader
	Lister
	// Location names the store for messages, e.g. a directory path.
	Location() string
}

// Stager builds an object in place: the caller writes its bytes, then
// commits them under a name it learns only at the end (a pack is named by
// the hash of its bytes). Stores without it are staged in memory by callers.
type Stager interface {
	// Stage starts a new object of type t; a type FileType.Check refuses
	// is an error wrapping ErrInvalidHandle.
	Stage(t FileType) (Staged, error)
}

// Staged is an object being written. Exactly one of Commit or Abort must be
// called. Not safe for concurrent use.
type Staged interface {
	io.Writer
	// Commit stores the bytes written so far as object (type, name), with
	// the guarantees (and the refusals) of Saver.Save.
	Commit(ctx context.Context, name string) error
	// Abort discards the bytes written.
	Abort()
}

// Remover deletes objects. Only administrative paths (key removal on a local
// repository, and later prune) receive it. Remove refuses a handle
// Handle.Check refuses, and reports a missing object as Loader does.
type Remover interface {
	Remove(ctx context.Context, h Handle) error
}

// Renewer is a store that keeps each object under a retention of its own
// that it can extend (S3 with Object Lock: s3.Store.Renew).
type Renewer interface {
	// Renew extends the retention of h's object when it would end soon,
	// and reports whether it did. Retention is only ever lengthened.
	Renew(ctx context.Context, h Handle) (bool, error)
}

// RenewAll extends, if st is a Renewer, the retention of the config and
// of every listed object for which skip (nil: none) returns false, and
// returns how many it extended. It renews while it lists, so its memory
// does not grow with the number of objects. An object gone by the time it
// is renewed (a missing config, a concurrent deletion) is passed over; any
// other error stops it, having extended the count it returns.
func RenewAll(ctx context.Context, st Lister, skip func(Handle) bool) (int, error) {
	rn, ok := st.(Renewer)
	if !ok {
		return 0, nil
	}
	n := 0
	renew := func(h Handle) error {
		if skip != nil && skip(h) {
			return nil
		}
		ok, err := rn.Renew(ctx, h)
		if errors.Is(err, blob.ErrNotFound) {
			return nil // no config yet, or deleted since the listing
		}
		if err != nil {
			return fmt.Errorf("extend retention: %w", err)
		}
		if ok {
			n++
		}
		return nil
	}
	if err := renew(Handle{Type: Config}); err != nil {
		return n, err
	}
	for _, t := range Listable {
		if err := st.List(ctx, t, func(fi FileInfo) error {
			return renew(Handle{Type: t, Name: fi.Name})
		}); err != nil {
			return n, fmt.Errorf("renew %s: %w", t, err)
		}
	}
	return n, nil
}

package snapshot

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kalaja/kalaja/internal/blob"
)

// Version is the version of the snapshot encoding that Encode writes.
// Decode reads it and version 1, which has no health record.
const Version = 2

// Snapshot records one backup. ID is not encoded: it is the SHA-256 of the
// stored (sealed) object, set by whoever loads or saves it.
type Snapshot struct {
	ID             blob.ID   `json:"-"`
	Version        int       `json:"version"`
	Time           time.Time `json:"time"`
	Parent         *blob.ID  `json:"parent,omitempty"`
	Tree           blob.ID   `json:"tree"`
	Paths          []string  `json:"paths"`
	Hostname       string    `json:"hostname"`
	Username       string    `json:"username,omitempty"`
	UID            uint32    `json:"uid"`
	GID            uint32    `json:"gid"`
	Tags           []string  `json:"tags,omitempty"`
	ProgramVersion string    `json:"program_version,omitempty"`
	Summary        *Summary  `json:"summary,omitempty"`
	// Ledger is the newest ledger checkpoint the client had checked when it
	// made the snapshot, so a later verify can tell if the log was rolled
	// back or rewritten since (docs/design.md, "Ledger").
	Ledger *Checkpoint `json:"ledger,omitempty"`
	// Health is the verdict on the snapshot's content made during the
	// backup; nil for a version 1 snapshot.
	Health *Health `json:"health,omitempty"`
}

// Checkpoint refers to a ledger checkpoint: the log's size and root hash.
type Checkpoint struct {
	Size int64  `json:"size"`
	Root []byte `json:"root"`
}

// Summary is what a backup did.
type Summary struct {
	Start          time.Time `json:"start"`
	End            time.Time `json:"end"`
	FilesNew       int       `json:"files_new"`
	FilesChanged   int       `json:"files_changed"`
	FilesUnchanged int       `json:"files_unmodified"`
	Dirs           int       `json:"dirs"`
	Errors         int       `json:"errors"`
	BlobsAdded     int       `json:"blobs_added"`
	BytesAdded     int64     `json:"bytes_added"` // stored bytes of new blobs
	BytesRead      int64     `json:"bytes_read"`  // file content read
	TotalBytes     int64     `json:"total_bytes"` // size of all files in the snapshot
	TotalFiles     int       `json:"total_files"`
}

// Encode returns the snapshot's JSON encoding, setting the versions of
// the snapshot and its health record to the current ones.
func (s *Snapshot) Encode() ([]byte, error) {
	s.Version = Version
	if s.Health != nil {
		s.Health.Version = HealthVersion
	}
	return json.Marshal(s)
}

// Decode parses a snapshot encoding of version 1 or 2. A health record is
// decoded strictly (unknown fields, bad values and lists longer than the
// Max* bounds wrap blob.ErrCorrupt; another health version wraps
// blob.ErrUnsupported).
func Decode(b []byte) (*Snapshot, error) {
	var s Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decode snapshot: %v: %w", err, blob.ErrCorrupt)
	}
	if s.Version != 1 && s.Version != Version {
		return nil, fmt.Errorf("snapshot version %d: %w", s.Version, blob.ErrUnsupported)
	}
	if s.Tree.IsZero() {
		return nil, fmt.Errorf("decode snapshot: no tree: %w", blob.ErrCorrupt)
	}
	if err := checkHealth(s.Health, s.Version); err != nil {
		return nil, err
	}
	return &s, nil
}

// SamePaths reports whether s backed up exactly paths (in any order).
func (s *Snapshot) SamePaths(paths []string) bool {
	a, b := slices.Clone(s.Paths), slices.Clone(paths)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// Sort orders snapshots by time, oldest first (ties by ID).
func Sort(list []*Snapshot) {
	slices.SortFunc(list, func(a, b *Snapshot) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID.String(), b.ID.String())
	})
}

// Find resolves a user's name for a snapshot: "latest" (the newest of list
// that keep accepts; keep may be nil), a full ID, or a unique prefix of at
// least 4 hex digits. It returns an error wrapping blob.ErrNotFound if none
// matches, and a plain error if a prefix is ambiguous.
func Find(list []*Snapshot, name string, keep func(*Snapshot) bool) (*Snapshot, error) {
	if name == "latest" {
		var best *Snapshot
		for _, s := range list {
			if keep != nil && !keep(s) {
				continue
			}
			if best == nil || s.Time.After(best.Time) {
				best = s
			}
		}
		if best == nil {
			return nil, fmt.Errorf("no snapshot to call latest: %w", blob.ErrNotFound)
		}
		return best, nil
	}
	name = strings.ToLower(name)
	if _, err := hex.DecodeString(name + strings.Repeat("0", len(name)%2)); err != nil || len(name) < 4 {
		return nil, fmt.Errorf("snapshot %q: want \"latest\", an ID or a prefix of at least 4 hex digits", name)
	}
	var found *Snapshot
	for _, s := range list {
		if strings.HasPrefix(s.ID.String(), name) {
			if found != nil {
				return nil, fmt.Errorf("snapshot prefix %q is ambiguous: %s and %s match", name, found.ID.Short(), s.ID.Short())
			}
			found = s
		}
	}
	if found == nil {
		return nil, fmt.Errorf("snapshot %q: %w", name, blob.ErrNotFound)
	}
	return found, nil
}

// Package parentcache is what a write-only host keeps of its own last
// snapshot of each set of paths, so that its next backup is incremental
// although it cannot read the repository's snapshots and trees back
// (docs/design.md, "Write-only hosts").
//
// An entry holds the snapshot record, every tree of the snapshot (encoded
// as stored) and the health records of the host's newest clean snapshots
// of those paths. It is one file per host and paths,
// <dir>/<hex SHA-256 of the key>, sealed with crypto.Keys.SealLocal (label
// "parent-cache", the file's name as additional data), so that the cache at
// rest holds no file name or tree in the clear, and a damaged, truncated or
// swapped file is refused as a whole: a lost or corrupt cache costs a full
// read, never a wrong snapshot. The plaintext is JSON:
//
//	{"version":1,"snapshot_id":"<hex>","snapshot":{...},"baseline":[...],"trees":[{"id":"<hex>","data":"<base64>"}]}
//
// Entries are written atomically (internal/atomicfile) after the snapshot
// is stored. A Cache is safe for concurrent use by goroutines; two
// processes backing up the same paths race, the last to finish wins, which
// only costs the other one's next backup its incremental reuse.
package parentcache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kalaja/kalaja/internal/atomicfile"
	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/snapshot"
)

// Version is the version of an entry's plaintext.
const Version = 1

const label = "parent-cache"

// Cache is a directory of entries, sealed with a repository's keys.
type Cache struct {
	dir  string
	keys *crypto.Keys
}

// New returns the cache in dir (created on the first Save) for the
// repository whose keys are keys.
func New(dir string, keys *crypto.Keys) *Cache { return &Cache{dir: dir, keys: keys} }

// Entry is the cached parent of one host's backups of one set of paths.
type Entry struct {
	Snapshot *snapshot.Snapshot
	// Baseline holds the health records of the newest clean snapshots of
	// the same host and paths, newest first (backup.BaselineSize at most).
	Baseline []*snapshot.Health
	// Trees holds every tree of Snapshot by ID, encoded as stored.
	Trees map[blob.ID][]byte
}

type entryJSON struct {
	Version  int                `json:"version"`
	ID       blob.ID            `json:"snapshot_id"`
	Snapshot json.RawMessage    `json:"snapshot"`
	Baseline []*snapshot.Health `json:"baseline"`
	Trees    []treeJSON         `json:"trees"`
}

type treeJSON struct {
	ID   blob.ID `json:"id"`
	Data []byte  `json:"data"`
}

// name is the file name of the entry for host and paths (absolute, clean,
// sorted, as archiver.CleanPaths gives them).
func name(host string, paths []string) string {
	h := sha256.Sum256([]byte(host + "\n" + strings.Join(paths, "\x00")))
	return hex.EncodeToString(h[:])
}

// Load returns the entry of host and paths. No entry is an error wrapping
// blob.ErrNotFound; a file that does not open or decode, of another
// version, another host or other paths, wraps blob.ErrCorrupt.
func (c *Cache) Load(host string, paths []string) (*Entry, error) {
	n := name(host, paths)
	b, err := os.ReadFile(filepath.Join(c.dir, n))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("parent cache: %w", blob.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("parent cache: %w", err)
	}
	plain, err := c.keys.OpenLocal(label, n, b)
	if err != nil {
		return nil, fmt.Errorf("parent cache %s: %w", n[:8], err)
	}
	var j entryJSON
	if err := json.Unmarshal(plain, &j); err != nil {
		return nil, fmt.Errorf("parent cache %s: %v: %w", n[:8], err, blob.ErrCorrupt)
	}
	if j.Version != Version {
		return nil, fmt.Errorf("parent cache %s: version %d: %w", n[:8], j.Version, blob.ErrCorrupt)
	}
	sn, err := snapshot.Decode(j.Snapshot)
	if err != nil {
		return nil, fmt.Errorf("parent cache %s: %w", n[:8], err)
	}
	if sn.Hostname != host || !sn.SamePaths(paths) {
		return nil, fmt.Errorf("parent cache %s: holds another host's or paths' snapshot: %w", n[:8], blob.ErrCorrupt)
	}
	sn.ID = j.ID
	e := &Entry{Snapshot: sn, Baseline: j.Baseline, Trees: make(map[blob.ID][]byte, len(j.Trees))}
	for _, t := range j.Trees {
		e.Trees[t.ID] = t.Data
	}
	return e, nil
}

// Save stores e as the entry of its snapshot's host and paths, replacing
// the previous one atomically.
func (c *Cache) Save(e *Entry) error {
	sb, err := e.Snapshot.Encode()
	if err != nil {
		return err
	}
	j := entryJSON{Version: Version, ID: e.Snapshot.ID, Snapshot: sb, Baseline: e.Baseline, Trees: make([]treeJSON, 0, len(e.Trees))}
	for id, data := range e.Trees {
		j.Trees = append(j.Trees, treeJSON{id, data})
	}
	plain, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("parent cache: %w", err)
	}
	n := name(e.Snapshot.Hostname, e.Snapshot.Paths)
	sealed, err := c.keys.SealLocal(label, n, plain)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("parent cache: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(c.dir, n), sealed, 0o600); err != nil {
		return fmt.Errorf("parent cache: %w", err)
	}
	return nil
}

// LoadTree decodes tree id of the entry; a tree the entry lacks wraps
// blob.ErrNotFound (the archiver then reads that folder in full). It has
// the signature of health.TreeLoader.
func (e *Entry) LoadTree(_ context.Context, id blob.ID) (*snapshot.Tree, error) {
	b, ok := e.Trees[id]
	if !ok {
		return nil, fmt.Errorf("tree %s: not in the parent cache: %w", id.Short(), blob.ErrNotFound)
	}
	t, err := snapshot.DecodeTree(b)
	if err != nil {
		return nil, fmt.Errorf("tree %s in the parent cache: %w", id.Short(), err)
	}
	return t, nil
}

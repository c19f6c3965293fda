package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/kalaja/kalaja/internal/atomicfile"
)

// usageVersion is the version of the usage file's format.
const usageVersion = 1

// hostUsage is what one host has stored through the server.
type hostUsage struct {
	// Bytes and Objects count the objects the host created (the first
	// writer of a name; refused writes do not count).
	Bytes   int64 `json:"bytes"`
	Objects int64 `json:"objects"`
	// LastSnapshot is the server's time when the host last stored a
	// snapshot object.
	LastSnapshot time.Time `json:"last_snapshot,omitzero"`
}

// usage keeps per-host counters for quotas and metrics, in a JSON file
// rewritten (atomically) after every object a host stores:
// {"version":1,"hosts":{"HOST":{"bytes":N,"objects":N,"last_snapshot":T}}}.
// Bytes reserved by uploads in progress count against the quota but are
// not persisted.
type usage struct {
	path string // empty: not persisted

	mu       sync.Mutex
	hosts    map[string]*hostUsage
	reserved map[string]int64
}

type usageFile struct {
	Version int                   `json:"version"`
	Hosts   map[string]*hostUsage `json:"hosts"`
}

// loadUsage reads the usage file at path; a missing file, or an empty
// path, starts from zero.
func loadUsage(path string) (*usage, error) {
	u := &usage{path: path, hosts: map[string]*hostUsage{}, reserved: map[string]int64{}}
	if path == "" {
		return u, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return u, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read usage: %w", err)
	}
	var f usageFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("read usage file %s: %w", path, err)
	}
	if f.Version != usageVersion {
		return nil, fmt.Errorf("read usage file %s: version %d, want %d", path, f.Version, usageVersion)
	}
	for h, hu := range f.Hosts {
		if hu != nil && CheckHost(h) == nil {
			u.hosts[h] = hu
		}
	}
	return u, nil
}

// reserve sets n bytes aside for host unless that takes its stored and
// reserved bytes over quota (0: no quota). Every successful reserve must
// be followed by commit or release with the same n.
func (u *usage) reserve(host string, n, quota int64) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	var used int64
	if hu := u.hosts[host]; hu != nil {
		used = hu.Bytes
	}
	if quota > 0 && used+u.reserved[host]+n > quota {
		return false
	}
	u.reserved[host] += n
	return true
}

// release gives back bytes reserved for an object that was not stored.
func (u *usage) release(host string, n int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.drop(host, n)
}

func (u *usage) drop(host string, n int64) {
	if u.reserved[host] -= n; u.reserved[host] == 0 {
		delete(u.reserved, host)
	}
}

// commit counts a stored object of n reserved bytes for host, and its
// time if it is a snapshot, then persists the counters. It returns the
// host's new counters.
func (u *usage) commit(host string, n int64, snapshot time.Time) (hostUsage, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.drop(host, n)
	hu := u.hosts[host]
	if hu == nil {
		hu = &hostUsage{}
		u.hosts[host] = hu
	}
	hu.Bytes += n
	hu.Objects++
	if !snapshot.IsZero() {
		hu.LastSnapshot = snapshot
	}
	if u.path == "" {
		return *hu, nil
	}
	b, err := json.Marshal(usageFile{Version: usageVersion, Hosts: u.hosts})
	if err != nil {
		return *hu, err
	}
	if err := atomicfile.Write(u.path, b, 0o600); err != nil {
		return *hu, fmt.Errorf("write usage: %w", err)
	}
	return *hu, nil
}

// all returns a copy of every host's counters.
func (u *usage) all() map[string]hostUsage {
	u.mu.Lock()
	defer u.mu.Unlock()
	m := make(map[string]hostUsage, len(u.hosts))
	for h, hu := range u.hosts {
		m[h] = *hu
	}
	return m
}

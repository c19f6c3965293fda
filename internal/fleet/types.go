// Package fleet is the vault's view of its hosts: heartbeats, silence,
// alerts, snapshots and storage (issue 19, owned by v-fleet).
//
// This file is a stand-in with the types of the shared contract only, so
// that the dashboard builds before the package lands; the real package
// replaces it.
package fleet

import "time"

// WatcherState is what the vault knows of a host's watcher.
type WatcherState string

// The watcher states.
const (
	Watching WatcherState = "watching" // heartbeats arrive
	Silent   WatcherState = "silent"   // no heartbeat for 3 intervals
	Never    WatcherState = "never"    // no heartbeat ever
)

// Host is one host as the vault sees it.
type Host struct {
	Name          string
	Watcher       WatcherState
	LastHeartbeat time.Time // zero if never
	SilentSince   time.Time // zero unless silent
	Interval      time.Duration
	Watching      []string
	Version       string // the watcher's version, from its last heartbeat
	Alerts24h     int
	LastSnapshot  *SnapshotInfo  // nil if none
	Overdue       bool           // last snapshot older than the server's --overdue, or none
	Snapshots     []SnapshotInfo // newest first
}

// SnapshotInfo is a snapshot as the ledger records it.
type SnapshotInfo struct {
	ID      string
	Time    time.Time // the record's time (client's claim)
	Size    int64     // the snapshot object's size
	Health  string    // "clean", "suspect", or "" (unknown)
	Reasons []string  // signal names
}

// Alert is an alert a host's watcher sent.
type Alert struct {
	Host     string
	Received time.Time // server clock
	Claimed  time.Time // the alert's own time (the host's claim)
	PID      int
	Process  string
	Signals  []string
	Paths    []string // files touched
	ID       string   // sha256 of the kept bytes = the ledger record's id
}

// Storage is the repository's size and its trend.
type Storage struct {
	Bytes        int64
	Objects      int64
	GrowthPerDay int64     // bytes
	Free         int64     // bytes, -1 unknown
	FullBy       time.Time // zero if unknown
}

// LedgerStatus is the state of the repository's ledger.
type LedgerStatus struct {
	Size           int64     // records
	Checkpoint     int64     // size of the newest signed checkpoint
	CheckpointTime time.Time // the store's stamp of that checkpoint (zero if unknown)
	Witnesses      []Witness
	LastVerify     Verify
}

// Witness is a witness's latest co-signature.
type Witness struct {
	Name string
	Size int64
	Age  time.Duration
}

// Verify is the result of the server's last verification of the ledger.
type Verify struct {
	Time     time.Time // zero: none yet
	OK       bool
	Problems int
	Error    string // why verify could not run, if it could not
}

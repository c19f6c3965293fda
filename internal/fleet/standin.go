// Package fleet is the vault's view of its hosts (docs/design.md, issue 19).
//
// This file is a stand-in for the package helper v-fleet writes: the types
// of the shared contract (VAULT.md), so that the server's fleet metrics
// compile and are tested against them. It is replaced by v-fleet's package.
package fleet

import "time"

// WatcherState is a host's watcher as the vault sees it: "watching",
// "silent" or "never".
type WatcherState string

// Host is one host of the fleet.
type Host struct {
	Name          string
	Watcher       WatcherState // "watching", "silent", "never"
	LastHeartbeat time.Time    // zero if never
	SilentSince   time.Time    // zero unless silent
	Interval      time.Duration
	Watching      []string
	Alerts24h     int
	// AlertsTotal counts the alerts received from the host since the
	// vault's state was created; it never decreases (a Prometheus counter).
	AlertsTotal  int
	LastSnapshot *SnapshotInfo  // nil if none
	Overdue      bool           // last snapshot older than the server's --overdue (default 26h), or none
	Snapshots    []SnapshotInfo // newest first (from ledger snapshot records of this host)
}

// SnapshotInfo is a snapshot as its ledger record describes it.
type SnapshotInfo struct {
	ID      string
	Time    time.Time // the record's time (client's claim)
	Size    int64     // the snapshot object's size (from the record)
	Health  string    // "clean", "suspect", or "" (record v1: unknown)
	Reasons []string  // signal names
}

// Alert is an alert a host sent.
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

// Storage is the repository's size and its growth.
type Storage struct {
	Bytes        int64
	Objects      int64
	GrowthPerDay int64     // bytes
	Free         int64     // bytes, -1 unknown
	FullBy       time.Time // zero if unknown
}

package detect

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Signal names one kind of evidence. The set is closed: Config.Validate
// rejects weights for names not listed here.
type Signal string

// The signals, documented in docs/design.md ("Watcher (detector version 1)").
// Damage signals count on their own; boosters (SimilarityLost,
// NewHighEntropy, RansomNote) count only once the same actor has damage.
const (
	Canary         Signal = "canary"           // a canary file was written, truncated, renamed or deleted
	RawDisk        Signal = "raw_disk"         // a block device was written to directly
	Entropy        Signal = "entropy"          // content turned high-entropy and unrecognisable
	Partial        Signal = "partial"          // some sampled blocks turned high-entropy, others are unchanged (intermittent encryption)
	TypeLost       Signal = "type_lost"        // the file's format (magic, or what its name promises) is gone
	Encoded        Signal = "encoded"          // content turned into base64/hex text (low-entropy encoding of ciphertext)
	Zeroed         Signal = "zeroed"           // non-empty content overwritten with zeros
	Truncated      Signal = "truncate"         // an older non-empty file cut to (almost) nothing
	Deleted        Signal = "delete"           // an older file deleted
	RenamedExt     Signal = "rename_ext"       // renamed to an unknown extension
	SimilarityLost Signal = "similarity_lost"  // booster: no sampled block of the old content survived
	NewHighEntropy Signal = "new_high_entropy" // booster: a new file with high-entropy unrecognisable content
	RansomNote     Signal = "ransom_note"      // booster: the same new small text file in many folders
	BackupTamper   Signal = "backup_tamper"    // a file Kalaja keeps on the host (repository, state, keys) was written, renamed or deleted by another program
)

// Signals lists every signal in documentation order.
var Signals = []Signal{Canary, RawDisk, Entropy, Partial, TypeLost, Encoded, Zeroed,
	Truncated, Deleted, RenamedExt, SimilarityLost, NewHighEntropy, RansomNote, BackupTamper}

// booster reports whether s only counts for an actor that already has damage.
func booster(s Signal) bool {
	return s == SimilarityLost || s == NewHighEntropy || s == RansomNote
}

// immediate reports whether s is exempt from the per-file cap (one hit is
// meant to alert on its own).
func immediate(s Signal) bool { return s == Canary || s == RawDisk || s == BackupTamper }

// Config is the detector's scoring. The zero value is not useful; start from
// DefaultConfig.
type Config struct {
	// Threshold is the score at which a process tree alerts.
	Threshold float64 `json:"threshold"`
	// UserThreshold is the score at which the process trees of one user,
	// summed, alert (cooperating processes the tree does not tie together).
	UserThreshold float64 `json:"user_threshold"`
	// FileCap caps what one file adds to a score (canary and raw_disk
	// excepted), so one odd file never alerts alone.
	FileCap float64 `json:"file_cap"`
	// Window is how long evidence counts.
	Window time.Duration `json:"window"`
	// FreshAge: deleting or truncating a file created less than FreshAge
	// ago (by any process the watcher saw) is churn, not damage.
	FreshAge time.Duration `json:"fresh_age"`
	// NoteDirs is in how many folders the same new small text file must
	// appear to count as a ransom note.
	NoteDirs int `json:"note_dirs"`
	// Cooldown is how long after an alert the same actor does not alert
	// again; its evidence keeps adding up meanwhile, so the next alert
	// covers all of it (a mass deletion not stopped gives one alert every
	// Cooldown, not one per few files).
	Cooldown time.Duration `json:"cooldown"`
	// Weights is the score each signal adds per file.
	Weights map[Signal]float64 `json:"weights"`
}

// DefaultConfig returns the documented defaults (docs/design.md).
func DefaultConfig() Config {
	return Config{
		Threshold:     10,
		UserThreshold: 20,
		FileCap:       9,
		Window:        10 * time.Minute,
		FreshAge:      30 * time.Second,
		NoteDirs:      3,
		Cooldown:      10 * time.Second,
		Weights: map[Signal]float64{
			Canary:         10,
			RawDisk:        10,
			Entropy:        4,
			Partial:        4,
			TypeLost:       3,
			Encoded:        5,
			Zeroed:         5,
			Truncated:      3.4,
			Deleted:        2.5,
			RenamedExt:     2,
			SimilarityLost: 1,
			NewHighEntropy: 1,
			RansomNote:     4,
			BackupTamper:   10,
		},
	}
}

// Validate reports the first problem with c: non-positive thresholds or
// window, negative weights, or weights for unknown signals.
func (c Config) Validate() error {
	if c.Threshold <= 0 || c.UserThreshold <= 0 {
		return errors.New("detect: thresholds must be positive")
	}
	if c.FileCap <= 0 {
		return errors.New("detect: file cap must be positive")
	}
	if c.Window <= 0 {
		return errors.New("detect: window must be positive")
	}
	if c.FreshAge < 0 || c.Cooldown < 0 {
		return errors.New("detect: fresh age and cooldown must not be negative")
	}
	if c.NoteDirs < 2 {
		return errors.New("detect: note_dirs must be at least 2")
	}
	for _, s := range slices.Sorted(maps.Keys(c.Weights)) {
		if !slices.Contains(Signals, s) {
			return fmt.Errorf("detect: unknown signal %q (known: %v)", s, Signals)
		}
		if w := c.Weights[s]; w < 0 {
			return fmt.Errorf("detect: weight of %s is negative (%g)", s, w)
		}
	}
	return nil
}

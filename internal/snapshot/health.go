package snapshot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/kalaja/kalaja/internal/blob"
)

// HealthVersion is the version of the health record, checked on decode.
const HealthVersion = 1

// Bounds of a health record, checked on decode, so that a hostile tree
// cannot blow a snapshot up.
const (
	MaxReasons       = 8  // one per signal
	MaxKinds         = 16 // the kind table has fewer
	MaxNewExtensions = 10 // the largest new extensions, by files
	MaxNotes         = 10 // the largest notes, by folders
)

// Status is a snapshot's verdict.
type Status string

// Verdicts. A snapshot without a health record has neither.
const (
	Clean   Status = "clean"
	Suspect Status = "suspect"
)

// Signal names one of the measures a verdict is judged on.
type Signal string

// Signals, in the order reasons are listed.
const (
	DamagedFiles Signal = "damaged_files" // changed files that lost their format, turned high-entropy, were zeroed or truncated
	DamagedBytes Signal = "damaged_bytes" // their sizes before
	DeletedFiles Signal = "deleted_files" // deleted files, when at least half of the parent's (version-control stores aside)
	NewExtension Signal = "new_extension" // files with the most common new extension, in at least two folders
	RansomNotes  Signal = "ransom_notes"  // folders with the most common note
)

// Signals lists every signal in order.
var Signals = []Signal{DamagedFiles, DamagedBytes, DeletedFiles, NewExtension, RansomNotes}

// Health is a snapshot's health: the verdict of its backup, judged during
// the backup against the parent snapshot and the host's earlier clean
// snapshots (docs/design.md, "Snapshot health"). It is stored inside the
// encrypted snapshot and may hold file names (Stats.Notes); Verdict is the
// part that holds none.
type Health struct {
	Version int      `json:"version"`
	Status  Status   `json:"status"`
	Reasons []Reason `json:"reasons,omitempty"` // the signals that passed their thresholds, in the order of Signals
	Stats   Stats    `json:"stats"`
}

// Reason is one signal that passed its threshold: Value >= Threshold.
type Reason struct {
	Signal    Signal `json:"signal"`
	Value     int64  `json:"value"`
	Threshold int64  `json:"threshold"`
}

// String describes the reason in a sentence without names.
func (r Reason) String() string {
	switch r.Signal {
	case DamagedFiles:
		return fmt.Sprintf("%d files lost their format, turned high-entropy, were zeroed or truncated (threshold %d)", r.Value, r.Threshold)
	case DamagedBytes:
		return fmt.Sprintf("%s of files lost their format, turned high-entropy, were zeroed or truncated (threshold %s)", mib(r.Value), mib(r.Threshold))
	case DeletedFiles:
		return fmt.Sprintf("%d files deleted, half or more of the parent's (threshold %d)", r.Value, r.Threshold)
	case NewExtension:
		return fmt.Sprintf("%d files renamed to or written with a new extension in several folders (threshold %d)", r.Value, r.Threshold)
	case RansomNotes:
		return fmt.Sprintf("the same new small file in %d folders whose files changed (threshold %d)", r.Value, r.Threshold)
	}
	return fmt.Sprintf("%s %d (threshold %d)", r.Signal, r.Value, r.Threshold)
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// Verdict is what of a health record may be shown outside the encrypted
// snapshot (in the plaintext ledger): the status and the reasons, counts
// and thresholds only, no names or extensions.
type Verdict struct {
	Status  Status   `json:"status"`
	Reasons []Reason `json:"reasons,omitempty"`
}

// Verdict returns h's verdict; a nil h gives the zero Verdict (no status).
func (h *Health) Verdict() Verdict {
	if h == nil {
		return Verdict{}
	}
	return Verdict{Status: h.Status, Reasons: h.Reasons}
}

// String is "clean" or "SUSPECT: " and the reasons joined by "; ".
func (v Verdict) String() string {
	if v.Status != Suspect {
		return string(v.Status)
	}
	var s []string
	for _, r := range v.Reasons {
		s = append(s, r.String())
	}
	return "SUSPECT: " + strings.Join(s, "; ")
}

// Counts are numbers of files (or their bytes) by what happened to them
// between the parent snapshot and this one. A renamed file whose content
// also changed counts as renamed.
type Counts struct {
	Added     int64 `json:"added,omitempty"`
	Changed   int64 `json:"changed,omitempty"`
	Deleted   int64 `json:"deleted,omitempty"`
	Renamed   int64 `json:"renamed,omitempty"`
	Unchanged int64 `json:"unchanged,omitempty"`
}

// KindStats are the counts of one kind of file (document, image, ...).
type KindStats struct {
	Files   Counts `json:"files"`
	Bytes   Counts `json:"bytes"`
	Damaged int64  `json:"damaged,omitempty"`
}

// Stats are the measures a verdict is judged on.
type Stats struct {
	Files Counts               `json:"files"`
	Bytes Counts               `json:"bytes"`
	Kinds map[string]KindStats `json:"kinds,omitempty"`
	// ParentFiles counts the files of the parent snapshot (0 without one)
	// and Deletions the files deleted since, both outside version-control
	// stores (.git, .hg, .svn, .bzr), whose maintenance deletes files by
	// the thousand: deletions are judged on these.
	ParentFiles int64 `json:"parent_files"`
	Deletions   int64 `json:"deletions"`
	// Of the changed files (renamed ones included): how many lost their
	// format, turned high-entropy, were zeroed or truncated; Damaged counts
	// each file once, DamagedBytes sums their sizes before.
	LostFormat   int64 `json:"lost_format"`
	HighEntropy  int64 `json:"high_entropy"`
	Zeroed       int64 `json:"zeroed"`
	Truncated    int64 `json:"truncated"`
	Damaged      int64 `json:"damaged"`
	DamagedBytes int64 `json:"damaged_bytes"`
	// NewExtensions are the largest (by files) extensions new to their
	// folders that files were renamed to, or that new files of opaque
	// content got in folders whose files went away; at most
	// MaxNewExtensions.
	NewExtensions []Extension `json:"new_extensions,omitempty"`
	// Notes are the largest (by folders) candidate ransom notes, at most
	// MaxNotes.
	Notes    []Note   `json:"notes,omitempty"`
	Baseline Baseline `json:"baseline"`
}

// Extension is an extension files newly have.
type Extension struct {
	Ext   string `json:"ext"`
	Files int64  `json:"files"`
	Dirs  int64  `json:"dirs"`
}

// Note is a small new file written, under the same name and with the
// same content, into several folders whose files changed.
type Note struct {
	Name Name  `json:"name"`
	Size int64 `json:"size"`
	Dirs int64 `json:"dirs"`
}

// Baseline says what the verdict was judged against: how many of the
// host's earlier clean snapshots, and the thresholds that made.
type Baseline struct {
	Snapshots  int        `json:"snapshots"`
	Thresholds Thresholds `json:"thresholds"`
}

// Thresholds are the values at or above which each signal makes a
// snapshot suspect.
type Thresholds struct {
	DamagedFiles int64 `json:"damaged_files"`
	DamagedBytes int64 `json:"damaged_bytes"`
	DeletedFiles int64 `json:"deleted_files"`
	NewExtension int64 `json:"new_extension"`
	RansomNotes  int64 `json:"ransom_notes"`
}

// UnmarshalJSON decodes a health record strictly: unknown fields are
// errors. Decode checks the version and the values.
func (h *Health) UnmarshalJSON(b []byte) error {
	type plain Health
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var p plain
	if err := d.Decode(&p); err != nil {
		return err
	}
	*h = Health(p)
	return nil
}

// Validate checks a verdict as decoded: a known status, reasons only and
// always with suspect, at most MaxReasons, each of a known signal with
// counts that are not negative. Errors name what is wrong.
func (v Verdict) Validate() error {
	switch v.Status {
	case Clean:
		if len(v.Reasons) > 0 {
			return fmt.Errorf("clean with %d reasons", len(v.Reasons))
		}
	case Suspect:
		if len(v.Reasons) == 0 {
			return fmt.Errorf("suspect without a reason")
		}
	default:
		return fmt.Errorf("status %q", v.Status)
	}
	if len(v.Reasons) > MaxReasons {
		return fmt.Errorf("%d reasons", len(v.Reasons))
	}
	for _, r := range v.Reasons {
		known := false
		for _, s := range Signals {
			known = known || r.Signal == s
		}
		if !known || r.Value < 0 || r.Threshold < 0 {
			return fmt.Errorf("reason %+v", r)
		}
	}
	return nil
}

// validate checks a decoded health record of the current version.
func (h *Health) validate() error {
	if err := h.Verdict().Validate(); err != nil {
		return err
	}
	st := &h.Stats
	if len(st.Kinds) > MaxKinds || len(st.NewExtensions) > MaxNewExtensions || len(st.Notes) > MaxNotes {
		return fmt.Errorf("lists too long: %d kinds, %d extensions, %d notes", len(st.Kinds), len(st.NewExtensions), len(st.Notes))
	}
	nums := []int64{st.ParentFiles, st.Deletions, st.LostFormat, st.HighEntropy, st.Zeroed, st.Truncated, st.Damaged, st.DamagedBytes,
		int64(st.Baseline.Snapshots), st.Baseline.Thresholds.DamagedFiles, st.Baseline.Thresholds.DamagedBytes,
		st.Baseline.Thresholds.DeletedFiles, st.Baseline.Thresholds.NewExtension, st.Baseline.Thresholds.RansomNotes}
	nums = st.Files.append(st.Bytes.append(nums))
	for k, ks := range st.Kinds {
		if !token(k, 16) {
			return fmt.Errorf("kind %q", k)
		}
		nums = ks.Files.append(ks.Bytes.append(append(nums, ks.Damaged)))
	}
	for _, e := range st.NewExtensions {
		if !token(e.Ext, 64) {
			return fmt.Errorf("extension %q", e.Ext)
		}
		nums = append(nums, e.Files, e.Dirs)
	}
	for _, n := range st.Notes {
		if n.Name == "" || len(n.Name) > 255 || strings.ContainsAny(string(n.Name), "/\x00") {
			return fmt.Errorf("note name %q", n.Name)
		}
		nums = append(nums, n.Size, n.Dirs)
	}
	for _, n := range nums {
		if n < 0 {
			return fmt.Errorf("negative count %d", n)
		}
	}
	return nil
}

func (c Counts) append(nums []int64) []int64 {
	return append(nums, c.Added, c.Changed, c.Deleted, c.Renamed, c.Unchanged)
}

// checkHealth checks the health record of a decoded snapshot of version v.
func checkHealth(h *Health, v int) error {
	if h == nil {
		return nil
	}
	if v < 2 {
		return fmt.Errorf("decode snapshot: health in a version %d snapshot: %w", v, blob.ErrCorrupt)
	}
	if h.Version != HealthVersion {
		return fmt.Errorf("snapshot health version %d: %w", h.Version, blob.ErrUnsupported)
	}
	if err := h.validate(); err != nil {
		return fmt.Errorf("decode snapshot: health: %v: %w", err, blob.ErrCorrupt)
	}
	return nil
}

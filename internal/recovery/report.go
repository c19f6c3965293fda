package recovery

import (
	"errors"

	"github.com/kalaja/kalaja/internal/blob"
)

// What a repair does to an entry (Action.Do).
const (
	DoRestore    = "restore"      // create the snapshot's entry where there is none
	DoReplace    = "replace"      // move the live entry into the quarantine, restore the snapshot's
	DoQuarantine = "quarantine"   // move the live entry into the quarantine
	DoMetadata   = "fix metadata" // set owner, mode, extended attributes and times
)

// Why a repair acts on an entry (Action.Reason).
const (
	Missing         = "missing"
	ContentDiffers  = "content differs"
	NotInSnapshot   = "not in the snapshot"
	KindDiffers     = "kind differs"
	MetadataDiffers = "metadata differs"
	TargetDiffers   = "target differs"    // of a symlink, or the number of a device
	LinkDiffers     = "hard link differs" // a name that should share its file with another does not
)

// MaxListed bounds the actions and the problems a Report lists; beyond it
// they are only counted.
const MaxListed = 1000

// ErrVerify is wrapped by the error reported for an entry that, read back
// after the repair wrote it, does not match the snapshot.
var ErrVerify = errors.New("written entry does not match the snapshot")

// Action is one thing a repair did, or in a dry run would do: Path (live,
// absolute) is acted on as Do says, for Reason.
type Action struct {
	Path   string `json:"path"`
	Do     string `json:"action"`
	Reason string `json:"reason"`
}

// Problem is one error reported during a repair.
type Problem struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

// Report is what a repair did, or in a dry run would do. Counts are of
// entries (a folder counts once) unless they say files or bytes; the
// regular files restored include those whose content could not be written
// in full (each is also in Errors).
type Report struct {
	Snapshot   blob.ID  `json:"snapshot"`
	Paths      []string `json:"paths"`
	Quarantine string   `json:"quarantine"`
	DryRun     bool     `json:"dry_run,omitempty"`

	FilesRestored int   `json:"files_restored"` // regular files written
	BytesRestored int64 `json:"bytes_restored"`
	LinksRestored int   `json:"links_restored"` // hard links made to a file restored or kept
	OtherRestored int   `json:"other_restored"` // symlinks, FIFOs, sockets and devices made
	DirsCreated   int   `json:"dirs_created"`
	// MetadataRepaired counts entries whose content was right and whose
	// owner, mode, extended attributes or times were set.
	MetadataRepaired int `json:"metadata_repaired"`
	// Quarantined counts live entries moved into the quarantine;
	// QuarantinedFiles and QuarantinedBytes the regular files among and
	// below them.
	Quarantined      int   `json:"quarantined"`
	QuarantinedFiles int   `json:"quarantined_files"`
	QuarantinedBytes int64 `json:"quarantined_bytes"`
	// Unchanged counts entries left as they were; UnchangedBytes the size
	// of the regular files among them.
	Unchanged      int   `json:"unchanged"`
	UnchangedBytes int64 `json:"unchanged_bytes"`
	// ContentChecked counts live files read to compare their content,
	// because their metadata could not show them unchanged.
	ContentChecked int `json:"content_checked"`
	// Verified counts entries written (files, links, folders, special
	// files, repaired metadata) that were read back and match the
	// snapshot; VerifyFailed those that do not (each is also in Errors).
	Verified     int `json:"verified"`
	VerifyFailed int `json:"verify_failed"`

	Errors int `json:"errors"`
	// Problems lists the first MaxListed errors.
	Problems []Problem `json:"problems,omitempty"`
	// Actions lists the first MaxListed actions, in the order of the walk;
	// ActionsOmitted counts the rest.
	Actions        []Action `json:"actions,omitempty"`
	ActionsOmitted int      `json:"actions_omitted,omitempty"`
	Seconds        float64  `json:"seconds"`
}

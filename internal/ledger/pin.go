package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/atomicfile"
	"github.com/kalaja/kalaja/internal/blob"
)

// Pin file versions: version 2 is a pin that also holds the
// administrator's key, and a pin is version 2 exactly when it does.
const (
	PinVersion      = 1
	PinAdminVersion = 2
)

// Pin is what a client or a witness remembers of one log between runs: the
// log's public key, pinned at first use, the newest checkpoint it has
// checked (a witness: co-signed), as its signed note, and the
// administrator's public key once it was given (removal.go).
type Pin struct {
	LogKey     string
	Checkpoint []byte // the signed note; nil before the first
	AdminKey   string // a note verifier key; "" until given
}

// pinFile is a pin's encoding: one JSON object.
type pinFile struct {
	Version    int    `json:"version"`
	LogKey     string `json:"log_key"`
	Checkpoint string `json:"checkpoint,omitempty"`
	AdminKey   string `json:"admin_key,omitempty"`
}

// PinFile is a pin kept in a file, shared by every process of a host that
// uses the same log: updates are read-modify-write under an exclusive lock
// (flock on a sibling ".lock" file, released by the kernel however the
// process ends) and replace the file atomically, so two processes never
// lose each other's update and a crash leaves the old pin or the new one.
type PinFile string

// Load returns the pin, and false if the file does not exist. A file of an
// unknown version, or that does not decode, is an error naming the file.
// Files written before the version field existed are read as version 1.
func (f PinFile) Load() (Pin, bool, error) {
	b, err := os.ReadFile(string(f))
	if errors.Is(err, fs.ErrNotExist) {
		return Pin{}, false, nil
	}
	if err != nil {
		return Pin{}, false, fmt.Errorf("ledger pin: %w", err)
	}
	var pf pinFile
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&pf); err != nil {
		return Pin{}, false, fmt.Errorf("ledger pin %s: %v: %w", f, err, blob.ErrCorrupt)
	}
	if pf.Version != 0 && pf.Version != PinVersion && pf.Version != PinAdminVersion {
		return Pin{}, false, fmt.Errorf("ledger pin %s: version %d: %w", f, pf.Version, blob.ErrUnsupported)
	}
	if (pf.Version == PinAdminVersion) != (pf.AdminKey != "") {
		return Pin{}, false, fmt.Errorf("ledger pin %s: version %d with%s an administrator's key: %w", f, pf.Version, map[bool]string{true: "", false: "out"}[pf.AdminKey != ""], blob.ErrCorrupt)
	}
	if pf.LogKey == "" {
		return Pin{}, false, fmt.Errorf("ledger pin %s: no log key: %w", f, blob.ErrCorrupt)
	}
	p := Pin{LogKey: pf.LogKey, AdminKey: pf.AdminKey}
	if pf.Checkpoint != "" {
		p.Checkpoint = []byte(pf.Checkpoint)
	}
	return p, true, nil
}

// Update replaces the pin with what change makes of the current one (ok is
// false when there is none yet), holding the lock from the read to the
// write. If change returns an error, nothing is written and Update returns
// it. It returns the pin as stored afterwards.
func (f PinFile) Update(change func(cur Pin, ok bool) (Pin, error)) (Pin, error) {
	dir := filepath.Dir(string(f))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Pin{}, fmt.Errorf("ledger pin: %w", err)
	}
	lock, err := os.OpenFile(string(f)+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return Pin{}, fmt.Errorf("ledger pin: %w", err)
	}
	defer func() { _ = lock.Close() }() // nothing is written to it; closing releases the lock
	if err := flock(lock); err != nil {
		return Pin{}, fmt.Errorf("ledger pin: lock %s: %w", lock.Name(), err)
	}
	cur, ok, err := f.Load()
	if err != nil {
		return Pin{}, err
	}
	next, err := change(cur, ok)
	if err != nil {
		return Pin{}, err
	}
	if ok && next.LogKey == cur.LogKey && bytes.Equal(next.Checkpoint, cur.Checkpoint) && next.AdminKey == cur.AdminKey {
		return cur, nil
	}
	pf := pinFile{Version: PinVersion, LogKey: next.LogKey, Checkpoint: string(next.Checkpoint), AdminKey: next.AdminKey}
	if next.AdminKey != "" {
		pf.Version = PinAdminVersion
	}
	b, err := json.MarshalIndent(pf, "", "  ")
	if err != nil {
		return Pin{}, fmt.Errorf("ledger pin: %w", err)
	}
	if err := atomicfile.Write(string(f), append(b, '\n'), 0o600); err != nil {
		return Pin{}, fmt.Errorf("ledger pin: %w", err)
	}
	return next, nil
}

// flock takes an exclusive lock on f, waiting for it; EINTR retries.
func flock(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			return err
		}
	}
}

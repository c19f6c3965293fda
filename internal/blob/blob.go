// Package blob defines the values every other package uses to name things in
// a Kalaja repository: content IDs, blob types, and the small closed set of
// sentinel errors that callers test with errors.Is.
package blob

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// Sentinel errors. Every error that reports one of these conditions wraps the
// matching sentinel, so callers (and the CLI's exit-code mapping) test them
// with errors.Is.
var (
	// ErrNotFound reports that a named object or blob does not exist.
	ErrNotFound = errors.New("not found")
	// ErrCorrupt reports bytes that do not decode, decrypt or hash as they must.
	ErrCorrupt = errors.New("corrupt")
	// ErrWrongPassword reports that no key file opens with the given password.
	ErrWrongPassword = errors.New("wrong password or no key found")
	// ErrUnsupported reports a format version this build cannot read.
	ErrUnsupported = errors.New("unsupported format version")
	// ErrTampered reports evidence that the repository or its ledger was
	// changed after it was written and signed: a logged object removed or
	// altered, a checkpoint not signed by the pinned key, a rolled-back or
	// forked log. Honest failures (a crash, an interrupted backup) never
	// produce it; bit rot that changes logged bytes does.
	ErrTampered = errors.New("tampered with")
)

// IDSize is the length of an ID in bytes.
const IDSize = sha256.Size

// ID names an object or a blob. Objects (files in a repository) are named by
// the SHA-256 of their stored bytes; blobs (chunks and trees inside packs) by
// a keyed hash of their plaintext under the repository's ID key: BLAKE3 in
// keyed mode in repository format version 2, HMAC-SHA256 in version 1 (the
// repository's config says which; docs/design.md, section 6). All are 32
// bytes; the zero ID means "none". ID is comparable and usable as a map key.
type ID [IDSize]byte

// Hash returns the SHA-256 of data, the ID of an object stored as data.
func Hash(data []byte) ID { return sha256.Sum256(data) }

// ParseID decodes a 64-digit lowercase or uppercase hexadecimal ID.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*IDSize {
		return id, fmt.Errorf("invalid ID %q: want %d hex digits", s, 2*IDSize)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("invalid ID %q: %w", s, err)
	}
	return id, nil
}

// String returns the ID as 64 lowercase hexadecimal digits.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 8 hexadecimal digits, for display.
func (id ID) Short() string { return hex.EncodeToString(id[:4]) }

// IsZero reports whether id is the zero ID.
func (id ID) IsZero() bool { return id == ID{} }

// MarshalText encodes the ID as hexadecimal.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText decodes a hexadecimal ID.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// Type says what a blob holds.
type Type uint8

// Blob types. The numeric values are part of the on-disk format.
const (
	Data Type = 1 // a chunk of file content
	Tree Type = 2 // an encoded directory listing
)

// Valid reports whether t is a known blob type.
func (t Type) Valid() bool { return t == Data || t == Tree }

// String returns "data", "tree" or "type(N)".
func (t Type) String() string {
	switch t {
	case Data:
		return "data"
	case Tree:
		return "tree"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Handle names a blob: its type and ID.
type Handle struct {
	Type Type
	ID   ID
}

// String returns "type:shortid".
func (h Handle) String() string { return h.Type.String() + ":" + h.ID.Short() }

package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrInvalidHandle reports a handle that names no object a repository
// holds: an unknown type, or a name outside its type's rule (Handle.Check).
// Every store refuses such a handle before touching storage, and the
// server answers it with 404 (unknown type) or 400 (invalid name).
var ErrInvalidHandle = errors.New("invalid object handle")

// Check returns nil if t is an object type: Config or one of Listable.
// Otherwise it returns an error wrapping ErrInvalidHandle.
func (t FileType) Check() error {
	if t == Config || slices.Contains(Listable, t) {
		return nil
	}
	return fmt.Errorf("object type %q: %w", t, ErrInvalidHandle)
}

// CheckListable returns nil if t is one of Listable, a type of named
// objects that Lister.List enumerates. Otherwise (Config too) it returns
// an error wrapping ErrInvalidHandle.
func (t FileType) CheckListable() error {
	if slices.Contains(Listable, t) {
		return nil
	}
	return fmt.Errorf("%q is not a type of named objects: %w", t, ErrInvalidHandle)
}

// ContentAddressed reports whether objects of type t are named by the
// SHA-256 of their bytes in lowercase hex, which the server checks as it
// stores them: Packs, Index, Snapshots and LedgerRemovals. (Key files are
// named by their hash too, but are authenticated by their AEAD instead.)
func (t FileType) ContentAddressed() bool {
	return t == Packs || t == Index || t == Snapshots || t == LedgerRemovals
}

// Check returns nil if h names an object a repository may hold, by the one
// rule of names every store and the server apply (docs/design.md, "Layout
// in a store"):
//
//	config                Name is empty
//	keys, data, index,
//	snapshots             64 lowercase hex digits
//	ledger/entries,
//	ledger/checkpoints    20 decimal digits
//	ledger/tiles          L-N or L-N.pW: L one decimal digit, N a decimal
//	                      of 1 to 19 digits, W of 1 to 3 digits, neither
//	                      with a leading zero (N may be 0)
//	ledger/witness        20 decimal digits, '.', 8 lowercase hex digits
//	ledger/keys           signer or verifier
//	ledger/removals       64 lowercase hex digits
//
// Every name is ASCII, so none holds a path separator, a dot-dot, a
// control character or a look-alike of another name. Otherwise Check
// returns an error wrapping ErrInvalidHandle.
func (h Handle) Check() error {
	if err := h.Type.Check(); err != nil {
		return err
	}
	var ok bool
	switch h.Type {
	case Config:
		ok = h.Name == ""
	case Keys, Packs, Index, Snapshots, LedgerRemovals:
		ok = isHex(h.Name, 64)
	case LedgerEntries, LedgerCheckpoints:
		ok = isDigits(h.Name, 20)
	case LedgerTiles:
		ok = isTileName(h.Name)
	case LedgerWitness:
		size, key, found := strings.Cut(h.Name, ".")
		ok = found && isDigits(size, 20) && isHex(key, 8)
	case LedgerKeys:
		ok = h.Name == "signer" || h.Name == "verifier"
	}
	if !ok {
		return fmt.Errorf("object name %q for type %s: %w", h.Name, h.Type, ErrInvalidHandle)
	}
	return nil
}

// isHex reports whether s is n lowercase hex digits.
func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// isDigits reports whether s is n decimal digits.
func isDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isDecimal reports whether s is a decimal of 1 to max digits without a
// leading zero ("0" itself is one).
func isDecimal(s string, max int) bool {
	if len(s) == 0 || len(s) > max || len(s) > 1 && s[0] == '0' {
		return false
	}
	return isDigits(s, len(s))
}

// isTileName reports whether s is L-N or L-N.pW.
func isTileName(s string) bool {
	base, width, partial := strings.Cut(s, ".p")
	l, n, ok := strings.Cut(base, "-")
	if !ok || !isDigits(l, 1) || !isDecimal(n, 19) {
		return false
	}
	return !partial || isDecimal(width, 3) && width != "0"
}

// Package snapshot defines the records a backup leaves: snapshots, trees and
// the nodes in them, with their JSON encodings, and how users name snapshots
// ("latest", ID prefixes). It is pure: no I/O.
package snapshot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kalaja/kalaja/internal/blob"
)

// QuarantineName is the name of the folders in which recovery keeps what
// it takes away from a live tree. Backups leave every entry so named out,
// at every level, so that a quarantine never enters a snapshot (nor makes
// the next one look like an attack), and recovery leaves such entries
// alone.
const QuarantineName = ".kalaja-quarantine"

// TreeVersion is the version of the tree encoding that Encode writes.
// DecodeTree reads it and version 1, which lacks the fingerprint fields
// (Node.Format and Node.High).
const TreeVersion = 2

// Kind is the file type of a node.
type Kind string

// Node kinds. Only files have content; only directories have subtrees.
const (
	File    Kind = "file"
	Dir     Kind = "dir"
	Symlink Kind = "symlink"
	Dev     Kind = "dev"     // block device
	CharDev Kind = "chardev" // character device
	FIFO    Kind = "fifo"
	Socket  Kind = "socket"
)

func (k Kind) valid() bool {
	switch k {
	case File, Dir, Symlink, Dev, CharDev, FIFO, Socket:
		return true
	}
	return false
}

// Name is a byte string from the file system (a file name, link target or
// attribute name). It encodes as a JSON string when it is valid UTF-8 and as
// {"base64": "..."} otherwise, so no byte is ever lost.
type Name string

// MarshalJSON implements json.Marshaler. A name of printable ASCII that
// json.Marshal would not escape is written directly, in the same bytes.
func (n Name) MarshalJSON() ([]byte, error) {
	if plainJSON(string(n)) {
		b := make([]byte, 0, len(n)+2)
		return append(append(append(b, '"'), n...), '"'), nil
	}
	if utf8.ValidString(string(n)) {
		return json.Marshal(string(n))
	}
	return json.Marshal(map[string][]byte{"base64": []byte(n)})
}

// plainJSON reports whether json.Marshal writes s as it is between quotes:
// printable ASCII without the characters it escapes (", \, <, >, &).
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// UnmarshalJSON implements json.Unmarshaler. A string without escapes that
// is valid UTF-8, as almost every name is, is taken as it stands: the
// decoder has checked b's syntax, and json.Unmarshal would return the same
// bytes at many times the cost.
func (n *Name) UnmarshalJSON(b []byte) error {
	if len(b) >= 2 && b[0] == '"' && bytes.IndexByte(b, '\\') < 0 && utf8.Valid(b[1:len(b)-1]) {
		*n = Name(b[1 : len(b)-1])
		return nil
	}
	if len(b) > 0 && b[0] == '{' {
		var m struct {
			B64 []byte `json:"base64"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		*n = Name(m.B64)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*n = Name(s)
	return nil
}

// Xattr is one extended attribute.
type Xattr struct {
	Name  Name   `json:"name"`
	Value []byte `json:"value"`
}

// Time is a file time: seconds since the Unix epoch and nanoseconds, the
// range of the kernel's timespec (an int64 of nanoseconds would end in 2262).
// It encodes as the JSON array [seconds, nanoseconds].
type Time struct {
	Sec  int64
	Nsec int64 // 0..999999999
}

// MarshalJSON implements json.Marshaler: the bytes json.Marshal writes for
// [2]int64{Sec, Nsec}, without its reflection.
func (t Time) MarshalJSON() ([]byte, error) {
	b := strconv.AppendInt([]byte{'['}, t.Sec, 10)
	b = strconv.AppendInt(append(b, ','), t.Nsec, 10)
	return append(b, ']'), nil
}

// UnmarshalJSON implements json.Unmarshaler. The usual "[s,ns]" is parsed
// directly; anything else (spaces, other forms) through json.Unmarshal.
// Exactly two integers are accepted.
func (t *Time) UnmarshalJSON(b []byte) error {
	var a [2]int64
	if !parseTimeArray(b, &a) {
		var s []int64
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if len(s) != 2 { // into an array, json.Unmarshal would pad or drop
			return fmt.Errorf("time %s: want [seconds, nanoseconds]", b)
		}
		a = [2]int64(s)
	}
	if a[1] < 0 || a[1] > 999999999 {
		return fmt.Errorf("nanoseconds %d out of range", a[1])
	}
	t.Sec, t.Nsec = a[0], a[1]
	return nil
}

// parseTimeArray parses b as "[s,ns]" of two decimal int64s without
// spaces, reporting whether it could.
func parseTimeArray(b []byte, a *[2]int64) bool {
	if len(b) < 5 || b[0] != '[' || b[len(b)-1] != ']' {
		return false
	}
	sec, nsec, ok := bytes.Cut(b[1:len(b)-1], []byte{','})
	if !ok {
		return false
	}
	var err error
	if a[0], err = strconv.ParseInt(string(sec), 10, 64); err != nil {
		return false
	}
	a[1], err = strconv.ParseInt(string(nsec), 10, 64)
	return err == nil
}

// Node is one entry of a directory. Inode, Device and Links serve change
// detection and hard links.
type Node struct {
	Name    Name      `json:"name"`
	Kind    Kind      `json:"type"`
	Mode    uint32    `json:"mode"` // permission bits with setuid, setgid, sticky (07777)
	UID     uint32    `json:"uid"`
	GID     uint32    `json:"gid"`
	Size    uint64    `json:"size,omitempty"`
	MTime   Time      `json:"mtime"`
	CTime   *Time     `json:"ctime,omitempty"` // files only
	Inode   uint64    `json:"inode,omitempty"`
	Device  uint64    `json:"device,omitempty"` // st_dev of the file system holding the node
	Links   uint64    `json:"links,omitempty"`
	Rdev    uint64    `json:"rdev,omitempty"` // device number of device nodes
	Target  Name      `json:"target,omitempty"`
	Xattrs  []Xattr   `json:"xattrs,omitempty"`
	Content []blob.ID `json:"content,omitempty"`
	// Format is the fingerprint of a file's content: the type of its first
	// block (up to 4096 bytes) as internal/detect judges it ("pdf", "zip",
	// "text", "encoded", "zero", "empty", ..., "unknown" for content it
	// does not recognise). "" means not sampled: a version 1 tree, or a
	// file whose content no backup has read since.
	Format string `json:"format,omitempty"`
	// High is set when the first block has high entropy (looks random).
	High    bool     `json:"high,omitempty"`
	Subtree *blob.ID `json:"subtree,omitempty"`
}

// Tree is a directory listing, nodes sorted by name (byte order), names
// unique and valid as single path elements.
type Tree struct {
	Nodes []Node `json:"nodes"`
}

type treeJSON struct {
	Version int    `json:"v"`
	Nodes   []Node `json:"nodes"`
}

// Sort orders the nodes by name.
func (t *Tree) Sort() {
	slices.SortFunc(t.Nodes, func(a, b Node) int { return strings.Compare(string(a.Name), string(b.Name)) })
}

// Find returns the node called name, or nil.
func (t *Tree) Find(name string) *Node {
	i, ok := slices.BinarySearchFunc(t.Nodes, name, func(n Node, name string) int { return strings.Compare(string(n.Name), name) })
	if !ok {
		return nil
	}
	return &t.Nodes[i]
}

// Encode returns the tree's canonical encoding. Call Sort first.
func (t *Tree) Encode() ([]byte, error) {
	return json.Marshal(treeJSON{TreeVersion, t.Nodes})
}

// DecodeTree parses and validates a tree encoding. Anything that a restore
// could be tricked by (names with a slash, "." or "..", duplicates, disorder,
// content on a directory) is an error wrapping blob.ErrCorrupt.
func DecodeTree(b []byte) (*Tree, error) {
	var tj treeJSON
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&tj); err != nil {
		return nil, fmt.Errorf("decode tree: %v: %w", err, blob.ErrCorrupt)
	}
	if tj.Version != 1 && tj.Version != TreeVersion {
		return nil, fmt.Errorf("tree version %d: %w", tj.Version, blob.ErrUnsupported)
	}
	t := &Tree{Nodes: tj.Nodes}
	for i, n := range t.Nodes {
		if err := n.validate(); err != nil {
			return nil, fmt.Errorf("decode tree: node %d: %v: %w", i, err, blob.ErrCorrupt)
		}
		if tj.Version == 1 && (n.Format != "" || n.High) {
			return nil, fmt.Errorf("decode tree: node %d: a fingerprint in a version 1 tree: %w", i, blob.ErrCorrupt)
		}
		if i > 0 && string(t.Nodes[i-1].Name) >= string(n.Name) {
			return nil, fmt.Errorf("decode tree: nodes not sorted or duplicate at %q: %w", n.Name, blob.ErrCorrupt)
		}
	}
	return t, nil
}

func (n *Node) validate() error {
	switch {
	case n.Name == "" || n.Name == "." || n.Name == ".." || strings.ContainsAny(string(n.Name), "/\x00"):
		return fmt.Errorf("invalid name %q", n.Name)
	case !n.Kind.valid():
		return fmt.Errorf("%q: unknown type %q", n.Name, n.Kind)
	case n.Mode&^0o7777 != 0:
		return fmt.Errorf("%q: mode %o has bits beyond 07777", n.Name, n.Mode)
	case n.Kind == Dir && n.Subtree == nil:
		return fmt.Errorf("%q: directory without subtree", n.Name)
	case n.Kind != Dir && n.Subtree != nil:
		return fmt.Errorf("%q: %s with a subtree", n.Name, n.Kind)
	case n.Kind != File && len(n.Content) > 0:
		return fmt.Errorf("%q: %s with content", n.Name, n.Kind)
	case n.Kind != Symlink && n.Target != "":
		return fmt.Errorf("%q: %s with a link target", n.Name, n.Kind)
	case n.Kind != File && (n.Format != "" || n.High):
		return fmt.Errorf("%q: %s with a fingerprint", n.Name, n.Kind)
	case n.High && n.Format == "":
		return fmt.Errorf("%q: high entropy without a format", n.Name)
	case n.Format != "" && !token(n.Format, 32):
		return fmt.Errorf("%q: invalid format %q", n.Name, n.Format)
	}
	return nil
}

// token reports whether s is 1 to max bytes of lower-case ASCII letters,
// digits, '-' and '_': the shape of a format, kind or extension name.
func token(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

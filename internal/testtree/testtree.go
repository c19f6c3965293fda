// Package testtree builds file trees that exercise every kind of file and
// every piece of metadata a backup must carry, and compares two trees for
// byte- and metadata-identity. It is test support: import it only from
// _test.go files and integration tests.
//
// The usual proof that backup and restore lose nothing is
//
//	if _, err := testtree.Generate(src, testtree.Options{Seed: 1}); err != nil {
//		t.Fatal(err)
//	}
//	// back up src, restore it into dst
//	for _, d := range testtree.Compare(src, dst, testtree.CompareOptions{}) {
//		t.Error(d)
//	}
//
// Generate is deterministic in Options for a given host: two calls with the
// same Options on the same kind of filesystem, by the same user, produce
// trees that Compare reports as identical. Parts the host cannot make
// (device nodes without CAP_MKNOD, ownership changes without root, user.*
// extended attributes where the filesystem refuses them, holes where the
// filesystem does not keep them, a unix socket whose path is too long) are
// left out and named in Manifest.Skipped.
//
// Linux only: the package relies on lstat, mknod, utimensat, and the
// user.* extended attribute namespace.
package testtree

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Kind is the type of a file system object.
type Kind uint8

// The kinds Generate creates and Compare tells apart.
const (
	File Kind = iota + 1
	Dir
	Symlink
	FIFO
	Socket
	CharDevice
	BlockDevice
)

// String returns a lower-case name for k, or "unknown".
func (k Kind) String() string {
	switch k {
	case File:
		return "file"
	case Dir:
		return "dir"
	case Symlink:
		return "symlink"
	case FIFO:
		return "fifo"
	case Socket:
		return "socket"
	case CharDevice:
		return "char device"
	case BlockDevice:
		return "block device"
	}
	return "unknown"
}

// kindOf maps the S_IFMT bits of a stat mode to a Kind; 0 if none matches.
func kindOf(mode uint32) Kind {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return File
	case unix.S_IFDIR:
		return Dir
	case unix.S_IFLNK:
		return Symlink
	case unix.S_IFIFO:
		return FIFO
	case unix.S_IFSOCK:
		return Socket
	case unix.S_IFCHR:
		return CharDevice
	case unix.S_IFBLK:
		return BlockDevice
	}
	return 0
}

// Trait is a set of properties of a manifest entry that tests may want to
// single out.
type Trait uint16

// Traits Generate records. An entry may have several.
const (
	// Large marks a regular file whose (apparent) size is at least 1 MiB.
	Large Trait = 1 << iota
	// Sparse marks a regular file that has holes on this filesystem.
	Sparse
	// HardLink marks one of several names of one inode inside the tree.
	HardLink
	// XAttr marks an entry carrying user.* extended attributes.
	XAttr
	// Owner marks an entry whose uid or gid was changed from the creator's.
	Owner
	// SetID marks an entry with the setuid, setgid or sticky bit.
	SetID
)

// Entry is one object Generate made.
type Entry struct {
	Path   string // relative to the tree root, slash-separated, raw bytes
	Kind   Kind
	Traits Trait
}

// Manifest lists what Generate made.
type Manifest struct {
	// Entries holds every object below the root, sorted by Path.
	Entries []Entry
	// Skipped names, one line per feature, what this host could not make.
	Skipped []string
}

// Paths returns, in Path order, the paths of the entries having every trait
// in t.
func (m Manifest) Paths(t Trait) []string {
	var out []string
	for _, e := range m.Entries {
		if e.Traits&t == t {
			out = append(out, e.Path)
		}
	}
	return out
}

// MakeRemovable adds owner rwx to every directory below and including dir so
// that os.RemoveAll (and so t.TempDir's cleanup) succeeds without root on a
// tree holding read-only directories. Register it with t.Cleanup after
// t.TempDir so that it runs first. It returns the first error met; a dir that
// does not exist is not an error.
func MakeRemovable(dir string) error {
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm()&0o700 == 0o700 {
			return nil
		}
		return os.Chmod(path, info.Mode().Perm()|0o700)
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

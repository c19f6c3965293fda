package testtree

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// CompareOptions chooses the optional checks of Compare. Access times are
// never compared: reading a tree changes them.
type CompareOptions struct {
	// Sparse reports a regular file of at least 64 KiB that is sparse in a
	// (fewer than half its bytes allocated) when b has filled more than half
	// of a's holes.
	Sparse bool
}

// Difference is one way in which tree b differs from tree a.
type Difference struct {
	// Path is relative to the roots, slash-separated, raw bytes.
	Path string
	// What names the property: "missing" (in b), "extra" (in b), "kind",
	// "size", "content", "mode", "uid", "gid", "mtime", "target", "rdev",
	// "xattr", "hardlinks", "sparse", or "error" when Compare could not
	// read something.
	What string
	// A and B render the property in a and in b; empty where absent.
	A, B string
}

// String returns the difference as one line, the path quoted.
func (d Difference) String() string {
	return fmt.Sprintf("%q: %s: a=%s b=%s", d.Path, d.What, d.A, d.B)
}

// Compare walks a and b without following symlinks and returns every
// difference between them, ordered by path and then by property, or nil if
// the trees are identical. The metadata of the roots themselves is not
// compared, only what is below them. Below a missing, extra, or
// differently-kinded directory only that directory is reported. Errors
// reading either tree are reported as differences with What "error".
// Compare only reads; it is safe to run concurrently on the same trees.
func Compare(a, b string, o CompareOptions) []Difference {
	c := comparer{o: o, bufA: make([]byte, 1<<20), bufB: make([]byte, 1<<20)}
	ta, tb := c.scan(a, true), c.scan(b, false)
	if ta == nil || tb == nil {
		return c.diffs
	}
	paths := make([]string, 0, len(ta.stats))
	for p := range ta.stats {
		paths = append(paths, p)
	}
	for p := range tb.stats {
		if _, ok := ta.stats[p]; !ok {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	gone := make(map[string]bool)
	for _, p := range paths {
		if gone[path.Dir(p)] {
			gone[p] = true
			continue
		}
		sa, inA := ta.stats[p]
		sb, inB := tb.stats[p]
		switch {
		case !inB:
			c.add(p, "missing", kindOf(sa.Mode).String(), "")
			gone[p] = true
		case !inA:
			c.add(p, "extra", "", kindOf(sb.Mode).String())
			gone[p] = true
		case kindOf(sa.Mode) != kindOf(sb.Mode):
			c.add(p, "kind", kindOf(sa.Mode).String(), kindOf(sb.Mode).String())
			gone[p] = true
		case p != ".":
			c.entry(p, ta, tb)
		}
	}
	return c.diffs
}

type comparer struct {
	o          CompareOptions
	bufA, bufB []byte
	diffs      []Difference
}

func (c *comparer) add(p, what, a, b string) {
	c.diffs = append(c.diffs, Difference{Path: p, What: what, A: a, B: b})
}

// errorf records an error; side tells which tree it came from.
func (c *comparer) errorf(p string, inA bool, err error) {
	if inA {
		c.add(p, "error", err.Error(), "")
	} else {
		c.add(p, "error", "", err.Error())
	}
}

// tree is the lstat of every object below a root, by relative path.
type tree struct {
	root  string
	stats map[string]*unix.Stat_t
	links map[inode][]string // paths of non-directories with Nlink > 1
}

type inode struct{ dev, ino uint64 }

// scan lstats everything below root, recording errors as differences. It
// returns nil if root itself cannot be read.
func (c *comparer) scan(root string, isA bool) *tree {
	root = filepath.Clean(root)
	t := &tree{root: root, stats: make(map[string]*unix.Stat_t), links: make(map[inode][]string)}
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		rel := "."
		if p != root {
			rel = filepath.ToSlash(p[len(root)+1:])
		}
		if err != nil {
			c.errorf(rel, isA, err)
			if p == root {
				return err
			}
			return nil
		}
		st := new(unix.Stat_t)
		if err := unix.Lstat(p, st); err != nil {
			c.errorf(rel, isA, &fs.PathError{Op: "lstat", Path: p, Err: err})
			return nil
		}
		t.stats[rel] = st
		if st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Nlink > 1 {
			k := inode{st.Dev, st.Ino}
			t.links[k] = append(t.links[k], rel)
		}
		return nil
	})
	if t.stats["."] == nil {
		return nil
	}
	for _, ps := range t.links {
		slices.Sort(ps)
	}
	return t
}

// entry compares the properties of p, which has the same kind in both trees.
func (c *comparer) entry(p string, ta, tb *tree) {
	a, b := ta.stats[p], tb.stats[p]
	k := kindOf(a.Mode)
	if k != Symlink && a.Mode&0o7777 != b.Mode&0o7777 {
		c.add(p, "mode", fmt.Sprintf("%#o", a.Mode&0o7777), fmt.Sprintf("%#o", b.Mode&0o7777))
	}
	if a.Uid != b.Uid {
		c.add(p, "uid", fmt.Sprint(a.Uid), fmt.Sprint(b.Uid))
	}
	if a.Gid != b.Gid {
		c.add(p, "gid", fmt.Sprint(a.Gid), fmt.Sprint(b.Gid))
	}
	if a.Mtim != b.Mtim {
		c.add(p, "mtime", showTime(a.Mtim), showTime(b.Mtim))
	}
	switch k {
	case File:
		c.file(p, ta, tb)
	case Symlink:
		c.target(p, ta, tb)
	case CharDevice, BlockDevice:
		if a.Rdev != b.Rdev {
			c.add(p, "rdev", showDev(a.Rdev), showDev(b.Rdev))
		}
	}
	c.xattrs(p, ta, tb)
	if k != Dir {
		ga, gb := ta.group(p), tb.group(p)
		if !slices.Equal(ga, gb) {
			c.add(p, "hardlinks", fmt.Sprintf("%q", ga), fmt.Sprintf("%q", gb))
		}
	}
}

// group returns the sorted paths in t sharing the inode of p.
func (t *tree) group(p string) []string {
	st := t.stats[p]
	if g, ok := t.links[inode{st.Dev, st.Ino}]; ok {
		return g
	}
	return []string{p}
}

func (c *comparer) file(p string, ta, tb *tree) {
	a, b := ta.stats[p], tb.stats[p]
	if a.Size != b.Size {
		c.add(p, "size", fmt.Sprint(a.Size), fmt.Sprint(b.Size))
		return
	}
	if c.o.Sparse && a.Size >= 64<<10 {
		allocA, allocB := a.Blocks*512, b.Blocks*512
		if allocA < a.Size/2 && allocB > allocA+(a.Size-allocA)/2 {
			c.add(p, "sparse", fmt.Sprintf("%d of %d bytes allocated", allocA, a.Size), fmt.Sprintf("%d of %d bytes allocated", allocB, b.Size))
		}
	}
	off, ba, bb, err := c.firstDiff(filepath.Join(ta.root, p), filepath.Join(tb.root, p))
	switch {
	case err != nil:
		c.add(p, "error", err.Error(), "")
	case off >= 0:
		c.add(p, "content", showByte(off, ba), showByte(off, bb))
	}
}

// showByte renders the byte b found at off; -1 means end of file.
func showByte(off int64, b int) string {
	if b < 0 {
		return fmt.Sprintf("EOF at offset %d", off)
	}
	return fmt.Sprintf("%#02x at offset %d", b, off)
}

// firstDiff returns the offset of the first byte that differs between the
// files at pa and pb and the two bytes there (-1 for end of file), or offset
// -1 if the files are equal.
func (c *comparer) firstDiff(pa, pb string) (off int64, ba, bb int, err error) {
	fa, err := openNoFollow(pa)
	if err != nil {
		return 0, 0, 0, err
	}
	defer func() { _ = fa.Close() }() // read only
	fb, err := openNoFollow(pb)
	if err != nil {
		return 0, 0, 0, err
	}
	defer func() { _ = fb.Close() }() // read only
	for {
		na, errA := io.ReadFull(fa, c.bufA)
		nb, errB := io.ReadFull(fb, c.bufB)
		if !bytes.Equal(c.bufA[:na], c.bufB[:nb]) {
			i := 0
			for i < na && i < nb && c.bufA[i] == c.bufB[i] {
				i++
			}
			return off + int64(i), at(c.bufA[:na], i), at(c.bufB[:nb], i), nil
		}
		off += int64(na)
		if err := readErr(errA); err != nil {
			return 0, 0, 0, fmt.Errorf("read %s: %w", pa, err)
		}
		if err := readErr(errB); err != nil {
			return 0, 0, 0, fmt.Errorf("read %s: %w", pb, err)
		}
		if errA != nil { // equal short reads: both files ended
			return -1, 0, 0, nil
		}
	}
}

// at returns b[i], or -1 past the end of b.
func at(b []byte, i int) int {
	if i < len(b) {
		return int(b[i])
	}
	return -1
}

func openNoFollow(p string) (*os.File, error) {
	return os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
}

// readErr drops the ends io.ReadFull reports for a short final read.
func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	return err
}

func (c *comparer) target(p string, ta, tb *tree) {
	la, errA := os.Readlink(filepath.Join(ta.root, p))
	lb, errB := os.Readlink(filepath.Join(tb.root, p))
	switch {
	case errA != nil:
		c.errorf(p, true, errA)
	case errB != nil:
		c.errorf(p, false, errB)
	case la != lb:
		c.add(p, "target", fmt.Sprintf("%q", la), fmt.Sprintf("%q", lb))
	}
}

func (c *comparer) xattrs(p string, ta, tb *tree) {
	xa, errA := UserXattrs(filepath.Join(ta.root, p))
	xb, errB := UserXattrs(filepath.Join(tb.root, p))
	if errA != nil {
		c.errorf(p, true, errA)
		return
	}
	if errB != nil {
		c.errorf(p, false, errB)
		return
	}
	names := make([]string, 0, len(xa)+len(xb))
	for n := range xa {
		names = append(names, n)
	}
	for n := range xb {
		if _, ok := xa[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		va, inA := xa[n]
		vb, inB := xb[n]
		if inA != inB || va != vb {
			c.add(p, "xattr", showXattr(n, va, inA), showXattr(n, vb, inB))
		}
	}
}

// UserXattrs returns the user.* extended attributes of p by name, not
// following a symlink: nil if it has none. A filesystem without xattrs has
// none.
func UserXattrs(p string) (map[string]string, error) {
	names, err := xattrCall(func(b []byte) (int, error) { return unix.Llistxattr(p, b) })
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listxattr %s: %w", p, err)
	}
	var out map[string]string
	for n := range strings.SplitSeq(string(names), "\x00") {
		if !strings.HasPrefix(n, "user.") {
			continue
		}
		v, err := xattrCall(func(b []byte) (int, error) { return unix.Lgetxattr(p, n, b) })
		if errors.Is(err, unix.ENODATA) {
			continue // removed since the list was read
		}
		if err != nil {
			return nil, fmt.Errorf("getxattr %s %s: %w", p, n, err)
		}
		if out == nil {
			out = make(map[string]string)
		}
		out[n] = string(v)
	}
	return out, nil
}

// xattrCall runs a size-query-then-fetch xattr call, retrying if the value
// grows in between.
func xattrCall(call func([]byte) (int, error)) ([]byte, error) {
	for {
		n, err := call(nil)
		if err != nil || n == 0 {
			return nil, err
		}
		b := make([]byte, n)
		n, err = call(b)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return b[:n], nil
	}
}

func showXattr(name, v string, present bool) string {
	if !present {
		return name + " absent"
	}
	if len(v) > 64 {
		return fmt.Sprintf("%s=%q... (%d bytes)", name, v[:64], len(v))
	}
	return fmt.Sprintf("%s=%q", name, v)
}

func showTime(ts unix.Timespec) string {
	return time.Unix(ts.Sec, ts.Nsec).UTC().Format(time.RFC3339Nano)
}

func showDev(rdev uint64) string {
	return fmt.Sprintf("%d:%d", unix.Major(rdev), unix.Minor(rdev))
}

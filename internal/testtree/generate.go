package testtree

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Options chooses what Generate creates.
type Options struct {
	// Seed makes names, content, modes and times deterministic.
	Seed int64
	// Files is the approximate number of regular files; 0 means 200. The
	// fixed feature set (about 125 files) is always made; bulk files make
	// up the rest.
	Files int
	// MaxFileSize caps the size of ordinary regular files; 0 means 3 MiB.
	// A few files have exactly this size or close to it. The sparse files
	// are not capped: one has an apparent size of 64 MiB.
	MaxFileSize int
	// Devices asks for character and block device nodes. They need
	// CAP_MKNOD; without it they are skipped and noted in Manifest.Skipped.
	Devices bool
}

// Generate fills dir, which must exist and be empty, with a tree that
// exercises every file kind and metadata property Compare checks, and
// returns the manifest of what it made. The metadata of dir itself is not
// changed. Generate stops at the first unexpected error and returns it
// wrapped; dir is then left partly filled.
func Generate(dir string, o Options) (Manifest, error) {
	if o.Files <= 0 {
		o.Files = 200
	}
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = 3 << 20
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return Manifest{}, fmt.Errorf("generate: %w", err)
	}
	if len(ents) > 0 {
		return Manifest{}, fmt.Errorf("generate: %s is not empty", dir)
	}
	g := newGenerator(dir, o)
	g.fixed()
	g.bulk()
	g.finishDirs()
	if g.err != nil {
		return Manifest{}, fmt.Errorf("generate: %w", g.err)
	}
	slices.SortFunc(g.m.Entries, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	return g.m, nil
}

// generator carries the state of one Generate call. Its methods do nothing
// once err is set, so that the layout code reads as a plain list.
type generator struct {
	root    string
	o       Options
	rng     *rand.Rand
	bytes   *rand.ChaCha8
	isRoot  bool
	noXattr bool
	m       Manifest
	index   map[string]int // path -> position in m.Entries
	dirs    []pending
	err     error
}

// pending is a directory whose metadata is applied after all its content
// exists, because adding entries changes a directory's mtime.
type pending struct {
	rel string
	m   meta
}

// meta is what Generate sets on an object after creating it.
type meta struct {
	perm     uint32 // permission bits including setuid, setgid, sticky
	uid, gid int    // -1 leaves the creator's
	mtime    time.Time
	xattrs   []xattr
}

type xattr struct {
	name  string
	value []byte
}

func newGenerator(dir string, o Options) *generator {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(o.Seed))
	copy(seed[8:], "kalaja testtree content")
	return &generator{
		root:   dir,
		o:      o,
		rng:    rand.New(rand.NewPCG(uint64(o.Seed), 0x6b616c616a61)),
		bytes:  rand.NewChaCha8(seed),
		isRoot: os.Geteuid() == 0,
		index:  make(map[string]int),
	}
}

func (g *generator) path(rel string) string { return filepath.Join(g.root, rel) }

func (g *generator) fail(op, rel string, err error) {
	if g.err == nil && err != nil {
		g.err = fmt.Errorf("%s %q: %w", op, rel, err)
	}
}

// skip notes once that a feature could not be made on this host.
func (g *generator) skip(note string) {
	if !slices.Contains(g.m.Skipped, note) {
		g.m.Skipped = append(g.m.Skipped, note)
	}
}

// meta returns perm with a random mtime between 2001 and 2025 and the
// creator's ownership.
func (g *generator) meta(perm uint32) meta {
	return meta{perm: perm, uid: -1, gid: -1, mtime: g.randTime()}
}

func (g *generator) randTime() time.Time {
	return time.Unix(1_000_000_000+g.rng.Int64N(750_000_000), g.rng.Int64N(1e9))
}

func (g *generator) add(rel string, k Kind, t Trait) {
	g.index[rel] = len(g.m.Entries)
	g.m.Entries = append(g.m.Entries, Entry{Path: rel, Kind: k, Traits: t})
}

// dir creates rel; its metadata is applied by finishDirs.
func (g *generator) dir(rel string, m meta) {
	if g.err != nil {
		return
	}
	if err := os.Mkdir(g.path(rel), 0o700); err != nil {
		g.fail("mkdir", rel, err)
		return
	}
	g.add(rel, Dir, 0)
	g.dirs = append(g.dirs, pending{rel, m})
}

// finishDirs applies directory metadata children first, so that no later
// step changes a directory's mtime and read-only directories are closed last.
func (g *generator) finishDirs() {
	depth := func(p pending) int { return strings.Count(p.rel, "/") }
	slices.SortStableFunc(g.dirs, func(a, b pending) int { return depth(b) - depth(a) })
	for _, d := range g.dirs {
		t := g.apply(d.rel, Dir, d.m)
		g.m.Entries[g.index[d.rel]].Traits |= t
	}
}

// file creates rel holding data.
func (g *generator) file(rel string, data []byte, m meta) {
	g.sparse(rel, int64(len(data)), []extent{{0, data}}, m)
}

// extent is data at an offset of a sparse file.
type extent struct {
	off  int64
	data []byte
}

// sparse creates rel with apparent size size by truncating it first and then
// writing the extents, leaving holes elsewhere.
func (g *generator) sparse(rel string, size int64, exts []extent, m meta) {
	if g.err != nil {
		return
	}
	p := g.path(rel)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		g.fail("create", rel, err)
		return
	}
	if len(exts) != 1 || exts[0].off != 0 || int64(len(exts[0].data)) != size {
		err = f.Truncate(size)
	}
	for _, e := range exts {
		if err == nil && len(e.data) > 0 {
			_, err = f.WriteAt(e.data, e.off)
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		g.fail("write", rel, err)
		return
	}
	t := g.apply(rel, File, m)
	if size >= 1<<20 {
		t |= Large
	}
	if len(exts) != 1 || int64(len(exts[0].data)) != size {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			g.fail("stat", rel, err)
			return
		}
		if st.Blocks*512 < size/2 {
			t |= Sparse
		} else {
			g.skip("sparse: the filesystem did not keep holes")
		}
	}
	g.add(rel, File, t)
}

// link makes rel another name of the inode at existing; both entries get the
// HardLink trait.
func (g *generator) link(existing, rel string) {
	if g.err != nil {
		return
	}
	if err := os.Link(g.path(existing), g.path(rel)); err != nil {
		g.fail("link", rel, err)
		return
	}
	e := &g.m.Entries[g.index[existing]]
	e.Traits |= HardLink
	g.add(rel, e.Kind, e.Traits)
}

// symlink creates rel pointing at target. m.perm is ignored: Linux symlinks
// are always 0777.
func (g *generator) symlink(target, rel string, m meta) {
	if g.err != nil {
		return
	}
	if err := os.Symlink(target, g.path(rel)); err != nil {
		g.fail("symlink", rel, err)
		return
	}
	g.add(rel, Symlink, g.apply(rel, Symlink, m))
}

// fifo creates a named pipe at rel.
func (g *generator) fifo(rel string, m meta) {
	if g.err != nil {
		return
	}
	if err := unix.Mkfifo(g.path(rel), 0o600); err != nil {
		g.fail("mkfifo", rel, err)
		return
	}
	g.add(rel, FIFO, g.apply(rel, FIFO, m))
}

// device creates a device node of kind k; EPERM skips it.
func (g *generator) device(rel string, k Kind, major, minor uint32, m meta) {
	if g.err != nil {
		return
	}
	mode := uint32(unix.S_IFCHR)
	if k == BlockDevice {
		mode = unix.S_IFBLK
	}
	err := unix.Mknod(g.path(rel), mode|0o600, int(unix.Mkdev(major, minor)))
	if errors.Is(err, unix.EPERM) {
		g.skip("devices: mknod: " + err.Error())
		return
	}
	if err != nil {
		g.fail("mknod", rel, err)
		return
	}
	g.add(rel, k, g.apply(rel, k, m))
}

// socket binds a unix socket at rel and closes it, which leaves the socket
// file behind. A path longer than sun_path allows is reached through
// /proc/self/fd; if that fails too the socket is skipped.
func (g *generator) socket(rel string, m meta) {
	if g.err != nil {
		return
	}
	p := g.path(rel)
	if len(p) >= len(unix.RawSockaddrUnix{}.Path) {
		d, err := os.Open(filepath.Dir(p))
		if err != nil {
			g.fail("open", filepath.Dir(rel), err)
			return
		}
		defer func() { _ = d.Close() }() // a folder, read only
		p = "/proc/self/fd/" + strconv.Itoa(int(d.Fd())) + "/" + filepath.Base(p)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		g.fail("socket", rel, err)
		return
	}
	err = unix.Bind(fd, &unix.SockaddrUnix{Name: p})
	unix.Close(fd)
	if err != nil {
		g.skip("socket: bind: " + err.Error())
		return
	}
	g.add(rel, Socket, g.apply(rel, Socket, m))
}

// apply sets xattrs, ownership, mode and times on rel in that order: chown
// clears setuid and setgid, and user.* xattrs need write permission. It
// returns the traits that took effect.
func (g *generator) apply(rel string, k Kind, m meta) Trait {
	if g.err != nil {
		return 0
	}
	p := g.path(rel)
	var t Trait
	if len(m.xattrs) > 0 && g.setXattrs(rel, m.xattrs) {
		t |= XAttr
	}
	if (m.uid >= 0 || m.gid >= 0) && g.chown(rel, m.uid, m.gid) {
		t |= Owner
	}
	if k != Symlink {
		if err := unix.Chmod(p, m.perm); err != nil {
			g.fail("chmod", rel, err)
		}
		if m.perm&0o7000 != 0 {
			t |= SetID
		}
	}
	ts := []unix.Timespec{timespec(m.mtime.Add(24 * time.Hour)), timespec(m.mtime)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		g.fail("utimes", rel, err)
	}
	return t
}

func (g *generator) setXattrs(rel string, xs []xattr) bool {
	if g.noXattr {
		return false
	}
	for _, x := range xs {
		err := unix.Lsetxattr(g.path(rel), x.name, x.value, 0)
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
			g.noXattr = true
			g.skip("xattrs: " + err.Error())
			return false
		}
		if err != nil {
			g.fail("setxattr", rel, err)
			return false
		}
	}
	return true
}

func (g *generator) chown(rel string, uid, gid int) bool {
	if !g.isRoot {
		g.skip("owners: not running as root")
		return false
	}
	err := unix.Lchown(g.path(rel), uid, gid)
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) {
		g.skip(fmt.Sprintf("owners: chown %d:%d: %v", uid, gid, err))
		return false
	}
	if err != nil {
		g.fail("chown", rel, err)
		return false
	}
	return true
}

// timespec converts t without passing through int64 nanoseconds, which
// overflow after 2262.
func timespec(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

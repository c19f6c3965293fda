package testtree

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// The fixed part of the tree. Each top-level directory holds one family of
// cases; the order of calls fixes the order of random draws, so it must not
// depend on the host.

func (g *generator) fixed() {
	g.content()
	g.sizes()
	g.sparseFiles()
	g.names()
	g.deep()
	g.empties()
	g.links()
	g.hardlinks()
	g.special()
	g.perms()
	g.owners()
	g.xattrFiles()
	g.times()
}

// content holds files of each character, large ones spanning many chunks,
// and exact and near duplicates for deduplication.
func (g *generator) content() {
	size := g.o.MaxFileSize
	g.dir("content", g.meta(0o755))
	big := g.random(size)
	g.file("content/large-random.bin", big, g.meta(0o644))
	g.file("content/large-random-copy.bin", big, g.meta(0o644))
	near := slices.Clone(big)
	if len(near) > 0 {
		near[len(near)/2] ^= 0xff
	}
	g.file("content/large-random-one-byte-changed.bin", near, g.meta(0o644))
	g.file("content/large-text.txt", g.text(size*3/4), g.meta(0o644))
	g.file("content/large-pattern.bin", g.pattern(size), g.meta(0o644))
	g.file("content/large-zeros.bin", make([]byte, size), g.meta(0o644))
	g.file("content/text.txt", g.text(5000), g.meta(0o644))
	g.file("content/random.bin", g.random(20000), g.meta(0o644))
	g.file("content/pattern.bin", g.pattern(30000), g.meta(0o644))
	g.file("content/empty", nil, g.meta(0o644))
	g.file("content/empty-too", nil, g.meta(0o600))
	g.file("content/one-byte", []byte("k"), g.meta(0o644))
	g.file("content/one-zero-byte", []byte{0}, g.meta(0o644))
	g.file("content/no-final-newline.txt", []byte("no newline at the end"), g.meta(0o644))
	g.file("content/crlf.txt", []byte("windows\r\nline endings\r\n"), g.meta(0o644))
}

// sizes holds files whose sizes sit on common block and buffer boundaries.
func (g *generator) sizes() {
	g.dir("sizes", g.meta(0o755))
	for _, n := range []int{1, 2, 511, 512, 513, 4095, 4096, 4097, 65535, 65536, 65537, 1<<20 - 1, 1 << 20, 1<<20 + 1} {
		if n <= g.o.MaxFileSize {
			g.file(fmt.Sprintf("sizes/%07d", n), g.anyContent(n), g.meta(0o644))
		}
	}
}

func (g *generator) sparseFiles() {
	g.dir("sparse", g.meta(0o755))
	g.sparse("sparse/64MiB-few-extents", 64<<20, []extent{
		{0, g.random(64 << 10)},
		{5<<20 + 100, g.text(200 << 10)},
		{33<<20 - 4096, g.random(8192)},
		{63 << 20, g.random(64 << 10)},
	}, g.meta(0o644))
	g.sparse("sparse/hole-at-end", 10<<20, []extent{{0, g.random(100 << 10)}}, g.meta(0o644))
	g.sparse("sparse/hole-at-start", 4<<20, []extent{{4<<20 - 4096, g.random(4096)}}, g.meta(0o644))
	g.sparse("sparse/all-hole", 8<<20, nil, g.meta(0o600))
}

// oddNames are file names that break quoting, encoding, normalisation or
// length assumptions. Linux forbids only "/" and NUL.
var oddNames = []string{
	"Përshëndetje botë ç.txt",
	"çelës-Ë-Ç.txt",
	"日本語のファイル名.txt",
	"中文文件名.txt",
	"한국어 파일.txt",
	"emoji 📦🎉.txt",
	"family 👩‍👩‍👧 zwj.txt",
	"flag 🇦🇱.txt",
	"cafe\u0301.txt", // NFD
	"caf\u00e9.txt",  // the same name in NFC: a distinct file on Linux
	"a\u0308\u0301 stacked marks",
	"rtl \u202e txt.exe",
	"nbsp\u00a0space",
	"zero\u200bwidth",
	"with space.txt",
	" leading space",
	"trailing space ",
	"  ",
	"new\nline",
	"tab\there",
	"carriage\rreturn",
	"-leading-dash",
	"--double-dash",
	"back\\slash",
	`double"quote`,
	"single'quote",
	"$dollar `backtick` $(cmd)",
	"*glob?[x]{a,b}",
	"~tilde",
	".hidden",
	"..two-dots",
	"...",
	"percent%20encoded",
	"colon:semi;",
	"<angle>|pipe&amp",
	"\x01\x1b[31mcontrol",
	"del\x7f",
	"Case.txt",
	"case.txt",
	"\xff\xfe-invalid-utf8",
	"\xc3(-bad-continuation",
	"\xed\xa0\x80-surrogate",
	strings.Repeat("n", 251) + ".txt", // 255 bytes
	strings.Repeat("ë", 127) + "x",    // 255 bytes of two-byte runes
}

func (g *generator) names() {
	g.dir("names", g.meta(0o755))
	for _, n := range oddNames {
		g.file("names/"+n, g.text(g.rng.IntN(200)), g.meta(0o644))
	}
	for _, d := range []string{"dir ë ç 日本 🎉", "dir\nwith newline", strings.Repeat("D", 255)} {
		g.dir("names/"+d, g.meta(0o755))
		g.file("names/"+d+"/inside", g.text(50), g.meta(0o644))
	}
}

// deep is 40 directories deep; the relative path of its bottom file is
// longer than 1024 bytes.
func (g *generator) deep() {
	p := "deep"
	g.dir(p, g.meta(0o755))
	for i := range 40 {
		p += fmt.Sprintf("/level-%02d-ë-%s", i, strings.Repeat("d", 16))
		g.dir(p, g.meta(0o755))
	}
	g.file(p+"/bottom.txt", g.text(100), g.meta(0o644))
	g.symlink(strings.Repeat("../", 41)+"content/text.txt", p+"/up-to-content", g.meta(0))
}

func (g *generator) empties() {
	g.dir("empty", g.meta(0o755))
	for _, p := range []string{"empty-nested", "empty-nested/a", "empty-nested/a/b", "empty-nested/a/b/c"} {
		g.dir(p, g.meta(0o755))
	}
	g.dir("empty-nested/a/sibling", g.meta(0o700))
}

func (g *generator) links() {
	g.dir("links", g.meta(0o755))
	for _, l := range []struct{ target, name string }{
		{"../content/text.txt", "relative"},
		{"/etc/passwd", "absolute"},
		{"/nonexistent/kalaja-testtree", "absolute-dangling"},
		{"does/not/exist", "dangling"},
		{"../empty-nested", "to-dir"},
		{"loop-b", "loop-a"},
		{"loop-a", "loop-b"},
		{"self", "self"},
		{".", "dot"},
		{strings.Repeat("long-segment/", 80), "long-target"},
		{"\xfe\xff-target", "\xff\xfe-invalid-utf8"},
		{"../names/Përshëndetje botë ç.txt", "unicode-ë-日本"},
		{"../names/new\nline", "target-with-newline"},
	} {
		g.symlink(l.target, "links/"+l.name, g.meta(0))
	}
	old := g.meta(0)
	old.mtime = time.Date(1960, 1, 1, 0, 0, 0, 123456789, time.UTC)
	g.symlink("relative", "links/mtime-1960", old)
	future := g.meta(0)
	future.mtime = time.Date(2100, 1, 1, 0, 0, 0, 1, time.UTC)
	g.symlink("relative", "links/mtime-2100", future)
	owned := g.meta(0)
	owned.uid, owned.gid = 1234, 5678
	g.symlink("relative", "links/owned-1234-5678", owned)
}

// hardlinks holds a group of three names of one inode in different
// directories, a pair of names of an empty file, and a large linked pair.
func (g *generator) hardlinks() {
	for _, d := range []string{"hardlinks", "hardlinks/a", "hardlinks/b", "hardlinks/c", "hardlinks/c/d"} {
		g.dir(d, g.meta(0o755))
	}
	m := g.meta(0o640)
	m.xattrs = []xattr{{"user.kalaja.test", []byte("shared by three names\x00")}}
	g.file("hardlinks/a/one", g.random(10000), m)
	g.link("hardlinks/a/one", "hardlinks/b/two")
	g.link("hardlinks/a/one", "hardlinks/c/d/three")
	g.file("hardlinks/empty-1", nil, g.meta(0o644))
	g.link("hardlinks/empty-1", "hardlinks/a/empty-2")
	g.file("hardlinks/large-1", g.random(g.o.MaxFileSize/2), g.meta(0o644))
	g.link("hardlinks/large-1", "hardlinks/b/large-2")
}

func (g *generator) special() {
	g.dir("special", g.meta(0o755))
	g.fifo("special/fifo", g.meta(0o644))
	g.socket("special/socket", g.meta(0o755))
	if !g.o.Devices {
		return
	}
	g.device("special/char-1-3", CharDevice, 1, 3, g.meta(0o666))
	g.device("special/char-4095-1048575", CharDevice, 4095, 1<<20-1, g.meta(0o600))
	g.device("special/block-7-0", BlockDevice, 7, 0, g.meta(0o660))
	g.device("special/block-259-65537", BlockDevice, 259, 65537, g.meta(0o640))
}

func (g *generator) perms() {
	g.dir("perms", g.meta(0o755))
	for _, p := range []uint32{0o600, 0o644, 0o640, 0o755, 0o444, 0o400, 0o4755, 0o2755, 0o6755, 0o1755} {
		g.file(fmt.Sprintf("perms/mode-%04o", p), g.text(100+g.rng.IntN(900)), g.meta(p))
	}
	unreadable, data := g.meta(0), g.text(100)
	if g.isRoot {
		g.file("perms/mode-0000", data, unreadable)
	}
	g.dir("perms/sticky-1777", g.meta(0o1777))
	g.file("perms/sticky-1777/inside", g.text(100), g.meta(0o644))
	g.dir("perms/setgid-dir-2775", g.meta(0o2775))
	g.file("perms/setgid-dir-2775/inside", g.text(100), g.meta(0o644))
	g.dir("perms/setgid-dir-2775/plain-subdir", g.meta(0o755))
	g.dir("perms/private-0700", g.meta(0o700))
	g.file("perms/private-0700/inside", g.text(100), g.meta(0o600))
	g.dir("perms/readonly-0555", g.meta(0o555))
	g.file("perms/readonly-0555/inside", g.text(100), g.meta(0o444))
	g.dir("perms/readonly-0555/sub", g.meta(0o755))
	g.file("perms/readonly-0555/sub/inside", g.text(100), g.meta(0o644))
	g.dir("perms/readonly-0555/empty-readonly", g.meta(0o555))
}

// owners changes uid and gid; only root can, so elsewhere the files exist
// with the creator's ownership and Manifest.Skipped says so.
func (g *generator) owners() {
	g.dir("owners", g.meta(0o755))
	for _, o := range [][2]int{{1234, 5678}, {0, 5678}, {1234, 0}, {65534, 65534}, {3_000_000_000, 3_000_000_001}} {
		m := g.meta(0o644)
		m.uid, m.gid = o[0], o[1]
		g.file(fmt.Sprintf("owners/%d-%d", o[0], o[1]), g.text(200), m)
	}
	m := g.meta(0o4755)
	m.uid, m.gid = 1234, 5678
	g.file("owners/setuid-1234", g.random(500), m)
	d := g.meta(0o750)
	d.uid, d.gid = 4321, 8765
	g.dir("owners/dir-4321-8765", d)
	f := g.meta(0o600)
	f.uid, f.gid = 4321, 8765
	g.file("owners/dir-4321-8765/inside", g.text(200), f)
}

func (g *generator) xattrFiles() {
	g.dir("xattrs", g.meta(0o755))
	const name = "user.kalaja.test"
	m := g.meta(0o644)
	m.xattrs = []xattr{{name, append([]byte("\x00\x01\x02\xff\xfe kalaja \x00"), g.random(16)...)}}
	g.file("xattrs/binary-value", g.text(300), m)
	m = g.meta(0o644)
	m.xattrs = []xattr{{name, g.random(32)}, {"user.kalaja.big", g.text(2000)}}
	g.file("xattrs/two-attributes", g.text(300), m)
	m = g.meta(0o644)
	m.xattrs = []xattr{{name, []byte{}}}
	g.file("xattrs/empty-value", g.text(300), m)
	m = g.meta(0o444)
	m.xattrs = []xattr{{name, []byte("read-only file")}}
	g.file("xattrs/read-only", g.text(300), m)
	m = g.meta(0o755)
	m.xattrs = []xattr{{name, g.random(24)}}
	g.dir("xattrs/dir", m)
	g.file("xattrs/dir/inside", g.text(300), g.meta(0o644))
	m = g.meta(0o700)
	m.xattrs = []xattr{{name, []byte("empty dir")}}
	g.dir("xattrs/empty-dir", m)
}

// times holds mtimes at the edges of common encodings: before 1970, the
// 32-bit limits, nanosecond fractions, and past the int64-nanosecond range.
func (g *generator) times() {
	d := g.meta(0o755)
	d.mtime = time.Date(1965, 6, 15, 12, 0, 0, 987654321, time.UTC)
	g.dir("times", d)
	for _, s := range []struct {
		name string
		t    time.Time
	}{
		{"1901-12-13-int32-min", time.Unix(-1<<31, 0)},
		{"1960-01-01-with-ns", time.Date(1960, 1, 1, 0, 0, 0, 123456789, time.UTC)},
		{"1969-12-31-minus-1ns", time.Unix(-1, 999999999)},
		{"1970-01-01-epoch", time.Unix(0, 0)},
		{"1970-01-01-plus-1ns", time.Unix(0, 1)},
		{"2020-02-29-whole-second", time.Date(2020, 2, 29, 12, 0, 0, 0, time.UTC)},
		{"2038-01-19-int32-max-plus-1", time.Unix(1<<31, 500)},
		{"2100-01-01-plus-1ns", time.Date(2100, 1, 1, 0, 0, 0, 1, time.UTC)},
		{"2400-01-01-beyond-int64-ns", time.Date(2400, 1, 1, 0, 0, 0, 999999999, time.UTC)},
	} {
		m := g.meta(0o644)
		m.mtime = s.t
		g.file("times/"+s.name, g.text(50), m)
	}
	f := g.meta(0o755)
	f.mtime = time.Date(2100, 12, 31, 23, 59, 59, 999999999, time.UTC)
	g.dir("times/dir-2100", f)
}

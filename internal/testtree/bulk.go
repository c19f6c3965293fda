package testtree

import "strings"

// bulk fills "tree" with random directories and files until the tree holds
// about Options.Files regular files.
func (g *generator) bulk() {
	n := g.o.Files
	for _, e := range g.m.Entries {
		if e.Kind == File {
			n--
		}
	}
	g.dir("tree", g.meta(0o755))
	dirs := []string{"tree"}
	used := make(map[string]bool)
	for range max(3, n/10) {
		parent := dirs[g.rng.IntN(len(dirs))]
		if strings.Count(parent, "/") >= 6 {
			parent = "tree"
		}
		rel := g.bulkName(parent, "", used)
		g.dir(rel, g.bulkMeta([]uint32{0o755, 0o755, 0o755, 0o750, 0o700, 0o775}))
		dirs = append(dirs, rel)
	}
	for range max(n, 0) {
		rel := g.bulkName(dirs[g.rng.IntN(len(dirs))], exts[g.rng.IntN(len(exts))], used)
		data := g.anyContent(g.bulkSize())
		g.file(rel, data, g.bulkMeta([]uint32{0o644, 0o644, 0o644, 0o644, 0o600, 0o640, 0o664, 0o755, 0o444}))
	}
}

var (
	syllables = []string{"ka", "la", "ja", "ba", "ck", "up", "re", "st", "or", "ë", "ç", "sh", "zh", "xh", "dh", "do", "c", "x"}
	flavours  = []string{" ë ç", "-日本語", "-🎉", "-e\u0301", " with space", "-Ω", "\xff"}
	exts      = []string{".txt", ".bin", ".dat", ".go", ".md", ".jpg", ".tar.gz", ""}
)

// bulkName returns an unused path under parent.
func (g *generator) bulkName(parent, ext string, used map[string]bool) string {
	for {
		var b strings.Builder
		for range 1 + g.rng.IntN(4) {
			b.WriteString(syllables[g.rng.IntN(len(syllables))])
		}
		if g.rng.IntN(10) == 0 {
			b.WriteString(flavours[g.rng.IntN(len(flavours))])
		}
		b.WriteString(ext)
		rel := parent + "/" + b.String()
		if !used[rel] {
			used[rel] = true
			return rel
		}
	}
}

// bulkSize returns a file size: mostly small, a few close to MaxFileSize.
func (g *generator) bulkSize() int {
	most := g.o.MaxFileSize
	var n int
	switch r := g.rng.IntN(100); {
	case r < 15:
		n = g.rng.IntN(17)
	case r < 70:
		n = 17 + g.rng.IntN(16<<10)
	case r < 95:
		n = 16<<10 + g.rng.IntN(240<<10)
	default:
		n = most/3 + g.rng.IntN(most-most/3+1)
	}
	return min(n, most)
}

// bulkMeta returns metadata with a mode drawn from perms and, now and then,
// an xattr or a changed owner.
func (g *generator) bulkMeta(perms []uint32) meta {
	m := g.meta(perms[g.rng.IntN(len(perms))])
	if g.rng.IntN(20) == 0 {
		m.xattrs = []xattr{{"user.kalaja.test", g.random(1 + g.rng.IntN(40))}}
	}
	if g.rng.IntN(20) == 0 {
		ids := []int{1234, 1000, 65534, 0}
		m.uid, m.gid = ids[g.rng.IntN(len(ids))], ids[g.rng.IntN(len(ids))]
	}
	return m
}

package testtree

import "bytes"

// random returns n incompressible bytes.
func (g *generator) random(n int) []byte {
	b := make([]byte, n)
	g.bytes.Read(b)
	return b
}

// words feed text; a few are not ASCII so that text is valid UTF-8 with
// multi-byte runes.
var words = []string{
	"the", "backup", "restore", "chunk", "pack", "index", "snapshot", "tree",
	"blob", "ledger", "kalaja", "kështjellë", "çelës", "mbrojtje", "rezervë",
	"of", "and", "to", "a", "in", "is", "that", "for", "it", "with", "as",
	"func", "return", "err", "nil", "if", "package", "import", "struct",
	"データ", "备份", "🔒", "naïve", "Ω", "0", "1", "42", "1970", "2100",
}

// text returns n bytes of line-structured words, compressible the way prose
// and source code are.
func (g *generator) text(n int) []byte {
	var b bytes.Buffer
	b.Grow(n + 32)
	line := 0
	for b.Len() < n {
		w := words[g.rng.IntN(len(words))]
		b.WriteString(w)
		line += len(w) + 1
		if line > 40+g.rng.IntN(60) {
			b.WriteByte('\n')
			line = 0
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

// pattern returns n bytes repeating a short random pattern: highly
// compressible and, for a content-defined chunker, full of identical chunks.
func (g *generator) pattern(n int) []byte {
	p := g.random(1 + g.rng.IntN(64))
	b := bytes.Repeat(p, n/len(p)+1)
	return b[:n]
}

// anyContent returns n bytes of a randomly chosen character: random, text,
// pattern or zeros.
func (g *generator) anyContent(n int) []byte {
	switch r := g.rng.IntN(20); {
	case r < 8:
		return g.random(n)
	case r < 15:
		return g.text(n)
	case r < 19:
		return g.pattern(n)
	default:
		return make([]byte, n)
	}
}

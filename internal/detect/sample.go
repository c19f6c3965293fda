package detect

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"hash/maphash"
	"io"
	"math"
	"sync"
	"unicode/utf8"
)

// BlockSize is the size of one sampled block of a file.
const BlockSize = 4096

// MaxBlocks is how many blocks one sample holds.
const MaxBlocks = 4

// Type is a recognised content format ("zip", "pdf", "text", ...). The
// special values: "" unrecognised, "empty" no content, "zero" only zero
// bytes, "encoded" base64 or hex text.
type Type string

// Special content types.
const (
	Unknown     Type = ""
	EmptyType   Type = "empty"
	ZeroType    Type = "zero"
	TextType    Type = "text"
	EncodedType Type = "encoded"
)

// Block is what a sample keeps of one block: no content, only features.
type Block struct {
	Hash    uint64  // keyed hash of the block's bytes (see blockSeed)
	Entropy float32 // Shannon entropy in bits per byte
	High    bool    // entropy is close to that of random bytes of this length
}

// Sample is the features of a bounded sample of a file's content: its size,
// its type (judged from the first block) and one Block per sampled offset
// (see Offsets). It holds no file content.
type Sample struct {
	Size   int64
	Type   Type
	Blocks []Block
	// Inner is, for a gzip file, the type of the head of its decompressed
	// content (judged as Type is), Unknown when the first block does not
	// decompress or what it holds is unrecognised: gzip magic followed by
	// noise, or compressed ciphertext.
	Inner Type
}

// Offsets returns where to sample a file of size bytes: every block of a
// small file, else the first block, blocks at one and two thirds (aligned
// to BlockSize) and the last whole block. Offsets depend only on size, so
// two samples of the same size compare block by block.
func Offsets(size int64) []int64 {
	if size <= 0 {
		return nil
	}
	if size <= MaxBlocks*BlockSize {
		var offs []int64
		for o := int64(0); o < size; o += BlockSize {
			offs = append(offs, o)
		}
		return offs
	}
	align := func(o int64) int64 { return o / BlockSize * BlockSize }
	offs := []int64{0, align(size / 3), align(size * 2 / 3), align(size - BlockSize)}
	out := offs[:1]
	for _, o := range offs[1:] {
		if o != out[len(out)-1] {
			out = append(out, o)
		}
	}
	return out
}

// Analyze computes the features of blocks read at Offsets(size) from a file
// of size bytes. Blocks may be short or missing (a file that changed while
// it was read); bytes past BlockSize in a block are ignored. It never
// fails: any bytes give a Sample.
func Analyze(size int64, blocks [][]byte) Sample {
	s := Sample{Size: size}
	if size <= 0 {
		s.Type = EmptyType
		return s
	}
	zero := true
	var first []byte // the first block, as judged
	var firstCounts histogram
	for i, b := range blocks {
		if i == MaxBlocks {
			break
		}
		if len(b) > BlockSize {
			b = b[:BlockSize]
		}
		h := countBytes(b)
		e := h.entropy(len(b))
		s.Blocks = append(s.Blocks, Block{Hash: maphash.Bytes(blockSeed, b), Entropy: float32(e), High: isHigh(len(b), e)})
		zero = zero && int(h[0]) == len(b)
		if i == 0 {
			first, firstCounts = b, h
		}
	}
	switch {
	case len(blocks) == 0 || len(blocks[0]) == 0:
		s.Type = Unknown
	case zero:
		s.Type = ZeroType
	default:
		s.Type = typeOf(first, &firstCounts, float64(s.Blocks[0].Entropy))
	}
	if s.Type == "gzip" {
		s.Inner = gunzipType(first)
	}
	return s
}

// gunzipType returns the type of what the start of a gzip file, first,
// decompresses to: Unknown when it does not decompress (a gzip header
// followed by anything else) or holds unrecognised bytes. It decompresses
// at most one block.
func gunzipType(first []byte) Type {
	g := gunzippers.Get().(*gunzipper)
	defer func() {
		g.src.Reset(nil) // the pool must not keep the caller's buffer
		gunzippers.Put(g)
	}()
	g.src.Reset(first)
	if g.zr.Reset(&g.src) != nil {
		return Unknown
	}
	n, err := io.ReadFull(&g.zr, g.head[:])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return Unknown // corrupt, or first cut before the end of a member
	}
	if n == 0 {
		if err == io.EOF && g.zr.Close() == nil {
			return EmptyType
		}
		return Unknown
	}
	head := g.head[:n]
	h := countBytes(head)
	e := h.entropy(n)
	if int(h[0]) == n {
		return ZeroType
	}
	return typeOf(head, &h, float64(float32(e)))
}

// A gunzipper is what gunzipType needs, kept between calls: a gzip reader
// reset for each file keeps its decompressor's 32 KiB window instead of
// allocating one per sampled .gz (a log rotation samples hundreds).
type gunzipper struct {
	src  bytes.Reader
	zr   gzip.Reader
	head [BlockSize]byte
}

var gunzippers = sync.Pool{New: func() any { return new(gunzipper) }}

// Judge returns what Analyze(size, [][]byte{first}) reports of a file's
// first block, its Type and Blocks[0].High, without hashing the block or
// allocating: the fingerprint a backup keeps of every file it reads. Bytes
// past BlockSize are ignored. It never fails.
func Judge(size int64, first []byte) (t Type, high bool) {
	if size <= 0 {
		return EmptyType, false
	}
	if len(first) == 0 {
		return Unknown, false
	}
	if len(first) > BlockSize {
		first = first[:BlockSize]
	}
	h := countBytes(first)
	e := h.entropy(len(first))
	high = isHigh(len(first), e)
	if int(h[0]) == len(first) {
		return ZeroType, high
	}
	// Through float32, as Analyze keeps the entropy.
	return typeOf(first, &h, float64(float32(e))), high
}

// High reports whether any sampled block has high entropy.
func (s *Sample) High() bool {
	for _, b := range s.Blocks {
		if b.High {
			return true
		}
	}
	return false
}

// minJudged is the shortest block whose entropy is judged: shorter blocks
// cannot tell random from text.
const minJudged = 128

// isHigh reports whether n bytes of entropy e look random.
func isHigh(n int, e float64) bool { return n >= minJudged && e >= highEntropy(n) }

// highEntropy is the entropy above which n bytes look random: the expected
// plug-in entropy of n uniform random bytes (8 - 255/(2n ln 2)) less a
// margin of half a bit. Text stays below 6, base64 near 6.
func highEntropy(n int) float64 {
	return 8 - 255/(2*float64(n)*math.Ln2) - 0.5
}

// blockSeed keys block hashes. It is random per process: samples are
// compared only within the process that took them, and someone who knows a
// file's old content cannot make new content that hashes the same and
// passes for an unchanged block.
var blockSeed = maphash.MakeSeed()

// histogram is the count of each byte value in a block.
type histogram [256]uint32

// countBytes counts the bytes of b. Counting in four tables keeps the
// increments of neighbouring bytes independent.
func countBytes(b []byte) histogram {
	var counts [4]histogram
	i := 0
	for ; i+4 <= len(b); i += 4 {
		counts[0][b[i]]++
		counts[1][b[i+1]]++
		counts[2][b[i+2]]++
		counts[3][b[i+3]]++
	}
	for ; i < len(b); i++ {
		counts[0][b[i]]++
	}
	for v := range counts[0] {
		counts[0][v] += counts[1][v] + counts[2][v] + counts[3][v]
	}
	return counts[0]
}

// entropy returns the Shannon entropy in bits per byte of the n bytes
// counted, as log2(n) - sum(c log2 c)/n over the counts c, with c log2 c
// from a table for blocks up to BlockSize.
func (h *histogram) entropy(n int) float64 {
	if n == 0 {
		return 0
	}
	clog := cLog2()
	sum := 0.0
	for _, c := range h {
		switch {
		case c <= 1:
		case int(c) < len(clog):
			sum += clog[c]
		default:
			sum += float64(c) * math.Log2(float64(c))
		}
	}
	return max(math.Log2(float64(n))-sum/float64(n), 0)
}

// cLog2 returns the table of c*log2(c) for c from 0 to BlockSize.
var cLog2 = sync.OnceValue(func() []float64 {
	t := make([]float64, BlockSize+1)
	for c := 2; c < len(t); c++ {
		t[c] = float64(c) * math.Log2(float64(c))
	}
	return t
})

// magic is a format recognised by bytes at an offset.
type magic struct {
	typ Type
	off int
	sig string
}

// magics are the formats the detector recognises. Formats whose content is
// compressed or encrypted by design are here so that their high entropy is
// not taken for damage.
var magics = []magic{
	{"zip", 0, "PK\x03\x04"}, {"zip", 0, "PK\x05\x06"}, {"zip", 0, "PK\x07\x08"},
	{"gzip", 0, "\x1f\x8b"}, {"zstd", 0, "\x28\xb5\x2f\xfd"}, {"xz", 0, "\xfd7zXZ\x00"},
	{"bzip2", 0, "BZh"}, {"7z", 0, "7z\xbc\xaf\x27\x1c"}, {"rar", 0, "Rar!\x1a\x07"},
	{"lz4", 0, "\x04\x22\x4d\x18"}, {"compress", 0, "\x1f\x9d"}, {"cab", 0, "MSCF"},
	{"pdf", 0, "%PDF-"}, {"ole", 0, "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"}, {"rtf", 0, "{\\rtf"},
	{"png", 0, "\x89PNG\r\n\x1a\n"}, {"jpeg", 0, "\xff\xd8\xff"}, {"gif", 0, "GIF8"},
	{"tiff", 0, "II*\x00"}, {"tiff", 0, "MM\x00*"}, {"bmp", 0, "BM"}, {"webp", 8, "WEBP"},
	{"riff", 0, "RIFF"}, {"mp4", 4, "ftyp"}, {"mp3", 0, "ID3"}, {"ogg", 0, "OggS"},
	{"flac", 0, "fLaC"}, {"mkv", 0, "\x1a\x45\xdf\xa3"},
	{"elf", 0, "\x7fELF"}, {"ar", 0, "!<arch>\n"}, {"goobj", 0, "go object "},
	{"wasm", 0, "\x00asm"}, {"class", 0, "\xca\xfe\xba\xbe"}, {"pe", 0, "MZ"},
	{"sqlite", 0, "SQLite format 3\x00"}, {"sqlite-wal", 0, "\x37\x7f\x06\x82"},
	{"sqlite-wal", 0, "\x37\x7f\x06\x83"}, {"sqlite-journal", 0, "\xd9\xd5\x05\xf9\x20\xa1\x63\xd7"},
	{"git-pack", 0, "PACK"}, {"git-idx", 0, "\xfftOc"}, {"git-index", 0, "DIRC"},
	{"tar", 257, "ustar"}, {"pem", 0, "-----BEGIN"}, {"age", 0, "age-encryption.org/"},
	{"openssh", 0, "openssh-key-v1"}, {"utf16", 0, "\xff\xfe"}, {"utf16", 0, "\xfe\xff"},
	{"kalaja", 0, "KALAJA"},
}

// typeOf judges a file's type from its first block b, its byte counts h
// and its entropy.
func typeOf(b []byte, h *histogram, ent float64) Type {
	for _, m := range magics {
		if len(b) >= m.off+len(m.sig) && string(b[m.off:m.off+len(m.sig)]) == m.sig {
			return m.typ
		}
	}
	if len(b) >= 2 && b[0]&0x0f == 8 && b[0]>>4 <= 7 && binary.BigEndian.Uint16(b)%31 == 0 {
		return "zlib"
	}
	if !isText(b, h) {
		return Unknown
	}
	if isEncoded(b, h, ent) {
		return EncodedType
	}
	return TextType
}

// Byte classes, for judging text from byte counts.
const (
	plain      byte = iota // any other byte
	control                // a control character other than a line break, tab or form feed
	newline                // '\n' or '\r'
	hexDigit               // in the alphabets of hex and base64
	base64Only             // in the alphabet of base64 (or base64url) but not hex
)

// classes maps each byte value to its class.
var classes = func() (t [256]byte) {
	for c := range t {
		switch {
		case c == '\n' || c == '\r':
			t[c] = newline
		case c < 0x20 && c != '\t' && c != '\f' || c == 0x7f:
			t[c] = control
		case c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F':
			t[c] = hexDigit
		case c >= 'g' && c <= 'z' || c >= 'G' && c <= 'Z' || c == '+' || c == '/' || c == '-' || c == '_' || c == '=':
			t[c] = base64Only
		}
	}
	return t
}()

// classCounts sums the byte counts h by class.
func classCounts(h *histogram) (n [base64Only + 1]int) {
	for c, k := range h {
		n[classes[c]] += int(k)
	}
	return n
}

// isText reports whether b, counted in h, is UTF-8 text with few control
// characters. A rune cut at the end of the block is allowed.
func isText(b []byte, h *histogram) bool {
	return validUTF8(b) && classCounts(h)[control]*50 <= len(b)
}

// validUTF8 reports whether b is UTF-8, allowing a rune cut at the end.
func validUTF8(b []byte) bool {
	if len(b) <= 3 {
		return utf8.Valid(b)
	}
	// The check of the head stops at a rune's start: a rune of two to
	// four bytes may straddle the last three bytes.
	cut := len(b) - 3
	for cut > 0 && !utf8.RuneStart(b[cut]) {
		cut--
	}
	if !utf8.Valid(b[:cut]) {
		return false
	}
	for i := cut; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return !utf8.FullRune(b[i:]) // only the start of a rune, cut
		}
		i += n
	}
	return true
}

// isEncoded reports whether text b, counted in h, is base64 or hex: at
// least 64 bytes (trailing line breaks and padding aside) of which almost
// all (line breaks aside) are in the encoding's alphabet, with no spaces,
// and dense enough (entropy ent) not to be a repeated letter.
func isEncoded(b []byte, h *histogram, ent float64) bool {
	body := bytes.TrimRight(b, "\r\n=")
	if len(body) < 64 {
		return false
	}
	n := classCounts(h)
	// The trimmed tail holds only line breaks and padding ('=', which
	// counts as base64): take them out of the counts.
	pad := bytes.Count(b[len(body):], []byte("="))
	lines := n[newline] - (len(b) - len(body) - pad)
	hex, b64 := n[hexDigit], n[base64Only]-pad
	other := len(body) - lines - hex - b64
	if other*100 > hex+b64 {
		return false
	}
	if b64 == 0 {
		return ent >= 3.5
	}
	return ent >= 5.0
}

package drill

import (
	"archive/zip"
	"bytes"
	"compress/zlib"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"strings"
)

// vocabulary mixes the English and Albanian words of an administration's
// paperwork, so generated text compresses like real prose.
var vocabulary = strings.Fields(`the of and to in for is on that by with as at from this be
are or report budget ministry citizen office service record permit border request
annual quarter review council register archive decision contract payment invoice
tender staff project meeting minutes draft final approved pending department
regional municipal public health education transport finance customs registry
raporti buxheti ministria qytetar zyra sherbimi regjistri leje kufiri kerkese
vjetor tremujor shqyrtim keshilli arkiva vendim kontrate pagese fature tender stafi
projekti mbledhje procesverbal draft perfundimtar miratuar pezull departamenti
rajonal bashkia publik shendetesia arsimi transporti financa dogana Tirana Durres
Shkoder Vlore Elbasan Korce Fier Berat`)

// gen produces deterministic content from a seeded generator.
type gen struct {
	r   *rand.Rand
	seq int // numbers function names, unique per gen
}

func newGen(seed uint64) *gen {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return &gen{r: rand.New(rand.NewChaCha8(s))}
}

// between returns an int in [lo, hi].
func (g *gen) between(lo, hi int) int { return lo + g.r.IntN(hi-lo+1) }

func (g *gen) word() string { return vocabulary[g.r.IntN(len(vocabulary))] }

// sentence returns a capitalised sentence of 6-18 words.
func (g *gen) sentence() string {
	n := g.between(6, 18)
	w := make([]string, n)
	for i := range w {
		w[i] = g.word()
	}
	w[0] = strings.ToUpper(w[0][:1]) + w[0][1:]
	return strings.Join(w, " ") + "."
}

// paragraph returns 2-7 sentences.
func (g *gen) paragraph() string {
	n := g.between(2, 7)
	s := make([]string, n)
	for i := range s {
		s[i] = g.sentence()
	}
	return strings.Join(s, " ")
}

// text returns paragraphs separated by blank lines, about size bytes.
func (g *gen) text(size int) string {
	var b strings.Builder
	for b.Len() < size {
		b.WriteString(g.paragraph())
		b.WriteString("\n\n")
	}
	return b.String()
}

// markdown returns a titled document of about size bytes.
func (g *gen) markdown(title string, size int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", title)
	for b.Len() < size {
		fmt.Fprintf(&b, "## %s %s\n\n%s\n\n- %s\n- %s\n\n", g.word(), g.word(), g.paragraph(), g.sentence(), g.sentence())
	}
	return []byte(b.String())
}

// csv returns a table of rows records.
func (g *gen) csv(rows int) []byte {
	var b strings.Builder
	b.WriteString("id,date,office,amount,status,note\n")
	for i := range rows {
		fmt.Fprintf(&b, "%d,2024-%02d-%02d,%s,%d.%02d,%s,%s %s\n", i+1, g.between(1, 12), g.between(1, 28),
			g.word(), g.between(10, 99999), g.between(0, 99), g.word(), g.word(), g.word())
	}
	return []byte(b.String())
}

// zipFile writes an OOXML package: files in order, deflated. Writing to
// memory cannot fail, so errors are not checked.
func zipFile(files [][2]string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		w, _ := zw.Create(f[0])
		_, _ = w.Write([]byte(f[1])) // into memory: cannot fail
	}
	_ = zw.Close() // into memory: cannot fail
	return buf.Bytes()
}

const xmlHead = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` + "\n"

// docx returns a minimal valid Word document of about size bytes of text.
func (g *gen) docx(title string, size int) []byte {
	var body strings.Builder
	fmt.Fprintf(&body, `<w:p><w:pPr><w:pStyle w:val="Title"/></w:pPr><w:r><w:t>%s</w:t></w:r></w:p>`, title)
	for body.Len() < size {
		fmt.Fprintf(&body, `<w:p><w:r><w:t xml:space="preserve">%s</w:t></w:r></w:p>`, g.paragraph())
	}
	return zipFile(docxParts(body.String()))
}

// docxParts are the parts of a Word document whose body XML is body.
func docxParts(body string) [][2]string {
	return [][2]string{
		{"[Content_Types].xml", xmlHead + `<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>`},
		{"_rels/.rels", xmlHead + `<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>`},
		{"word/document.xml", xmlHead + `<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>` + body + `</w:body></w:document>`},
	}
}

// xlsx returns a minimal valid spreadsheet with rows rows.
func (g *gen) xlsx(rows int) []byte {
	var sheet strings.Builder
	for i := 1; i <= rows; i++ {
		fmt.Fprintf(&sheet, `<row r="%d"><c r="A%d" t="inlineStr"><is><t>%s %s</t></is></c><c r="B%d"><v>%d</v></c><c r="C%d"><v>%d.%02d</v></c></row>`,
			i, i, g.word(), g.word(), i, g.between(1, 5000), i, g.between(0, 99999), g.between(0, 99))
	}
	return zipFile([][2]string{
		{"[Content_Types].xml", xmlHead + `<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>`},
		{"_rels/.rels", xmlHead + `<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>`},
		{"xl/workbook.xml", xmlHead + `<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>`},
		{"xl/_rels/workbook.xml.rels", xmlHead + `<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>`},
		{"xl/worksheets/sheet1.xml", xmlHead + `<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>` + sheet.String() + `</sheetData></worksheet>`},
	})
}

// pdf returns a valid one-page PDF: a scanned page image (JPEG) under a
// text layer, a deflated stream of about size bytes before compression,
// with a correct cross-reference table.
func (g *gen) pdf(title string, size int) []byte {
	scanW, scanH := g.between(600, 1000), g.between(800, 1300)
	page := g.scan(scanW, scanH)
	var content strings.Builder
	fmt.Fprintf(&content, "BT /F1 16 Tf 72 760 Td (%s) Tj ET\n", title)
	for y := 730; content.Len() < size; y -= 14 {
		if y < 40 {
			y = 730
		}
		fmt.Fprintf(&content, "BT /F1 10 Tf 72 %d Td (%s) Tj ET\n", y, g.sentence())
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	_, _ = zw.Write([]byte(content.String())) // into memory: cannot fail
	_ = zw.Close()                            // into memory: cannot fail

	var b bytes.Buffer
	b.WriteString("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> /XObject << /Im1 6 0 R >> >> /Contents 5 0 R >>",
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
		fmt.Sprintf("<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream", z.Len(), z.Bytes()),
		fmt.Sprintf("<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /DCTDecode /Length %d >>\nstream\n%s\nendstream",
			scanW, scanH, len(page), page),
	}
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return b.Bytes()
}

// picture returns a w×h photo-like image: gradients, a disc, and sensor
// noise of the given amplitude (0 for a flat screenshot).
func (g *gen) picture(w, h, noise int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	r0, g0, b0 := g.r.IntN(256), g.r.IntN(256), g.r.IntN(256)
	cx, cy, rad := g.r.IntN(w), g.r.IntN(h), g.between(w/8, w/2)
	seed := g.r.Uint32() | 1
	for y := range h {
		row := img.Pix[y*img.Stride:]
		for x := range w {
			n := 0
			if noise > 0 {
				seed ^= seed << 13
				seed ^= seed >> 17
				seed ^= seed << 5
				n = int(seed % uint32(noise))
			}
			c := [4]uint8{uint8(r0 + x*128/w + n), uint8(g0 + y*128/h + n), uint8(b0 + (x+y)*64/(w+h) + n), 255}
			if dx, dy := x-cx, y-cy; dx*dx+dy*dy < rad*rad {
				c[0], c[2] = c[2], c[0]
			}
			copy(row[4*x:], c[:])
		}
	}
	return img
}

// jpeg returns a JPEG photo of w×h pixels.
func (g *gen) jpeg(w, h int) []byte {
	var b bytes.Buffer
	_ = jpeg.Encode(&b, g.picture(w, h, 24), &jpeg.Options{Quality: 88}) // into memory: cannot fail
	return b.Bytes()
}

// png returns a PNG screenshot of w×h pixels: flat areas, little noise.
func (g *gen) png(w, h int) []byte {
	var b bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	_ = enc.Encode(&b, g.picture(w, h, 3)) // into memory: cannot fail
	return b.Bytes()
}

// scan returns the page image of a scanned document: a grey JPEG of
// text-like lines on paper.
func (g *gen) scan(w, h int) []byte {
	img := image.NewGray(image.Rect(0, 0, w, h))
	seed := g.r.Uint32() | 1
	next := func(n uint32) uint8 {
		seed ^= seed << 13
		seed ^= seed >> 17
		seed ^= seed << 5
		return uint8(seed % n)
	}
	for i := range img.Pix {
		img.Pix[i] = 235 + next(20)
	}
	for y := h / 10; y < h*9/10; y += 18 {
		for x := w / 10; x < w*9/10; {
			word := g.between(10, 60)
			for yy := y; yy < y+9; yy++ {
				for xx := x; xx < min(x+word, w*9/10); xx++ {
					img.Pix[yy*img.Stride+xx] = 20 + next(60)
				}
			}
			x += word + 8
		}
	}
	var b bytes.Buffer
	_ = jpeg.Encode(&b, img, &jpeg.Options{Quality: 80}) // into memory: cannot fail
	return b.Bytes()
}

// source returns a source file in lang ("go", "py", "c", "js") of about
// size bytes.
func (g *gen) source(lang, pkg string, size int) []byte {
	var b strings.Builder
	switch lang {
	case "go":
		fmt.Fprintf(&b, "// Package %s handles %s %s.\npackage %s\n\n", pkg, g.word(), g.word(), pkg)
	case "py":
		fmt.Fprintf(&b, "\"\"\"%s\"\"\"\n\nimport os\nimport sys\n\n", g.sentence())
	case "c":
		fmt.Fprintf(&b, "/* %s */\n#include <stdio.h>\n#include <stdlib.h>\n\n", g.sentence())
	case "js":
		fmt.Fprintf(&b, "// %s\n'use strict';\n\n", g.sentence())
	}
	for b.Len() < size {
		g.seq++
		name := fmt.Sprintf("%s%s%d", g.word(), strings.ToUpper(g.word()[:1]), g.seq)
		a, c := g.between(1, 99), g.between(1, 99)
		switch lang {
		case "go":
			fmt.Fprintf(&b, "// %s returns the %s of n.\nfunc %s(n int) int {\n\tif n < %d {\n\t\treturn n * %d\n\t}\n\treturn n + %d\n}\n\n", name, g.word(), name, a, c, a+c)
		case "py":
			fmt.Fprintf(&b, "def %s(n):\n    \"\"\"%s\"\"\"\n    if n < %d:\n        return n * %d\n    return n + %d\n\n\n", name, g.sentence(), a, c, a+c)
		case "c":
			fmt.Fprintf(&b, "/* %s */\nstatic int %s(int n)\n{\n\tif (n < %d)\n\t\treturn n * %d;\n\treturn n + %d;\n}\n\n", g.sentence(), name, a, c, a+c)
		case "js":
			fmt.Fprintf(&b, "/** %s */\nfunction %s(n) {\n  if (n < %d) {\n    return n * %d;\n  }\n  return n + %d;\n}\n\n", g.sentence(), name, a, c, a+c)
		}
	}
	return []byte(b.String())
}

package main

import (
	"math/rand/v2"
	"strconv"
	"strings"
)

// idWords are the parts identifiers are built from.
var idWords = strings.Fields(`buffer count index node item value config server
client request response handler cache file path name size offset length data
key hash block chunk pack tree snapshot repo store reader writer stream header
footer entry record table list map set queue stack state status error result
option flag mode level limit timeout retry backoff token session user group
owner policy rule filter match pattern source target parent child root leaf id
version format codec cipher nonce salt seed digest signature proof log event
metric counter gauge timer worker pool job task batch window frame packet
message channel socket conn addr host port route query param body payload
context deadline cancel lock mutex once wait atomic ref handle descriptor inode
mtime blob tag label cursor page row column schema field method object class
module plugin driver device volume mount disk image region segment extent
sector range span scope budget quota tenant account credential secret vault`)

// proseWords make up comments and documentation.
var proseWords = strings.Fields(`the the the of of and and to to a a in is is
that for it as with be on not this are by from at or an if but which we can
will all when then only must should may each other new used than into more
some any so also returns given called after before because until while note
see caller value error first last every same empty nil zero valid invalid
current next previous order between without within does do has have been
being write read open close keeps holds stores loads checks fails succeeds
safe concurrent use until once per time number bytes file files data records
`)

// stdPackages are import names shared by every Go project.
var stdPackages = []string{"bytes", "context", "errors", "fmt", "io", "os",
	"sort", "strconv", "strings", "sync", "time", "encoding/json", "path/filepath"}

var licenses = []string{
	"Copyright %Y The %P Authors. All rights reserved.\nUse of this source code is governed by a BSD-style\nlicense that can be found in the LICENSE file.",
	"SPDX-License-Identifier: Apache-2.0\n\nLicensed under the Apache License, Version 2.0 (the \"License\");\nyou may not use this file except in compliance with the License.\nYou may obtain a copy of the License at\n\n    http://www.apache.org/licenses/LICENSE-2.0\n\nUnless required by applicable law or agreed to in writing, software\ndistributed under the License is distributed on an \"AS IS\" BASIS,\nWITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.",
	"SPDX-License-Identifier: MIT\nCopyright (c) %Y %P contributors",
}

// lang describes one kind of text file.
type lang struct {
	ext      string
	comment  string // line comment prefix
	indent   string
	closer   string   // line closing a block, empty for indentation languages
	prologue []string // file start, after the license
	funcs    []string // block openers at top level
	blocks   []string // block openers inside a body
	stmts    []string // simple statements
}

var langs = map[string]*lang{
	"go": {
		ext: ".go", comment: "// ", indent: "\t", closer: "}",
		prologue: []string{"package %p", "", "import (", "%G", ")", ""},
		funcs: []string{
			"func %F(%i %T, %i %T) (%T, error) {",
			"func (%r *%T) %F(ctx context.Context, %i %T) error {",
			"func (%r *%T) %F() %T {",
			"func new%T(%i %T) *%T {",
			"type %T struct {",
		},
		blocks: []string{
			"if err != nil {", "if err != nil {", "if %i == nil {",
			"for _, %i := range %i.%i {", "for %i := 0; %i < len(%i); %i++ {",
			"switch %i.%i {", "if %i, ok := %i[%i]; ok {", "select {",
		},
		stmts: []string{
			"%i := %p.%F(%i, %i)", "%i, err := %r.%F(ctx, %i)", "return nil, err",
			"return %i, nil", "return fmt.Errorf(\"%s: %%w\", err)", "%i.%i = %i",
			"%i = append(%i, %i)", "defer %i.Close()", "%i.mu.Lock()",
			"defer %i.mu.Unlock()", "%i += %n", "%i := make([]%T, 0, %n)",
			"%I %T `json:\"%i\"`", "return nil", "// %c", "%i[%i] = %i.%i",
			"log.Printf(\"%s %%v\", %i)", "case %n:", "continue", "break",
		},
	},
	"c": {
		ext: ".c", comment: "// ", indent: "    ", closer: "}",
		prologue: []string{"#include <stdio.h>", "#include <stdlib.h>", "#include <string.h>", "#include \"%p.h\"", ""},
		funcs: []string{
			"static int %i(struct %i *%i, size_t %i)\n{",
			"int %p_%i(const char *%i, %i_t *%i)\n{",
			"void %p_%i(struct %i *%i)\n{",
			"struct %i {",
		},
		blocks: []string{
			"if (%i == NULL) {", "if (%i < 0) {", "for (i = 0; i < %i->%i; i++) {",
			"while (%i != NULL) {", "switch (%i->%i) {", "if (%i->%i & %N) {",
		},
		stmts: []string{
			"return -EINVAL;", "return 0;", "%i->%i = %i;", "%i = %i->%i;",
			"memcpy(%i, %i->%i, %i);", "free(%i);", "%i += %n;", "goto out;",
			"int %i = %n;", "size_t %i = sizeof(*%i);", "/* %c */",
			"%i = %p_%i(%i, %i);", "case %N:", "break;", "unsigned long %i;",
		},
	},
	"py": {
		ext: ".py", comment: "# ", indent: "    ",
		prologue: []string{"import os", "import sys", "from %p import %i, %i", "", ""},
		funcs: []string{
			"def %i(%i, %i=None):", "class %T(%T):", "def %i(self, %i, %i):",
			"async def %i(self, %i):",
		},
		blocks: []string{
			"if %i is None:", "for %i in %i.%i:", "try:", "except %T as exc:",
			"with open(%i, \"rb\") as %i:", "while %i < %n:", "if not %i:",
		},
		stmts: []string{
			"%i = %i.%i(%i)", "return %i", "self.%i = %i", "%i.append(%i)",
			"raise %T(\"%s\")", "%i += %n", "# %c", "logger.debug(\"%s %%s\", %i)",
			"%i = {\"%i\": %i, \"%i\": %n}", "return None", "pass", "yield %i",
		},
	},
	"js": {
		ext: ".js", comment: "// ", indent: "  ", closer: "}",
		prologue: []string{"'use strict';", "", "const %i = require('%p');", "const { %i, %i } = require('./%i');", ""},
		funcs: []string{
			"function %i(%i, %i) {", "export async function %i(%i) {",
			"const %i = (%i, %i) => {", "class %T extends %T {",
		},
		blocks: []string{
			"if (!%i) {", "for (const %i of %i.%i) {", "if (%i === %n) {",
			"try {", "} catch (err) {", "%i.forEach((%i) => {",
		},
		stmts: []string{
			"const %i = await %i.%i(%i);", "return %i;", "this.%i = %i;",
			"%i.push(%i);", "throw new Error('%s');", "let %i = %n;", "// %c",
			"console.log('%s', %i);", "%i[%i] = { %i: %i, %i: %n };", "return null;",
		},
	},
}

// langNames fixes an iteration order over langs.
var langNames = []string{"go", "c", "py", "js"}

// vocab is a project's own identifiers; files of a project share it, which
// makes them compress and resemble each other the way real trees do.
type vocab struct {
	project string
	idents  []string // lowerCamel or snake_case
	types   []string // PascalCase
	pkgs    []string
	license string
}

func newVocab(r *rand.Rand, project string) *vocab {
	v := &vocab{project: project}
	snake := r.IntN(3) == 0
	for range 120 + r.IntN(200) {
		v.idents = append(v.idents, ident(r, snake))
	}
	for range 30 + r.IntN(40) {
		v.types = append(v.types, pascal(r))
	}
	for range 4 + r.IntN(8) {
		v.pkgs = append(v.pkgs, idWords[r.IntN(len(idWords))])
	}
	lic := licenses[r.IntN(len(licenses))]
	lic = strings.ReplaceAll(lic, "%Y", strconv.Itoa(2015+r.IntN(10)))
	v.license = strings.ReplaceAll(lic, "%P", project)
	return v
}

func ident(r *rand.Rand, snake bool) string {
	n := 1 + r.IntN(3)
	var b strings.Builder
	for i := range n {
		w := idWords[r.IntN(len(idWords))]
		switch {
		case i == 0:
		case snake:
			b.WriteByte('_')
		default:
			w = strings.ToUpper(w[:1]) + w[1:]
		}
		b.WriteString(w)
	}
	return b.String()
}

func pascal(r *rand.Rand) string {
	s := ident(r, false)
	return strings.ToUpper(s[:1]) + s[1:]
}

// skewed picks from s with a bias to the front, so a few names are frequent.
func skewed(r *rand.Rand, s []string) string {
	u := r.Float64()
	return s[int(float64(len(s))*u*u)]
}

// textGen writes the lines of one file into buf.
type textGen struct {
	r   *rand.Rand
	v   *vocab
	buf []byte
}

// expand appends template t with its placeholders filled in.
func (g *textGen) expand(t string) {
	for i := 0; i < len(t); i++ {
		c := t[i]
		if c != '%' || i+1 == len(t) {
			g.buf = append(g.buf, c)
			continue
		}
		i++
		switch t[i] {
		case 'i':
			g.buf = append(g.buf, skewed(g.r, g.v.idents)...)
		case 'I':
			s := skewed(g.r, g.v.idents)
			g.buf = append(g.buf, s[0]-'a'+'A')
			g.buf = append(g.buf, s[1:]...)
		case 'T':
			g.buf = append(g.buf, skewed(g.r, g.v.types)...)
		case 'F':
			g.buf = append(g.buf, g.v.types[g.r.IntN(len(g.v.types))]...)
			g.buf = append(g.buf, idWords[g.r.IntN(len(idWords))]...)
		case 'r':
			g.buf = append(g.buf, idWords[g.r.IntN(len(idWords))][0])
		case 'p':
			g.buf = append(g.buf, g.v.pkgs[g.r.IntN(len(g.v.pkgs))]...)
		case 'n':
			g.buf = strconv.AppendInt(g.buf, int64(g.r.IntN(64)), 10)
		case 'N':
			g.buf = append(g.buf, "0x"...)
			g.buf = strconv.AppendUint(g.buf, g.r.Uint64()>>(32+g.r.IntN(28)), 16)
		case 's':
			g.words(1+g.r.IntN(4), idWords)
		case 'c':
			g.words(4+g.r.IntN(10), proseWords)
		case 'G':
			for j := range 2 + g.r.IntN(5) {
				if j > 0 {
					g.buf = append(g.buf, '\n')
				}
				g.buf = append(g.buf, "\t\""...)
				g.buf = append(g.buf, stdPackages[g.r.IntN(len(stdPackages))]...)
				g.buf = append(g.buf, '"')
			}
		default:
			g.buf = append(g.buf, t[i])
		}
	}
}

func (g *textGen) words(n int, from []string) {
	for j := range n {
		if j > 0 {
			g.buf = append(g.buf, ' ')
		}
		if g.r.IntN(5) == 0 {
			g.buf = append(g.buf, skewed(g.r, g.v.idents)...)
		} else {
			g.buf = append(g.buf, from[g.r.IntN(len(from))]...)
		}
	}
}

func (g *textGen) line(depth int, l *lang, t string) {
	for range depth {
		g.buf = append(g.buf, l.indent...)
	}
	g.expand(t)
	g.buf = append(g.buf, '\n')
}

// body writes a block body of statements and nested blocks.
func (g *textGen) body(l *lang, depth int) {
	for range 1 + g.r.IntN(7) {
		if depth < 4 && g.r.IntN(4) == 0 {
			g.line(depth, l, l.blocks[g.r.IntN(len(l.blocks))])
			g.body(l, depth+1)
			if l.closer != "" {
				g.line(depth, l, l.closer)
			}
			continue
		}
		g.line(depth, l, l.stmts[g.r.IntN(len(l.stmts))])
	}
}

// commentBlock writes a license or a doc comment with the line prefix.
func (g *textGen) commentBlock(l *lang, text string) {
	for ln := range strings.Lines(text) {
		g.buf = append(g.buf, strings.TrimRight(l.comment, " ")...)
		if ln != "\n" {
			g.buf = append(g.buf, ' ')
			g.buf = append(g.buf, ln...)
		} else {
			g.buf = append(g.buf, '\n')
		}
	}
	g.buf = append(g.buf, '\n')
}

// source appends a source file of about size bytes in language l.
func (g *textGen) source(l *lang, size int) {
	g.commentBlock(l, g.v.license)
	g.buf = append(g.buf, '\n')
	for _, t := range l.prologue {
		g.line(0, l, t)
	}
	for len(g.buf) < size {
		g.unit(l, 0)
	}
}

// unit appends one top-level function or type with its doc comment.
func (g *textGen) unit(l *lang, depth int) {
	if g.r.IntN(3) > 0 {
		g.line(depth, l, l.comment+"%c")
		if g.r.IntN(2) == 0 {
			g.line(depth, l, l.comment+"%c")
		}
	}
	g.line(depth, l, l.funcs[g.r.IntN(len(l.funcs))])
	g.body(l, depth+1)
	if l.closer != "" {
		g.line(depth, l, l.closer)
	}
	g.buf = append(g.buf, '\n')
}

// markdown appends a document of about size bytes.
func (g *textGen) markdown(size int) {
	g.buf = append(g.buf, "# "...)
	g.expand("%T %s\n\n")
	for len(g.buf) < size {
		switch g.r.IntN(6) {
		case 0:
			g.expand("## %s\n\n")
		case 1:
			for range 2 + g.r.IntN(5) {
				g.expand("- %c\n")
			}
			g.buf = append(g.buf, '\n')
		case 2:
			g.buf = append(g.buf, "```go\n"...)
			g.body(langs["go"], 0)
			g.buf = append(g.buf, "```\n\n"...)
		default:
			for range 2 + g.r.IntN(6) {
				g.expand("%c %c\n")
			}
			g.buf = append(g.buf, '\n')
		}
	}
}

// lines appends n new lines in the style of a file with extension ext, as an
// edit would; used by the mutation.
func (g *textGen) lines(ext string, n int) {
	l := langs["go"]
	for _, name := range langNames {
		if langs[name].ext == ext || (ext == ".h" && name == "c") {
			l = langs[name]
		}
	}
	if ext == ".md" {
		for range n {
			g.expand("%c %c\n")
		}
		return
	}
	start := len(g.buf)
	for strings.Count(string(g.buf[start:]), "\n") < n {
		g.unit(l, 0)
	}
}

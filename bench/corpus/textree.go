package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// project plans one source tree under text/.
type project struct {
	name    string
	lang    string
	budget  int64
	vendors []int // indexes into the shared libraries copied under vendor/
}

// libFile is one file of a shared library that several projects vendor.
type libFile struct {
	rel  string
	data []byte
}

// newLibrary generates a library of about size bytes; projects that vendor
// it hold byte-identical copies, as vendor/ and node_modules/ trees do.
func newLibrary(seed uint64, i int, size int64) []libFile {
	r := newRand(key(seed, "lib", i))
	name := fmt.Sprintf("%s%s", idWords[r.IntN(len(idWords))], idWords[r.IntN(len(idWords))])
	lang := langNames[r.IntN(len(langNames))]
	v := newVocab(r, name)
	var files []libFile
	var total int64
	for total < size {
		g := textGen{r: r, v: v}
		g.source(langs[lang], int(logUniform(r, 512, 64<<10)))
		rel := filepath.Join(name, ident(r, false)+strconv.Itoa(len(files))+langs[lang].ext)
		files = append(files, libFile{rel: rel, data: g.buf})
		total += int64(len(g.buf))
	}
	return files
}

// writeProject generates project p under root/text.
func writeProject(root string, seed uint64, idx int, p project, libs [][]libFile) (stats, error) {
	r := newRand(key(seed, "project", idx))
	v := newVocab(r, p.name)
	base := filepath.Join(root, "text", p.name)
	var st stats

	dirs := []string{""}
	depth := map[string]int{"": 0}
	for range 1 + int(p.budget/(160<<10)) {
		parent := dirs[r.IntN(len(dirs))]
		if depth[parent] >= 5 {
			continue
		}
		d := filepath.Join(parent, idWords[r.IntN(len(idWords))])
		if _, ok := depth[d]; ok {
			continue
		}
		dirs = append(dirs, d)
		depth[d] = depth[parent] + 1
	}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			return st, err
		}
	}

	put := func(rel string, data []byte) error {
		path := filepath.Join(base, rel)
		if err := writeFile(path, data, pastTime(r)); err != nil {
			return err
		}
		st.files++
		st.bytes += int64(len(data))
		return nil
	}

	for _, li := range p.vendors {
		for _, f := range libs[li] {
			if err := os.MkdirAll(filepath.Join(base, "vendor", filepath.Dir(f.rel)), 0o755); err != nil {
				return st, err
			}
			if err := put(filepath.Join("vendor", f.rel), f.data); err != nil {
				return st, err
			}
		}
	}

	used := map[string]bool{}
	buf := make([]byte, 0, 256<<10)
	for first := true; st.bytes < p.budget; first = false {
		dir := dirs[int(float64(len(dirs))*r.Float64()*r.Float64())]
		size := int(logUniform(r, 256, 128<<10))
		if r.IntN(100) == 0 {
			size = int(logUniform(r, 256<<10, 2<<20))
		}
		g := textGen{r: r, v: v, buf: buf[:0]}
		var name string
		switch n := r.IntN(200); {
		case first:
			name = "README.md"
			g.markdown(size)
		case n == 0:
			name = "__init__.py" // empty files exist in every real tree
		case n < 20:
			name = ident(r, true) + ".md"
			g.markdown(size)
		default:
			l := langs[p.lang]
			name = ident(r, p.lang == "py" || p.lang == "c") + l.ext
			if p.lang == "c" && n%3 == 0 {
				name = name[:len(name)-2] + ".h"
			}
			g.source(l, size)
		}
		rel := filepath.Join(dir, name)
		for i := 2; used[rel]; i++ {
			rel = filepath.Join(dir, strconv.Itoa(i)+"_"+name)
		}
		used[rel] = true
		if err := put(rel, g.buf); err != nil {
			return st, err
		}
		buf = g.buf
	}
	return st, nil
}

// planProjects splits the text budget into projects and shared libraries.
func planProjects(r *rand.Rand, budget int64) (projects []project, libSizes []int64) {
	libSize := min(max(budget/150, 32<<10), 8<<20)
	for range 4 {
		libSizes = append(libSizes, libSize)
	}
	used := map[string]bool{}
	for remaining := budget; remaining > 0; {
		b := min(logUniform(r, 2<<20, 24<<20), remaining)
		if remaining-b < 1<<20 {
			b = remaining
		}
		remaining -= b
		name := idWords[r.IntN(len(idWords))] + "-" + idWords[r.IntN(len(idWords))]
		for used[name] {
			name += strconv.Itoa(r.IntN(10))
		}
		used[name] = true
		p := project{name: name, lang: langNames[r.IntN(len(langNames))], budget: b}
		for i := range libSizes {
			if r.IntN(4) == 0 && libSizes[i]*2 < b {
				p.vendors = append(p.vendors, i)
			}
		}
		projects = append(projects, p)
	}
	return projects, libSizes
}

// writeFile writes data to path and sets its modification time.
func writeFile(path string, data []byte, mtime time.Time) error {
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return err
	}
	return os.Chtimes(path, mtime, mtime)
}

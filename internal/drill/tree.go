package drill

import (
	"context"
	"fmt"
	"path"
	"strings"
)

// DataDir is the folder of the sandbox that holds the generated tree: the
// user's files that attacks go after and damage is counted in.
const DataDir = "files"

// Tree says what Generate writes.
type Tree struct {
	// Files is the approximate number of files (at least 20).
	Files int
	// Seed makes the tree: the same seed gives the same bytes.
	Seed uint64
}

// kind is one sort of generated file: where it goes and how it is made.
type kind struct {
	weight int
	dir    []string // candidate folders below DataDir
	name   string   // fmt pattern with one %03d
	make   func(g *gen, dir, title string) []byte
}

var kinds = []kind{
	{14, []string{"Documents/Reports", "Documents/Reports/2023", "Documents/Reports/2024/Q3", "Shared/Council/Minutes"}, "report-%03d.docx",
		func(g *gen, _, t string) []byte { return g.docx(t, g.between(8_000, 200_000)) }},
	{9, []string{"Documents/Finance", "Documents/Finance/Budget 2024", "Shared/Procurement"}, "budget-%03d.xlsx",
		func(g *gen, _, _ string) []byte { return g.xlsx(g.between(20, 600)) }},
	{9, []string{"Documents/Scans", "Documents/Contracts", "Shared/Permits/Archive"}, "scan-%03d.pdf",
		func(g *gen, _, t string) []byte { return g.pdf(t, g.between(2_000, 40_000)) }},
	{8, []string{"Documents/Notes", "Desktop", "Shared/Council"}, "note-%03d.txt",
		func(g *gen, _, _ string) []byte { return []byte(g.text(g.between(500, 30_000))) }},
	{5, []string{"Documents/Notes", "Projects/handbook"}, "guide-%03d.md",
		func(g *gen, _, t string) []byte { return g.markdown(t, g.between(1_000, 20_000)) }},
	{5, []string{"Data/Exports", "Documents/Finance"}, "export-%03d.csv",
		func(g *gen, _, _ string) []byte { return g.csv(g.between(100, 5_000)) }},
	{12, []string{"Pictures/2023/Summer", "Pictures/2024", "Shared/Photos/Events"}, "IMG_%04d.jpg",
		func(g *gen, _, _ string) []byte { return g.jpeg(g.between(640, 1280), g.between(480, 960)) }},
	{4, []string{"Pictures/Screenshots", "Desktop"}, "screenshot-%03d.png",
		func(g *gen, _, _ string) []byte { return g.png(g.between(400, 1024), g.between(300, 768)) }},
	{8, []string{"Projects/registry/internal/records", "Projects/registry/cmd/registry", "Projects/registry/internal/permits"}, "file%03d.go",
		func(g *gen, dir, _ string) []byte { return g.source("go", path.Base(dir), g.between(800, 12_000)) }},
	{6, []string{"Projects/portal/app", "Projects/portal/app/views", "Projects/tools"}, "module%03d.py",
		func(g *gen, _, _ string) []byte { return g.source("py", "", g.between(800, 12_000)) }},
	{5, []string{"Projects/firmware/src", "Projects/firmware/lib"}, "unit%03d.c",
		func(g *gen, _, _ string) []byte { return g.source("c", "", g.between(800, 12_000)) }},
	{5, []string{"Projects/portal/static/js"}, "widget%03d.js",
		func(g *gen, _, _ string) []byte { return g.source("js", "", g.between(800, 12_000)) }},
}

// Generate writes a fresh tree of about t.Files files into DataDir of the
// sandbox: Word, Excel and PDF documents, text, Markdown and CSV, JPEG and
// PNG pictures, Go, Python, C and JavaScript source in nested folders, and
// one SQLite database made by the sqlite3 program. It returns the files
// written, in the order it wrote them. DataDir must not exist yet (Reset
// the sandbox first).
func Generate(ctx context.Context, sb *Sandbox, progs Programs, t Tree) ([]string, error) {
	if t.Files < 20 {
		t.Files = 20
	}
	g := newGen(t.Seed)
	total := 0
	for _, k := range kinds {
		total += k.weight
	}
	var files []string
	for _, k := range kinds {
		count := max(1, t.Files*k.weight/total)
		for i := range count {
			dir := path.Join(DataDir, k.dir[g.r.IntN(len(k.dir))])
			name := fmt.Sprintf(k.name, i+1)
			title := strings.ToUpper(g.word()[:1]) + g.word()[1:] + " " + g.word() + " " + g.word()
			data := k.make(g, dir, title)
			if err := sb.MkdirAll(dir); err != nil {
				return files, err
			}
			if err := sb.WriteFile(path.Join(dir, name), data, 0o644); err != nil {
				return files, err
			}
			files = append(files, path.Join(dir, name))
		}
	}
	db := path.Join(DataDir, "Data", "records.sqlite")
	if err := sb.MkdirAll(path.Dir(db)); err != nil {
		return files, err
	}
	rows := max(500, t.Files*20)
	script := fmt.Sprintf(`CREATE TABLE citizens(id INTEGER PRIMARY KEY, name TEXT, city TEXT, born TEXT, note TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < %d)
INSERT INTO citizens(name, city, born, note) SELECT 'person ' || x, 'city ' || (x %% 61), date('1950-01-01', '+' || (x * 7 %% 25000) || ' days'), printf('registered at office %%d, file %%d', x %% 97, x) FROM c;
CREATE INDEX citizens_city ON citizens(city);
`, rows)
	if err := progs.Run(ctx, sb.Root(), script, "sqlite3", sb.Path(db)); err != nil {
		return files, fmt.Errorf("make %s: %w", db, err)
	}
	return append(files, db), nil
}

// pristine is a generated tree kept in memory, to lay out again for each
// scenario faster than generating it anew.
type pristine struct {
	files []string
	data  [][]byte
}

// capture reads files (relative to the sandbox root) into memory.
func capture(sb *Sandbox, files []string) (*pristine, error) {
	p := &pristine{files: files}
	for _, f := range files {
		b, err := sb.ReadFile(f)
		if err != nil {
			return nil, err
		}
		p.data = append(p.data, b)
	}
	return p, nil
}

// restore writes the tree again, in the order it was generated.
func (p *pristine) restore(sb *Sandbox) error {
	for i, f := range p.files {
		if err := sb.MkdirAll(path.Dir(f)); err != nil {
			return err
		}
		if err := sb.WriteFile(f, p.data[i], 0o644); err != nil {
			return err
		}
	}
	return nil
}

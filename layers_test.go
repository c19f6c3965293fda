package kalaja

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/kalaja/kalaja/"

// layers lists every internal package with the internal packages it may
// import. Test files are not checked (they may import test support).
var layers = map[string][]string{
	"internal/atomicfile":  nil,
	"internal/blob":        nil,
	"internal/chunker":     nil,
	"internal/crypto":      {"internal/blob"},
	"internal/pack":        {"internal/blob", "internal/crypto"},
	"internal/index":       {"internal/atomicfile", "internal/blob", "internal/crypto", "internal/pack"},
	"internal/snapshot":    {"internal/blob"},
	"internal/store":       {"internal/blob"},
	"internal/store/local": {"internal/blob", "internal/store"},
	"internal/store/s3":    {"internal/blob", "internal/store"},
	"internal/repo": {"internal/admin", "internal/blob", "internal/chunker", "internal/crypto", "internal/pack",
		"internal/index", "internal/snapshot", "internal/store"},
	"internal/health":   {"internal/blob", "internal/detect", "internal/snapshot"},
	"internal/archiver": {"internal/blob", "internal/chunker", "internal/health", "internal/repo", "internal/snapshot"},
	"internal/ledger":   {"internal/admin", "internal/atomicfile", "internal/blob", "internal/snapshot", "internal/store"},
	"internal/restorer": {"internal/blob", "internal/crypto", "internal/index", "internal/snapshot"},
	"internal/checker": {"internal/blob", "internal/crypto", "internal/index", "internal/pack",
		"internal/repo", "internal/snapshot", "internal/store"},
	"internal/prune": {"internal/admin", "internal/blob", "internal/index", "internal/ledger", "internal/repo",
		"internal/snapshot", "internal/store"},
	"internal/parentcache": {"internal/atomicfile", "internal/blob", "internal/crypto", "internal/snapshot"},
	"internal/backup": {"internal/archiver", "internal/atomicfile", "internal/blob", "internal/detect", "internal/ledger",
		"internal/parentcache", "internal/repo", "internal/snapshot", "internal/store"},
	"internal/recovery": {"internal/alert", "internal/backup", "internal/blob", "internal/crypto", "internal/detect",
		"internal/fswatch", "internal/ledger", "internal/repo", "internal/restorer", "internal/snapshot",
		"internal/store/local"},
	"internal/alert":           {"internal/detect", "internal/event", "internal/outbox"},
	"internal/outbox":          {"internal/atomicfile", "internal/blob", "internal/event"},
	"internal/event":           nil,
	"internal/drill":           nil,
	"internal/detect":          nil,
	"internal/fswatch":         nil,
	"internal/watcher":         {"internal/detect", "internal/fswatch"},
	"internal/testtree":        nil,
	"internal/store/storetest": {"internal/blob", "internal/store"},
	"internal/store/s3/s3test": nil,
	"internal/store/faulty":    {"internal/blob", "internal/store"},
	"internal/store/remote":    {"internal/admin", "internal/blob", "internal/store"},
	"internal/server": {"internal/admin", "internal/atomicfile", "internal/blob", "internal/event", "internal/fleet", "internal/ledger",
		"internal/store"},
	"internal/fleet":     {"internal/atomicfile", "internal/blob", "internal/event", "internal/ledger", "internal/store"},
	"internal/admin":     {"internal/store"},
	"internal/dashboard": {"internal/fleet"},
}

// TestLayers fails when a package imports an internal package its layer
// does not allow, or when a package is missing from the table.
func TestLayers(t *testing.T) {
	err := filepath.WalkDir("internal", func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		files, _ := filepath.Glob(filepath.Join(path, "*.go"))
		var imports []string
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			for _, imp := range af.Imports {
				p := strings.Trim(imp.Path.Value, `"`)
				if strings.HasPrefix(p, module) {
					imports = append(imports, strings.TrimPrefix(p, module))
				}
			}
		}
		if len(files) == 0 {
			return nil
		}
		allowed, ok := layers[path]
		if !ok {
			t.Errorf("package %s is not in the layer table of layers_test.go (and doc.go)", path)
			return nil
		}
		for _, imp := range imports {
			if !slices.Contains(allowed, imp) {
				t.Errorf("%s imports %s, which its layer does not allow", path, imp)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

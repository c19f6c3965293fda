package watcher

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kalaja/kalaja/internal/detect"
	"github.com/kalaja/kalaja/internal/fswatch"
)

// Canary files: two per folder, named to sort first and last (a walk in
// name order meets one at once), with real document content so that
// content signals fire on them too. They go in each protected folder and
// its subfolders down to canaryDepth, at most maxCanaryDirs folders,
// skipping hidden and empty folders (an empty folder is often where a
// program is about to work, e.g. a git clone). They are removed when the
// watcher stops.
var canaryNames = []string{"!kalaja-canary.docx", "~kalaja-canary.pdf"}

const (
	canaryDepth   = 2
	maxCanaryDirs = 64
)

// isCanaryName reports whether base is a canary file name.
func isCanaryName(base string) bool { return slices.Contains(canaryNames, base) }

// canaryContent returns the bytes of the canary named name.
func canaryContent(name string) ([]byte, error) {
	if strings.HasSuffix(name, ".pdf") {
		return []byte("%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n" +
			"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n" +
			"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >> endobj\n" +
			"trailer << /Root 1 0 R >>\n%%EOF\n"), nil
	}
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, f := range []struct{ name, body string }{
		{"[Content_Types].xml", `<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/></Types>`},
		{"word/document.xml", `<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>Budget 2022, draft. Do not distribute.</w:t></w:r></w:p></w:body></w:document>`},
	} {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: time.Date(2022, 7, 1, 9, 0, 0, 0, time.UTC)})
		if err != nil {
			return nil, err
		}
		_, _ = w.Write([]byte(f.body)) // into memory: cannot fail
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// placeCanaries writes the canary files under roots, not in the guarded
// paths (Kalaja's own files: a decoy in a repository is in the way),
// and returns their paths. On error the canaries already written are
// removed.
func placeCanaries(roots, guarded []string) ([]string, error) {
	var dirs []string
	for _, r := range roots {
		dirs = append(dirs, canaryDirs(r, maxCanaryDirs-len(dirs), guarded)...)
	}
	var placed []string
	for _, d := range dirs {
		for _, name := range canaryNames {
			body, err := canaryContent(name)
			if err != nil {
				return nil, errors.Join(err, removeCanaries(placed))
			}
			p := filepath.Join(d, name)
			if err := os.WriteFile(p, body, 0o644); err != nil {
				return nil, errors.Join(fmt.Errorf("place canary: %w", err), removeCanaries(placed))
			}
			placed = append(placed, p)
		}
	}
	return placed, nil
}

// canaryDirs lists up to limit non-empty, non-hidden folders at root and
// below it down to canaryDepth, shallowest first, none in skip.
func canaryDirs(root string, limit int, skip []string) []string {
	var out []string
	level := []string{root}
	for depth := 0; depth <= canaryDepth && len(level) > 0; depth++ {
		var next []string
		for _, d := range level {
			if fswatch.InRoots(d, skip) {
				continue
			}
			entries, err := os.ReadDir(d)
			if err != nil {
				continue
			}
			real := 0
			for _, e := range entries {
				if isCanaryName(e.Name()) {
					continue
				}
				real++
				if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
					next = append(next, filepath.Join(d, e.Name()))
				}
			}
			if real > 0 && len(out) < limit {
				out = append(out, d)
			}
		}
		level = next
	}
	return out
}

// removeCanaries deletes canary files, ignoring those already gone. It
// returns the other failures: a canary left behind is a decoy in the
// user's folder.
func removeCanaries(paths []string) error {
	var errs []error
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// canaryHit reports whether an event on the canary at p whose content went
// from old to cur (nil: deleted, or not written) damaged it: deleted, or
// its content is no longer of its format. A program that saves a valid
// document over it (a batch converter, an office suite) does not count,
// nor does one that writes it back, deleted, in the format its name
// promises (gunzip -r of a folder whose canaries gzip -r compressed:
// whether their deletion counted is the detector's to say).
func canaryHit(p string, old, cur *detect.Sample) bool {
	if cur == nil {
		return true
	}
	if old == nil {
		return cur.Type != detect.Expected(detect.Ext(p))
	}
	return cur.Type != old.Type
}

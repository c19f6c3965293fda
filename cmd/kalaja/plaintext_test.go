package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// marker returns a random 24-character token that appears nowhere by chance.
func marker() string { return "mk" + rand.Text()[:22] }

// TestRepositoryHoldsNoPlaintext backs up a tree that carries a unique marker
// in every place a backup records (content of every character, file and
// directory names, the backed-up path, symlink targets, xattr names and
// values, tags, host) and requires that no file of the repository contains
// (except the ledger's records, which name the host in clear)
// any marker, raw or base64-encoded as JSON would carry bytes, nor the
// password. It runs with and without compression, so that encryption alone
// must hide everything.
func TestRepositoryHoldsNoPlaintext(t *testing.T) {
	for _, compression := range []string{"auto", "off"} {
		t.Run(compression, func(t *testing.T) {
			e := newEnv(t)
			password := marker()
			e.vars = []string{"KALAJA_REPOSITORY=" + e.repo, "KALAJA_PASSWORD=" + password}
			e.must("init")

			markers := map[string]string{}
			mk := func(what string) string {
				m := marker()
				markers[m] = what
				return m
			}
			src := filepath.Join(t.TempDir(), "src-"+mk("backed-up path"))
			dir := filepath.Join(src, "dir-"+mk("directory name"))
			must(t, os.MkdirAll(dir, 0o755))
			size := 4 << 20
			if testing.Short() {
				size = 1 << 20
			}

			text := []byte(strings.Repeat("the quick brown fox jumps over the lazy dog "+mk("compressible text")+"\n", size/70))
			must(t, os.WriteFile(filepath.Join(dir, "text.txt"), text, 0o644))

			random := make([]byte, size)
			rand.Read(random)
			m := mk("incompressible data")
			for off := 0; off+len(m) <= size; off += size / 8 {
				copy(random[off+1000:], m)
			}
			must(t, os.WriteFile(filepath.Join(dir, "random.bin"), random, 0o644))

			repeated := bytes.Repeat([]byte(mk("highly compressible data")), 2*size/24)
			must(t, os.WriteFile(filepath.Join(src, "repeated"), repeated, 0o600))

			must(t, os.WriteFile(filepath.Join(dir, mk("file name")+".txt"), []byte("x"), 0o644))
			must(t, os.WriteFile(filepath.Join(src, "small"), []byte(mk("small file")), 0o644))
			must(t, os.Symlink("../"+mk("symlink target"), filepath.Join(dir, "link")))
			must(t, unix.Lsetxattr(filepath.Join(dir, "text.txt"), "user."+mk("xattr name"), []byte(mk("xattr value")), 0))
			must(t, unix.Lsetxattr(dir, "user.dir", []byte(mk("directory xattr value")), 0))

			r := e.must("backup", "--json", "--compression", compression, "--tag", mk("tag"), "--host", mk("host"), src)
			if !strings.Contains(r.stdout, `"snapshot"`) {
				t.Fatalf("backup printed %q", r.stdout)
			}

			forms := map[string]string{password: "the password"}
			for m, what := range markers {
				forms[m] = what
				forms[base64.StdEncoding.EncodeToString([]byte(m))] = what + " (base64)"
			}
			if found := findStrings(t, src, forms); len(found) < 5 {
				t.Fatalf("the search finds only %q in the source tree", found)
			}
			// The ledger names the host of every record in clear, so that
			// it can be checked without the password (docs/design.md,
			// "Ledger"); nothing else may.
			for _, f := range findStrings(t, e.repo, forms) {
				if strings.HasPrefix(f, "ledger/entries/") && strings.HasSuffix(f, " holds host") {
					continue
				}
				t.Errorf("repository file %s", f)
			}
		})
	}
}

// findStrings reads every regular file below root and returns a line, for
// each of forms found in a file's path or bytes, naming the file and what
// the form stands for.
func findStrings(t *testing.T, root string, forms map[string]string) []string {
	t.Helper()
	var found []string
	files := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		files++
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for form, what := range forms {
			if bytes.Contains(b, []byte(form)) || strings.Contains(p, form) {
				found = append(found, fmt.Sprintf("%s holds %s", strings.TrimPrefix(p, root+"/"), what))
			}
		}
		return nil
	})
	must(t, err)
	if files < 4 {
		t.Fatalf("only %d files below %s", files, root)
	}
	return found
}

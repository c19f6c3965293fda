package main

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1GiB", 1 << 30, true},
		{"64MiB", 64 << 20, true},
		{"500MB", 500e6, true},
		{"2G", 2 << 30, true},
		{"1.5KiB", 1536, true},
		{"4096", 4096, true},
		{"0", 0, false},
		{"-1MiB", 0, false},
		{"lots", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSize(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("parseSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

// fingerprint lists every file of dir with its size, mtime and content hash.
func fingerprint(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out[rel] = fmt.Sprintf("%d %d %x", info.Size(), info.ModTime().Unix(), sha256.Sum256(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffPrints(a, b map[string]string) (changed, onlyA, onlyB int) {
	for k, v := range a {
		w, ok := b[k]
		switch {
		case !ok:
			onlyA++
		case v != w:
			changed++
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			onlyB++
		}
	}
	return changed, onlyA, onlyB
}

func TestGenerateDeterministicAndMutate(t *testing.T) {
	const size = 6 << 20
	a, b := t.TempDir(), t.TempDir()
	for _, dir := range []string{a, b} {
		st, err := generate(dir, size, 7)
		if err != nil {
			t.Fatal(err)
		}
		if st.bytes < size*9/10 || st.bytes > size*12/10 {
			t.Errorf("generated %d bytes, want about %d", st.bytes, size)
		}
	}
	day1 := fingerprint(t, a)
	if c, x, y := diffPrints(day1, fingerprint(t, b)); c+x+y != 0 {
		t.Fatalf("same seed, different trees: %d changed, %d/%d only in one", c, x, y)
	}
	other := t.TempDir()
	if _, err := generate(other, size, 8); err != nil {
		t.Fatal(err)
	}
	if c, _, _ := diffPrints(day1, fingerprint(t, other)); c == 0 {
		t.Error("different seeds gave identical shared files")
	}
	if _, err := generate(a, size, 7); err == nil {
		t.Error("generate into a non-empty dir succeeded")
	}

	vm, err := os.Stat(filepath.Join(a, vmPath))
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{a, b} {
		if _, err := mutateTree(dir, 2); err != nil {
			t.Fatal(err)
		}
	}
	day2 := fingerprint(t, a)
	if c, x, y := diffPrints(day2, fingerprint(t, b)); c+x+y != 0 {
		t.Fatalf("same mutation seed, different trees: %d changed, %d/%d only in one", c, x, y)
	}
	changed, deleted, added := diffPrints(day1, day2)
	if changed == 0 || deleted == 0 || added == 0 {
		t.Errorf("mutation changed %d, deleted %d, added %d files; want some of each", changed, deleted, added)
	}
	if changed > len(day1)/5 {
		t.Errorf("mutation changed %d of %d files; want a few percent", changed, len(day1))
	}
	vm2, err := os.Stat(filepath.Join(a, vmPath))
	if err != nil {
		t.Fatal(err)
	}
	if vm2.Size() != vm.Size() || !vm2.ModTime().After(vm.ModTime()) {
		t.Errorf("VM image size %d -> %d, mtime %v -> %v; want same size, newer mtime",
			vm.Size(), vm2.Size(), vm.ModTime(), vm2.ModTime())
	}
}

func TestDamage(t *testing.T) {
	const size = 4 << 20
	a, b := t.TempDir(), t.TempDir()
	var ds []damage
	for _, dir := range []string{a, b} {
		if _, err := generate(dir, size, 7); err != nil {
			t.Fatal(err)
		}
		d, err := damageTree(dir, 0.1, 3)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	if ds[0] != ds[1] {
		t.Fatalf("same seed, different damage: %v and %v", ds[0], ds[1])
	}
	// The encryption key and IVs come from the seed too, so the trees match.
	if c, x, y := diffPrints(fingerprint(t, a), fingerprint(t, b)); c+x+y != 0 {
		t.Fatalf("same seed, different damaged trees: %d changed, %d/%d only in one", c, x, y)
	}
	locked, notes := 0, 0
	err := filepath.WalkDir(a, func(p string, d os.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case strings.HasSuffix(p, damageExt):
			locked++
		case d.Name() == noteName:
			notes++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if locked != ds[0].files || notes != ds[0].notes || locked == 0 {
		t.Errorf("found %d locked files and %d notes, damage says %v", locked, notes, ds[0])
	}
	if _, err := os.Stat(filepath.Join(a, vmPath)); err != nil {
		t.Errorf("the VM image was touched: %v", err)
	}
}

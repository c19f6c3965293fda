package atomicfile_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/kalaja/kalaja/internal/atomicfile"
)

// names returns the names in dir.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestWrite(t *testing.T) {
	tests := []struct {
		name string
		old  []byte // nil: no file before
		data []byte
		perm fs.FileMode
	}{
		{"new file", nil, []byte("new"), 0o600},
		{"shorter than the old file", bytes.Repeat([]byte("old "), 1000), []byte("new"), 0o600},
		{"longer than the old file", []byte("old"), bytes.Repeat([]byte("new "), 100000), 0o600},
		{"empty", []byte("old"), nil, 0o600},
		{"readable by all", []byte("old"), []byte("public"), 0o644},
		{"group bits the umask would clear", nil, []byte("shared"), 0o660},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "state")
			if tt.old != nil {
				if err := os.WriteFile(path, tt.old, 0o666); err != nil {
					t.Fatal(err)
				}
			}
			if err := atomicfile.Write(path, tt.data, tt.perm); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, tt.data) {
				t.Fatalf("the file holds %d bytes (%v), want the %d written", len(got), err, len(tt.data))
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tt.perm {
				t.Errorf("mode %v, want %v", fi.Mode().Perm(), tt.perm)
			}
			if n := names(t, dir); len(n) != 1 || n[0] != "state" {
				t.Errorf("the folder holds %v, want just the file", n)
			}
		})
	}
}

// TestWriteFails checks that a failed Write leaves the old file as it was
// and no temporary file.
func TestWriteFails(t *testing.T) {
	t.Run("target is a folder", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "state")
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(path, "inside"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := atomicfile.Write(path, []byte("new"), 0o600); err == nil {
			t.Fatal("Write over a folder succeeded")
		}
		if n := names(t, dir); len(n) != 1 || n[0] != "state" {
			t.Errorf("the folder holds %v after a failed Write, want just the target", n)
		}
	})
	t.Run("no folder", func(t *testing.T) {
		if err := atomicfile.Write(filepath.Join(t.TempDir(), "missing", "state"), []byte("new"), 0o600); err == nil {
			t.Fatal("Write into a missing folder succeeded")
		}
	})
	t.Run("read-only folder", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root writes into read-only folders")
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "state")
		if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o700) })
		if err := atomicfile.Write(path, []byte("new"), 0o600); err == nil {
			t.Fatal("Write into a read-only folder succeeded")
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != "old" {
			t.Errorf("the file holds %q, %v after a failed Write, want the old bytes", got, err)
		}
		if n := names(t, dir); len(n) != 1 {
			t.Errorf("the folder holds %v after a failed Write, want just the file", n)
		}
	})
}

// TestWriteConcurrent has writers race on one file while readers read it:
// every read sees one writer's bytes in full.
func TestWriteConcurrent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	candidates := map[string]bool{}
	var all [][]byte
	for i := range 8 {
		b := bytes.Repeat(fmt.Appendf(nil, "writer %d ", i), 1000+i*500)
		all = append(all, b)
		candidates[string(b)] = true
	}
	if err := atomicfile.Write(path, all[0], 0o600); err != nil {
		t.Fatal(err)
	}
	var writers, readers sync.WaitGroup
	done := make(chan struct{})
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				b, err := os.ReadFile(path)
				if err != nil || !candidates[string(b)] {
					t.Errorf("a read during the writes saw %d bytes that are no writer's (%v)", len(b), err)
					return
				}
			}
		})
	}
	for _, b := range all {
		writers.Go(func() {
			for range 10 {
				if err := atomicfile.Write(path, b, 0o600); err != nil {
					t.Error(err)
				}
			}
		})
	}
	writers.Wait()
	close(done)
	readers.Wait()
	if n := names(t, dir); len(n) != 1 {
		t.Errorf("the folder holds %v, want just the file", n)
	}
}

package watcher

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSamplerCopies(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s := newSampler()
	a, b, c := write("a.txt", "the same report"), write("b.txt", "the same report"), write("c.txt", "another report")
	for _, p := range []string{a, b, c} {
		smp, ok := s.read(p)
		if !ok {
			t.Fatal(p)
		}
		s.put(p, smp)
	}
	if got := s.copies(a, s.cache[a]); !slices.Equal(got, []string{b}) {
		t.Errorf("copies of a: %v, want b", got)
	}
	if got := s.copies(c, s.cache[c]); len(got) != 0 {
		t.Errorf("copies of c: %v, want none", got)
	}
	// b moved: found under its new name.
	d := filepath.Join(dir, "d.txt")
	if err := os.Rename(b, d); err != nil {
		t.Fatal(err)
	}
	s.move(b, d, false)
	if got := s.copies(a, s.cache[a]); !slices.Equal(got, []string{d}) {
		t.Errorf("copies of a after a move: %v, want d", got)
	}
	// d rewritten: no copy any more, though the index still names it.
	write("d.txt", "rewritten")
	smp, _ := s.read(d)
	s.put(d, smp)
	if got := s.copies(a, s.cache[a]); len(got) != 0 {
		t.Errorf("copies of a after d changed: %v, want none", got)
	}
	// c deleted on disk but its deletion not read yet: still a copy of a
	// file of the same content; once read (gone from the cache), not.
	e := write("e.txt", "another report")
	smp, _ = s.read(e)
	s.put(e, smp)
	os.Remove(c)
	if got := s.copies(e, s.cache[e]); !slices.Equal(got, []string{c}) {
		t.Errorf("copies of e before c's deletion is read: %v, want c", got)
	}
	s.drop(c)
	if got := s.copies(e, s.cache[e]); len(got) != 0 {
		t.Errorf("copies of e after c's deletion: %v, want none", got)
	}
}

// TestSamplerIDs: the sampler knows which file it last read at a path
// through moves of the file and of its folder, until the path is dropped.
func TestSamplerIDs(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	a := filepath.Join(sub, "a.txt")
	if err := os.WriteFile(a, []byte("a report"), 0o644); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(a, &st); err != nil {
		t.Fatal(err)
	}
	want := idOf(&st)
	s := newSampler()
	smp, ok := s.read(a)
	if !ok {
		t.Fatal("read a")
	}
	s.put(a, smp)
	b := filepath.Join(sub, "b.txt")
	s.move(a, b, false)
	moved := filepath.Join(dir, "moved")
	s.move(sub, moved, true)
	for _, p := range []string{a, b} {
		if _, _, ok := s.drop(p); ok {
			t.Errorf("%s: still known after the moves", p)
		}
	}
	got, id, ok := s.drop(filepath.Join(moved, "b.txt"))
	if !ok || id != want || got != smp {
		t.Errorf("after moves: sample %p id %v known %v, want %p %v", got, id, ok, smp, want)
	}
	if _, _, ok := s.drop(filepath.Join(moved, "b.txt")); ok {
		t.Error("known after it was dropped")
	}
}

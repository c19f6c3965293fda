package watcher

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
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
	delete(s.cache, c)
	if got := s.copies(e, s.cache[e]); len(got) != 0 {
		t.Errorf("copies of e after c's deletion: %v, want none", got)
	}
}

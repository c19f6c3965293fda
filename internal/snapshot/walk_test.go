package snapshot

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/kalaja/kalaja/internal/blob"
)

// trees is a LoadTree over trees kept by ID.
type trees map[blob.ID]*Tree

func (ts trees) load(_ context.Context, id blob.ID) (*Tree, error) {
	t, ok := ts[id]
	if !ok {
		return nil, blob.ErrNotFound
	}
	return t, nil
}

// add keeps t under an ID of its own and returns it.
func (ts trees) add(name string, nodes ...Node) *blob.ID {
	id := blob.Hash([]byte(name))
	ts[id] = &Tree{Nodes: nodes}
	return &id
}

func TestWalkAndDiff(t *testing.T) {
	ts := trees{}
	file := func(name string, content ...string) Node {
		n := Node{Name: Name(name), Kind: File, Mode: 0o644}
		for _, c := range content {
			n.Content = append(n.Content, blob.Hash([]byte(c)))
		}
		return n
	}
	dir := func(name string, sub *blob.ID) Node {
		return Node{Name: Name(name), Kind: Dir, Mode: 0o755, Subtree: sub}
	}
	same := ts.add("same", file("x", "x"))
	chmod := file("c", "c")
	chmod.Mode = 0o600
	a := ts.add("a", file("a", "1"), file("b", "2"), file("c", "c"), dir("d", same), file("e", "e"), dir("f", ts.add("fa", file("y", "y"))))
	b := ts.add("b", file("a", "1"), file("b", "3"), chmod, dir("d", same), dir("e", ts.add("eb")), dir("f", ts.add("fb", file("z", "z"))), file("g", "g"))

	var got []string
	if err := Diff(t.Context(), ts.load, a, b, "/", func(code, p string) error {
		got = append(got, code+" "+p)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"M /b", "U /c", "T /e", "- /f/y", "+ /f/z", "+ /g"}
	if !slices.Equal(got, want) {
		t.Errorf("Diff = %q, want %q", got, want)
	}

	var walked []string
	if err := Walk(t.Context(), ts.load, *a, "/", func(p string, n *Node) error {
		walked = append(walked, p)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"/a", "/b", "/c", "/d", "/d/x", "/e", "/f", "/f/y"}; !slices.Equal(walked, want) {
		t.Errorf("Walk = %q, want %q", walked, want)
	}

	missing := ts.add("missing", dir("gone", ts.add("not kept")))
	delete(ts, blob.Hash([]byte("not kept")))
	if err := Walk(t.Context(), ts.load, *missing, "/", func(string, *Node) error { return nil }); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Walk over a missing tree = %v, want ErrNotFound", err)
	}
}

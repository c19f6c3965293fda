package snapshot

import (
	"context"
	"fmt"
	"path"
	"slices"

	"github.com/kalaja/kalaja/internal/blob"
)

// LoadTree loads a tree by its blob ID (repo.Repository.LoadTree).
type LoadTree func(ctx context.Context, id blob.ID) (*Tree, error)

// Walk calls fn for every node below tree id, depth first, in name order,
// with its path (p joined with its names). An error of load (wrapped with
// the path) or of fn ends the walk.
func Walk(ctx context.Context, load LoadTree, id blob.ID, p string, fn func(string, *Node) error) error {
	t, err := load(ctx, id)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	for i := range t.Nodes {
		n := &t.Nodes[i]
		np := path.Join(p, string(n.Name))
		if err := fn(np, n); err != nil {
			return err
		}
		if n.Kind == Dir {
			if err := Walk(ctx, load, *n.Subtree, np, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// Change codes of Diff, as restic prints them.
const (
	Added    = "+"
	Removed  = "-"
	Modified = "M" // content changed
	Retyped  = "T" // file type changed
	Metadata = "U" // only metadata changed
)

// Diff calls fn with a change code and the path of every node that
// differs between trees a and b (nil for none) below path p, depth first,
// in name order. Subtrees with the same ID are not read. An error of load
// (wrapped with the path) or of fn ends it.
func Diff(ctx context.Context, load LoadTree, a, b *blob.ID, p string, fn func(code, path string) error) error {
	if a != nil && b != nil && *a == *b {
		return nil
	}
	get := func(id *blob.ID) (*Tree, error) {
		if id == nil {
			return &Tree{}, nil
		}
		return load(ctx, *id)
	}
	ta, err := get(a)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	tb, err := get(b)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	var names []string
	for _, t := range []*Tree{ta, tb} {
		for _, n := range t.Nodes {
			names = append(names, string(n.Name))
		}
	}
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		na, nb := ta.Find(name), tb.Find(name)
		np := path.Join(p, name)
		var code string
		switch {
		case na == nil:
			code = Added
		case nb == nil:
			code = Removed
		case na.Kind != nb.Kind:
			code = Retyped
		case na.Kind == File && !slices.Equal(na.Content, nb.Content):
			code = Modified
		case !sameMeta(na, nb):
			code = Metadata
		}
		if code != "" {
			if err := fn(code, np); err != nil {
				return err
			}
		}
		var sa, sb *blob.ID
		if na != nil && na.Kind == Dir {
			sa = na.Subtree
		}
		if nb != nil && nb.Kind == Dir {
			sb = nb.Subtree
		}
		if sa == nil && sb == nil {
			continue
		}
		if err := Diff(ctx, load, sa, sb, np, fn); err != nil {
			return err
		}
	}
	return nil
}

// sameMeta reports whether a and b have the same metadata (content aside).
func sameMeta(a, b *Node) bool {
	return a.Mode == b.Mode && a.UID == b.UID && a.GID == b.GID && a.MTime == b.MTime &&
		a.Target == b.Target && a.Rdev == b.Rdev &&
		slices.EqualFunc(a.Xattrs, b.Xattrs, func(x, y Xattr) bool {
			return x.Name == y.Name && string(x.Value) == string(y.Value)
		})
}

package main

import (
	"context"
	"fmt"
	"path"
	"slices"

	"github.com/spf13/cobra"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/snapshot"
)

// Change codes printed by diff, as restic prints them.
const (
	added    = "+"
	removed  = "-"
	modified = "M" // content changed
	retyped  = "T" // file type changed
	metadata = "U" // only metadata changed
)

func newDiffCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "diff SNAPSHOT1 SNAPSHOT2",
		Short: "Show what changed between two snapshots",
		Long: `Show every path added (+), removed (-), whose content changed (M), whose
type changed (T) or whose metadata only changed (U) from SNAPSHOT1 to SNAPSHOT2.`,
		Args: args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx := cmd.Context()
			r, err := g.open(ctx, true)
			if err != nil {
				return err
			}
			list, err := r.Snapshots(ctx)
			if err != nil {
				g.warn("%v", err)
			}
			s1, err := snapshot.Find(list, a[0], nil)
			if err != nil {
				return err
			}
			s2, err := snapshot.Find(list, a[1], nil)
			if err != nil {
				return err
			}
			counts := map[string]int{}
			out := cmd.OutOrStdout()
			err = diffTrees(ctx, r, &s1.Tree, &s2.Tree, "/", func(code, p string) error {
				counts[code]++
				if g.json {
					return printJSON(out, map[string]any{"change": code, "path": snapshot.Name(p)})
				}
				_, err := fmt.Fprintf(out, "%-4s %s\n", code, p)
				return err
			})
			if err != nil {
				return err
			}
			g.printf("\n%d added, %d removed, %d changed, %d type changed, %d metadata changed\n",
				counts[added], counts[removed], counts[modified], counts[retyped], counts[metadata])
			return nil
		},
	}
}

// diffTrees reports the differences between trees a and b (nil: empty)
// at snapshot path p.
func diffTrees(ctx context.Context, r *repo.Repository, a, b *blob.ID, p string, fn func(code, path string) error) error {
	if a != nil && b != nil && *a == *b {
		return nil
	}
	load := func(id *blob.ID) (*snapshot.Tree, error) {
		if id == nil {
			return &snapshot.Tree{}, nil
		}
		return r.LoadTree(ctx, *id)
	}
	ta, err := load(a)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	tb, err := load(b)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	var names []string
	for _, t := range []*snapshot.Tree{ta, tb} {
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
			code = added
		case nb == nil:
			code = removed
		case na.Kind != nb.Kind:
			code = retyped
		case na.Kind == snapshot.File && !slices.Equal(na.Content, nb.Content):
			code = modified
		case !sameMeta(na, nb):
			code = metadata
		}
		if code != "" {
			if err := fn(code, np); err != nil {
				return err
			}
		}
		var sa, sb *blob.ID
		if na != nil && na.Kind == snapshot.Dir {
			sa = na.Subtree
		}
		if nb != nil && nb.Kind == snapshot.Dir {
			sb = nb.Subtree
		}
		if sa == nil && sb == nil {
			continue
		}
		if err := diffTrees(ctx, r, sa, sb, np, fn); err != nil {
			return err
		}
	}
	return nil
}

func sameMeta(a, b *snapshot.Node) bool {
	return a.Mode == b.Mode && a.UID == b.UID && a.GID == b.GID && a.MTime == b.MTime &&
		a.Target == b.Target && a.Rdev == b.Rdev &&
		slices.EqualFunc(a.Xattrs, b.Xattrs, func(x, y snapshot.Xattr) bool {
			return x.Name == y.Name && string(x.Value) == string(y.Value)
		})
}

package main

import (
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/snapshot"
)

func newLsCommand(g *globalOptions) *cobra.Command {
	var long bool
	cmd := &cobra.Command{
		Use:   "ls SNAPSHOT [PATH]",
		Short: "List files in a snapshot",
		Long: `List the files of a snapshot ("latest", an ID or an ID prefix), or only
those at and below PATH (an absolute path as it was backed up).`,
		Args: args(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx := cmd.Context()
			r, err := g.openToRead(ctx, "ls", true)
			if err != nil {
				return err
			}
			sn, err := findSnapshot(ctx, g, r, a[0])
			if err != nil {
				return err
			}
			prefix := "/"
			if len(a) == 2 {
				prefix = path.Clean("/" + a[1])
			}
			out := cmd.OutOrStdout()
			found := false
			err = snapshot.Walk(ctx, r.LoadTree, sn.Tree, "/", func(p string, n *snapshot.Node) error {
				if p != prefix && !strings.HasPrefix(p, strings.TrimSuffix(prefix, "/")+"/") {
					return nil
				}
				found = true
				switch {
				case g.json:
					return printJSON(out, lsEntry(p, n))
				case long:
					_, err := fmt.Fprintf(out, "%s %5d %5d %12d %s %s%s\n", fileMode(n), n.UID, n.GID, n.Size,
						time.Unix(n.MTime.Sec, n.MTime.Nsec).Format("2006-01-02 15:04:05"), p, linkSuffix(n))
					return err
				default:
					_, err := fmt.Fprintln(out, p)
					return err
				}
			})
			if err != nil {
				return err
			}
			if !found && prefix != "/" {
				return fmt.Errorf("%s is not in snapshot %s: %w", prefix, sn.ID.Short(), blob.ErrNotFound)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&long, "long", "l", false, "show mode, owner, size and time")
	return cmd
}

// lsJSON is one line of ls --json. Path and Target keep bytes that are not
// UTF-8 (as {"base64": ...}), like the tree format.
type lsJSON struct {
	Path   snapshot.Name `json:"path"`
	Type   string        `json:"type"`
	Mode   string        `json:"mode"`
	UID    uint32        `json:"uid"`
	GID    uint32        `json:"gid"`
	Size   uint64        `json:"size"`
	MTime  time.Time     `json:"mtime"`
	Target snapshot.Name `json:"target,omitempty"`
}

func lsEntry(p string, n *snapshot.Node) lsJSON {
	return lsJSON{snapshot.Name(p), string(n.Kind), fmt.Sprintf("%04o", n.Mode), n.UID, n.GID, n.Size, time.Unix(n.MTime.Sec, n.MTime.Nsec).UTC(), n.Target}
}

// fileMode renders a node's type and permissions like ls -l.
func fileMode(n *snapshot.Node) string {
	m := fs.FileMode(n.Mode & 0o777)
	if n.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if n.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if n.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch n.Kind {
	case snapshot.Dir:
		m |= fs.ModeDir
	case snapshot.Symlink:
		m |= fs.ModeSymlink
	case snapshot.FIFO:
		m |= fs.ModeNamedPipe
	case snapshot.Socket:
		m |= fs.ModeSocket
	case snapshot.Dev:
		m |= fs.ModeDevice
	case snapshot.CharDev:
		m |= fs.ModeDevice | fs.ModeCharDevice
	}
	return m.String()
}

func linkSuffix(n *snapshot.Node) string {
	if n.Kind == snapshot.Symlink {
		return " -> " + string(n.Target)
	}
	return ""
}

package fswatch

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestSources runs real file operations in another process under each
// backend and checks the events that come out.
func TestWatchSources(t *testing.T) {
	for _, backend := range []string{"fanotify", "inotify"} {
		t.Run(backend, func(t *testing.T) {
			dir := t.TempDir()
			src, err := Open(backend, []string{dir}, Options{Devices: []string{}})
			if err != nil {
				if backend == "fanotify" {
					t.Skipf("fanotify not available: %v", err)
				}
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			events := make(chan Event, 1000)
			done := make(chan error, 1)
			go func() {
				done <- src.Run(ctx, func(b []Event) bool {
					for _, e := range b {
						events <- e
					}
					return false
				})
			}()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
				src.Close()
			}()
			outside := t.TempDir()
			script := `echo one > a.txt; mv a.txt b.txt; truncate -s 0 b.txt; mkdir sub; echo two > sub/c.txt; rm b.txt; echo x > "$OUT/elsewhere"; touch end`
			cmd := exec.Command("sh", "-c", script)
			cmd.Dir, cmd.Env = dir, append(os.Environ(), "OUT="+outside)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			type seen struct {
				op   Op
				path string
			}
			var got []seen
			deadline := time.After(60 * time.Second)
		loop:
			for {
				select {
				case e := <-events:
					rel, _ := filepath.Rel(dir, e.Path)
					if e.OldPath != "" {
						old, _ := filepath.Rel(dir, e.OldPath)
						rel = old + ">" + rel
					}
					got = append(got, seen{e.Op, rel})
					if backend == "fanotify" && e.PID == 0 {
						t.Errorf("fanotify event without PID: %+v", e)
					}
					if rel == "end" {
						break loop
					}
				case <-deadline:
					t.Fatalf("no event for end within a minute; got %v", got)
				}
			}
			if !slices.Contains(got, seen{Modify, "b.txt"}) && !slices.Contains(got, seen{Write, "b.txt"}) {
				t.Errorf("no modify or write of b.txt (truncated) in %v", got)
			}
			for _, want := range []seen{{Create, "a.txt"}, {Write, "a.txt"}, {Rename, "a.txt>b.txt"},
				{Create, "sub"}, {Write, "sub/c.txt"}, {Delete, "b.txt"}} {
				if !slices.Contains(got, want) {
					t.Errorf("no %v %s in %v", want.op, want.path, got)
				}
			}
			for _, s := range got {
				if filepath.IsAbs(s.path) || s.path == "../"+filepath.Base(outside)+"/elsewhere" {
					t.Errorf("event outside the watched folder: %v", s)
				}
			}
		})
	}
}

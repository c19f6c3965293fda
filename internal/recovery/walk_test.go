package recovery

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestStatAhead checks that the walk's lstats ahead give each entry asked
// for its own result, in every pattern of entries asked for and passed
// over (a pattern that left an entry unclaimed or a slot overwritten would
// hang), and that stop ends the goroutines at any point.
func TestStatAhead(t *testing.T) {
	dir := t.TempDir()
	var names []string
	for i := range 300 {
		name := fmt.Sprintf("f%03d", i)
		names = append(names, name)
		if i%7 == 3 {
			continue // listed, then gone: lstat finds nothing
		}
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fd := int(d.Fd())
	tests := []struct {
		name string
		ask  func(j int) bool
		upTo int // entries at or past it are not asked for
	}{
		{"every entry", func(int) bool { return true }, len(names)},
		{"every third", func(j int) bool { return j%3 == 0 }, len(names)},
		{"jumps past the window", func(j int) bool { return j%(statWindow+5) == 0 }, len(names)},
		{"only the last", func(j int) bool { return j == len(names)-1 }, len(names)},
		{"stopped early", func(int) bool { return true }, 10},
		{"none", func(int) bool { return false }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sa := startStatAhead(fd, names)
			defer sa.stop()
			for j := range tt.upTo {
				if !tt.ask(j) {
					continue
				}
				st, err := sa.get(j)
				if err != nil {
					t.Fatalf("%s: %v", names[j], err)
				}
				want, err := lstatAt(fd, names[j])
				if err != nil {
					t.Fatal(err)
				}
				if (st == nil) != (want == nil) || st != nil && (st.Ino != want.Ino || st.Mode&unix.S_IFMT != unix.S_IFREG) {
					t.Fatalf("%s: got %+v, want %+v", names[j], st, want)
				}
			}
		})
	}
}

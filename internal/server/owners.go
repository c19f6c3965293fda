package server

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"

	"github.com/kalaja/kalaja/internal/blob"
)

// ownersHeader is the first line of the owners file, version 1.
const ownersHeader = "kalaja owners v1"

// owners remembers which host (the token's) created each snapshot object,
// the stamp forget groups snapshots by (docs/design.md, "Forget and
// prune"). It is kept in a file of lines appended and synced as snapshots
// are stored: the header, then "<snapshot name> <host>" per snapshot. A
// name is recorded once, by its first writer (names are refused after).
// Entries of deleted snapshots stay; listings show only stored objects.
type owners struct {
	path string // empty: not persisted

	mu    sync.Mutex
	hosts map[blob.ID]string
}

// loadOwners reads the owners file at path; a missing file, or an empty
// path, starts empty. A line that does not parse is an error naming it:
// the file is the server's own, and a damaged one must be looked at.
func loadOwners(path string) (*owners, error) {
	o := &owners{path: path, hosts: map[blob.ID]string{}}
	if path == "" {
		return o, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return o, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read owners: %w", err)
	}
	if err := o.parse(b); err != nil {
		return nil, fmt.Errorf("owners file %s: %w", path, err)
	}
	return o, nil
}

func (o *owners) parse(b []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if n == 1 {
			if line != ownersHeader {
				return fmt.Errorf("first line %q, want %q: %w", truncated(line), ownersHeader, blob.ErrUnsupported)
			}
			continue
		}
		name, host, ok := strings.Cut(line, " ")
		id, err := blob.ParseID(name)
		if !ok || err != nil || CheckHost(host) != nil {
			return fmt.Errorf("line %d: %q is not a snapshot and a host: %w", n, truncated(line), blob.ErrCorrupt)
		}
		if _, dup := o.hosts[id]; !dup {
			o.hosts[id] = host
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%v: %w", err, blob.ErrCorrupt)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return fmt.Errorf("the last line is not terminated: %w", blob.ErrCorrupt)
	}
	return nil
}

func truncated(s string) string {
	if len(s) > 80 {
		return s[:80]
	}
	return s
}

// add records that host created snapshot id, appending to the file and
// syncing it. A snapshot already recorded keeps its first owner.
func (o *owners) add(id blob.ID, host string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.hosts[id]; ok {
		return nil
	}
	o.hosts[id] = host
	if o.path == "" {
		return nil
	}
	f, err := os.OpenFile(o.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("record the owner of snapshot %s: %w", id.Short(), err)
	}
	line := fmt.Sprintf("%s %s\n", id, host)
	if fi, err := f.Stat(); err == nil && fi.Size() == 0 {
		line = ownersHeader + "\n" + line
	}
	_, err = f.WriteString(line)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("record the owner of snapshot %s: %w", id.Short(), err)
	}
	return nil
}

// of returns the host that created snapshot name, or "" if unknown.
func (o *owners) of(name string) string {
	id, err := blob.ParseID(name)
	if err != nil {
		return ""
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.hosts[id]
}

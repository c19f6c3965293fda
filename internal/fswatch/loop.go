package fswatch

import (
	"os"
	"path/filepath"
	"strings"
	"time"
)

// loops decides whether a raw write to a block device concerns the
// protected folders: every disk does, but a loop device only when the file
// behind it lies in a protected folder (its blocks are that file's bytes).
// So writes to loop devices over other files (a snap, a VM image, another
// drill's image) are not taken for an attack on these folders.
type loops struct {
	roots []string
	seen  map[string]loopInfo
}

type loopInfo struct {
	at       time.Time
	relevant bool
}

// loopTTL is how long the backing file of a loop device is trusted before
// /sys is read again (a loop device can be detached and attached anew).
const loopTTL = time.Second

func newLoops(roots []string) *loops { return &loops{roots: roots, seen: map[string]loopInfo{}} }

// relevant reports whether a write to dev counts.
func (l *loops) relevant(dev string) bool {
	name := filepath.Base(dev)
	if !strings.HasPrefix(name, "loop") {
		return true
	}
	if i, ok := l.seen[dev]; ok && time.Since(i.at) < loopTTL {
		return i.relevant
	}
	backing, ok := BackingFile(dev)
	rel := ok && InRoots(backing, l.roots)
	if len(l.seen) > 1024 {
		clear(l.seen)
	}
	l.seen[dev] = loopInfo{at: time.Now(), relevant: rel}
	return rel
}

// BackingFile returns the file behind loop device dev (/dev/loopN), whose
// blocks are that file's bytes, and false if dev is not a loop device with
// a file attached.
func BackingFile(dev string) (string, bool) {
	name := filepath.Base(dev)
	if !strings.HasPrefix(name, "loop") {
		return "", false
	}
	b, err := os.ReadFile("/sys/block/" + name + "/loop/backing_file")
	if err != nil {
		return "", false
	}
	return strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)"), true
}

package recovery

import (
	"bytes"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/kalaja/kalaja/internal/fswatch"
	"golang.org/x/sys/unix"
)

// Holder is a stopped process that holds a file open under a path to
// repair: repairing in place under it could race with it once it runs
// again.
type Holder struct {
	PID     int    `json:"pid"`
	Command string `json:"command"` // the kernel's comm
	User    string `json:"user"`    // real user: name, or number if unknown
	File    string `json:"file"`    // one file it holds open there
}

// procRoot is where processes are read from.
const procRoot = "/proc"

// Holders returns the processes that are stopped (state T, as the watcher
// leaves those it stops) and hold a file descriptor open on an entry
// under any of paths (absolute), sorted by PID, with one such file each.
// A process that cannot be inspected (permission, or it ended meanwhile)
// is skipped. It returns an error only if the process list cannot be
// read.
func Holders(paths []string) ([]Holder, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	clean := make([]string, len(paths))
	for i, p := range paths {
		clean[i] = filepath.Clean(p)
	}
	var out []Holder
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		dir := filepath.Join(procRoot, e.Name())
		comm, state, ok := procState(dir)
		if !ok || state != 'T' {
			continue
		}
		file, ok := heldUnder(dir, clean)
		if !ok {
			continue
		}
		out = append(out, Holder{PID: pid, Command: comm, User: procUser(dir), File: file})
	}
	slices.SortFunc(out, func(a, b Holder) int { return a.PID - b.PID })
	return out, nil
}

// procState returns a process's comm and state from its stat file.
func procState(dir string) (string, byte, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return "", 0, false
	}
	return parseStat(b)
}

// parseStat returns the comm and state of a /proc/PID/stat line
// ("PID (comm) S ..."), whose comm, set by the process itself, may hold
// spaces and parentheses: it ends at the last ')'.
func parseStat(b []byte) (string, byte, bool) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open || end+2 >= len(b) {
		return "", 0, false
	}
	return string(b[open+1 : end]), b[end+2], true
}

// heldUnder returns a file that the process holds open under one of paths.
func heldUnder(dir string, paths []string) (string, bool) {
	files := openUnder(dir, paths, false, 1)
	if len(files) == 0 {
		return "", false
	}
	return files[0], true
}

// openUnder returns up to max files (max <= 0: all) that the process of
// /proc folder dir holds open under one of paths; with forWrite only those
// open for writing.
func openUnder(dir string, paths []string, forWrite bool, max int) []string {
	fds, err := os.ReadDir(filepath.Join(dir, "fd"))
	if err != nil {
		return nil
	}
	var out []string
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(dir, "fd", fd.Name()))
		if err != nil || !filepath.IsAbs(target) || !slices.ContainsFunc(paths, func(p string) bool { return fswatch.Under(target, p) }) {
			continue // gone, a pipe, socket or anonymous inode, or elsewhere
		}
		if forWrite && !openForWrite(filepath.Join(dir, "fdinfo", fd.Name())) {
			continue
		}
		out = append(out, target)
		if len(out) == max {
			break
		}
	}
	return out
}

// openForWrite reports whether the fdinfo file fdinfo says its descriptor
// is open for writing (or cannot be read: then it might be).
func openForWrite(fdinfo string) bool {
	b, err := os.ReadFile(fdinfo)
	if err != nil {
		return true
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			fl, _ := strconv.ParseInt(strings.TrimSpace(v), 8, 64)
			return fl&(unix.O_WRONLY|unix.O_RDWR) != 0
		}
	}
	return true
}

// OpenForWrite returns the files that the processes pids hold open for
// writing under roots: what a stopped attacker was in the middle of
// changing (truncated, half written), which no closed-file event named yet.
func OpenForWrite(pids []int, roots []string) []string {
	var out []string
	for _, pid := range pids {
		out = append(out, openUnder(filepath.Join(procRoot, strconv.Itoa(pid)), roots, true, 0)...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// procUser returns the name of a process's real user, or its number.
func procUser(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return ""
			}
			if u, err := user.LookupId(f[0]); err == nil {
				return u.Username
			}
			return f[0]
		}
	}
	return ""
}

package watcher

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// fileID identifies a file: its device and inode.
type fileID struct{ dev, ino uint64 }

func idOf(st *unix.Stat_t) fileID { return fileID{uint64(st.Dev), st.Ino} }

// exeOf returns the executable pid runs, and its path.
func exeOf(pid int) (fileID, string, bool) {
	link := "/proc/" + strconv.Itoa(pid) + "/exe"
	var st unix.Stat_t
	if unix.Stat(link, &st) != nil {
		return fileID{}, "", false
	}
	p, err := os.Readlink(link)
	if err != nil {
		return fileID{}, "", false
	}
	return idOf(&st), p, true
}

// systemDirs hold the executables installed with the system: interpreters,
// shells and tools that many unrelated programs of one user run.
var systemDirs = []string{"/usr/", "/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/", "/libx32/", "/snap/", "/nix/store/"}

// siblings finds the live processes, other than pids and the protected
// ones, that run the same executable file as one of pids and belong to
// the same user: the workers of a split attack that have not touched the
// protected folders yet. Executables installed with the system (see
// systemDirs: a shell, python, openssl) and this process's own are left
// out, as many unrelated processes run them. It hands them to found in
// two batches, each as soon as it is complete: first those among the
// processes the proc connector reported (drained first), the workers a
// program started lately, found without a scan; then the rest, from all
// of /proc, which on a busy machine takes milliseconds the others would
// use.
func (p *procs) siblings(pids []int, found func([]int)) {
	type key struct {
		exe fileID
		uid int
	}
	wanted := map[key]bool{}
	known := map[int]bool{}
	for _, pid := range pids {
		known[pid] = true
		id, path, ok := exeOf(pid)
		if !ok || id == p.exe || system(path) {
			continue
		}
		var buf [512]byte
		if _, uid, err := readStat(pid, buf[:]); err == nil && uid >= 0 {
			wanted[key{id, uid}] = true
		}
	}
	if len(wanted) == 0 {
		return
	}
	pick := func(candidates []int) []int {
		var out []int
		for _, pid := range candidates {
			if pid <= 2 || known[pid] || p.protected[pid] {
				continue
			}
			known[pid] = true
			id, _, ok := exeOf(pid)
			if !ok {
				continue
			}
			var buf [512]byte
			if _, uid, err := readStat(pid, buf[:]); err == nil && wanted[key{id, uid}] {
				out = append(out, pid)
			}
		}
		return out
	}
	p.mu.Lock()
	p.drain()
	recent := make([]int, 0, len(p.table))
	for pid, pr := range p.table {
		if pr.exited.IsZero() {
			recent = append(recent, pid)
		}
	}
	p.mu.Unlock()
	if out := pick(recent); len(out) > 0 {
		found(out)
	}
	names, _ := filepath.Glob("/proc/[0-9]*")
	all := make([]int, 0, len(names))
	for _, n := range names {
		if pid, err := strconv.Atoi(n[len("/proc/"):]); err == nil {
			all = append(all, pid)
		}
	}
	if out := pick(all); len(out) > 0 {
		found(out)
	}
}

// system reports whether path lies in one of systemDirs.
func system(path string) bool {
	for _, d := range systemDirs {
		if strings.HasPrefix(path, d) {
			return true
		}
	}
	return false
}

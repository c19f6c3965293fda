package watcher

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// exeID identifies an executable file.
type exeID struct{ dev, ino uint64 }

// exeOf returns the executable pid runs, and its path.
func exeOf(pid int) (exeID, string, bool) {
	link := "/proc/" + strconv.Itoa(pid) + "/exe"
	var st unix.Stat_t
	if unix.Stat(link, &st) != nil {
		return exeID{}, "", false
	}
	p, err := os.Readlink(link)
	if err != nil {
		return exeID{}, "", false
	}
	return exeID{uint64(st.Dev), st.Ino}, p, true
}

// systemDirs hold the executables installed with the system: interpreters,
// shells and tools that many unrelated programs of one user run.
var systemDirs = []string{"/usr/", "/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/", "/libx32/", "/snap/", "/nix/store/"}

// siblings returns the live processes, other than pids and the protected
// ones, that run the same executable file as one of pids and belong to
// the same user: the workers of a split attack that have not touched the
// protected folders yet. Executables installed with the system (see
// systemDirs: a shell, python, openssl) and this process's own are left
// out, as many unrelated processes run them. It reads all of /proc.
func (p *procs) siblings(pids []int) []int {
	type key struct {
		exe exeID
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
		return nil
	}
	names, _ := filepath.Glob("/proc/[0-9]*")
	var out []int
	for _, n := range names {
		pid, err := strconv.Atoi(n[len("/proc/"):])
		if err != nil || pid <= 2 || known[pid] || p.protected[pid] {
			continue
		}
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

// system reports whether path lies in one of systemDirs.
func system(path string) bool {
	for _, d := range systemDirs {
		if strings.HasPrefix(path, d) {
			return true
		}
	}
	return false
}

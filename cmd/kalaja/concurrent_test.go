package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kalaja/kalaja/internal/snapshot"
)

// TestConcurrentBackups runs backups from two hosts into one repository at
// the same time, round after round, from different trees and from the same
// one. Every round adds a large file to all trees, so that both backups race
// to store the same chunks. In some rounds the first backup is stopped
// (SIGSTOP) once it has stored a pack and resumed when the second is done,
// so that the second finds packs no index lists yet, indexes and reuses
// them, and the first then lists the same packs in its own index. Both must
// succeed every time without creating a lock file, check --read-data must
// pass, the snapshots must all be listed with their hosts, and each host's
// latest snapshot must restore its source.
func TestConcurrentBackups(t *testing.T) {
	seed := testSeed(t)
	rounds := []struct{ same, paused bool }{{false, false}, {true, true}, {false, true}, {true, false}, {false, false}}
	if testing.Short() {
		rounds = rounds[:3]
	}
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	gen := rand.NewChaCha8(key)
	random := func(n int) []byte {
		b := make([]byte, n)
		gen.Read(b)
		return b
	}
	dir := t.TempDir()
	trees := map[string]string{"a": filepath.Join(dir, "a"), "b": filepath.Join(dir, "b"), "same": filepath.Join(dir, "same")}
	for _, p := range trees {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e := newEnv(t)
	e.must("init")

	hosts := []string{"hostA", "hostB"}
	latest := map[string]string{}   // host -> source of its latest snapshot
	snapHost := map[string]string{} // snapshot ID -> host
	for round, rd := range rounds {
		shared := random(32 << 20)
		for name, p := range trees {
			writeFile(t, filepath.Join(p, fmt.Sprintf("shared-%d.bin", round)), shared)
			writeFile(t, filepath.Join(p, fmt.Sprintf("%s-%d.bin", name, round)), random(1<<20))
			writeFile(t, filepath.Join(p, fmt.Sprintf("%s-%d.txt", name, round)), []byte(strings.Repeat(name+" text\n", 1000*(round+1))))
		}
		srcs := []string{trees["a"], trees["b"]}
		if rd.same {
			srcs = []string{trees["same"], trees["same"]}
		}

		w := e.watch()
		first := e.start("backup", "--json", "--host", hosts[0], srcs[0])
		var created []string
		stopped := make(chan struct{})
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			pause := rd.paused
			w.created(func(name string) bool {
				if pause && strings.HasPrefix(name, "data/") {
					first.cmd.Process.Signal(syscall.SIGSTOP)
					close(stopped)
					pause = false
				}
				created = append(created, name)
				return true
			})
		}()
		firstExit := make(chan error, 1)
		go func() { firstExit <- first.cmd.Wait() }()
		if rd.paused {
			select {
			case <-stopped:
			case err := <-firstExit: // ended without storing a pack: reported below
				firstExit <- err
			}
		}
		second := e.start("backup", "--json", "--host", hosts[1], srcs[1])
		errs := []error{nil, second.cmd.Wait()}
		if rd.paused {
			first.cmd.Process.Signal(syscall.SIGCONT)
		}
		errs[0] = <-firstExit
		w.close()
		<-watched

		var added []int64
		for i, p := range []*proc{first, second} {
			if errs[i] != nil {
				t.Fatalf("round %d: backup of %s from %s: %v\nstdout:\n%s\nstderr:\n%s", round, srcs[i], hosts[i], errs[i], &p.stdout, &p.stderr)
			}
			var v struct {
				Snapshot string           `json:"snapshot"`
				Summary  snapshot.Summary `json:"summary"`
			}
			if err := json.Unmarshal(p.stdout.Bytes(), &v); err != nil || v.Snapshot == "" {
				t.Fatalf("round %d: backup output %q: %v", round, &p.stdout, err)
			}
			snapHost[v.Snapshot] = hosts[i]
			latest[hosts[i]] = srcs[i]
			added = append(added, v.Summary.BytesAdded)
			t.Logf("round %d %+v: %s added %d bytes; %s", round, rd, hosts[i], v.Summary.BytesAdded, strings.TrimSpace(p.stderr.String()))
		}
		if rd.paused && added[1] >= added[0] {
			t.Errorf("round %d: %s added %d bytes, %s %d: it did not reuse the packs %s had stored", round, hosts[1], added[1], hosts[0], added[0], hosts[0])
		}
		for _, name := range created {
			if strings.Contains(strings.ToLower(filepath.Base(name)), "lock") {
				t.Errorf("round %d: the backups created %s", round, name)
			}
		}
		t.Logf("round %d: %d names created in the repository, %d packs", round, len(created), e.packCount())
	}

	e.must("check", "--read-data")
	e.must("verify", "--read-data")
	r := e.must("snapshots", "--json")
	var list []struct {
		ID       string `json:"id"`
		Hostname string `json:"hostname"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("snapshots output %q: %v", r.stdout, err)
	}
	last := map[string]string{} // host -> ID of its latest snapshot; the list is oldest first
	for _, s := range list {
		if h, ok := snapHost[s.ID]; !ok || h != s.Hostname {
			t.Errorf("snapshot %s of host %q: the backups made it for host %q", s.ID, s.Hostname, h)
		}
		last[s.Hostname] = s.ID
	}
	if len(list) != len(snapHost) {
		t.Errorf("snapshots lists %d snapshots, the backups made %d", len(list), len(snapHost))
	}
	for _, h := range hosts {
		if last[h] == "" {
			t.Fatalf("no snapshot of host %s", h)
		}
		e.restoreAndCompare(last[h], latest[h])
	}
	err := filepath.WalkDir(e.repo, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(strings.ToLower(d.Name()), "lock") {
			t.Errorf("lock file in the repository: %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

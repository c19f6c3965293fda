package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/testtree"
)

// frozenDir holds the repositories earlier builds wrote, the passwords of
// their two key files, and the golden listings of the trees they hold;
// its README.md says how make.sh made them.
const frozenDir = "testdata/frozen"

// frozenSource is the folder make.sh backed up, as the snapshots record it.
const frozenSource = "/tmp/kalaja-frozen/src"

// frozenEntry is one line of a golden listing (testdata/frozen/snapshot*.jsonl):
// an entry of the backed-up folder as lstat(2) saw it when make.sh ran.
type frozenEntry struct {
	Path   snapshot.Name     `json:"path"`   // relative to the folder, "." for the folder itself
	Type   string            `json:"type"`   // as ls --json names it
	Mode   string            `json:"mode"`   // permission bits with setuid, setgid and sticky, 4 octal digits
	MTime  [2]int64          `json:"mtime"`  // seconds and nanoseconds since the epoch
	Size   int64             `json:"size"`   // files only
	SHA256 string            `json:"sha256"` // of a file's content
	Target snapshot.Name     `json:"target"` // of a symlink
	Link   snapshot.Name     `json:"link"`   // an earlier path of the same inode
	XAttrs map[string][]byte `json:"xattrs"` // user.* extended attributes
}

// TestFrozenRepositories reads the repositories in testdata/frozen, written
// by earlier builds (format 1 by the last build before format 2), as a
// user of this build would: it lists their snapshots, lists and restores
// each snapshot and requires every entry to match the golden listing of
// the tree backed up (content, type, mode, times, symlink targets, xattrs,
// hard links), checks every pack and the ledger, opens them with their
// second key, and backs up into them, which must keep their format. Each
// runs on a copy: nothing may change testdata.
func TestFrozenRepositories(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version int
		blobID  string
		// What make.sh's check and verify counted.
		packs, blobs int
		records      int64
	}{
		{"format1", 1, "", 4, 32, 8},
		// Format 2's build packs trees apart from content.
		{"format2", 2, "blake3", 5, 32, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := filepath.Join(t.TempDir(), "repo")
			unpack(t, filepath.Join(frozenDir, tc.name+".tar.gz"), repo)
			config := readFrozenConfig(t, repo)
			if config.Version != tc.version || config.BlobID != tc.blobID {
				t.Fatalf("%s holds a repository of format %d with blob_id %q, want %d and %q",
					tc.name, config.Version, config.BlobID, tc.version, tc.blobID)
			}
			e := frozenEnv(t, repo, "password")
			// sub is e reporting to a subtest.
			sub := func(t *testing.T) *testEnv { c := *e; c.t = t; return &c }
			snaps := frozenSnapshots(t, e)

			t.Run("second key", func(t *testing.T) {
				got := frozenSnapshots(t, frozenEnv(t, repo, "password2"))
				if len(got) != len(snaps) || got[0].ID != snaps[0].ID || got[1].ID != snaps[1].ID {
					t.Errorf("with the second key: snapshots %v, want %v", got, snaps)
				}
			})
			for i, sn := range snaps {
				want := readGolden(t, filepath.Join(frozenDir, fmt.Sprintf("snapshot%d.jsonl", i+1)))
				t.Run(fmt.Sprintf("ls snapshot %d", i+1), func(t *testing.T) {
					checkFrozenLs(t, jsonLines[lsJSON](t, sub(t).must("ls", "--json", sn.ID).stdout), want)
				})
				t.Run(fmt.Sprintf("restore snapshot %d", i+1), func(t *testing.T) {
					target := t.TempDir()
					t.Cleanup(func() { testtree.MakeRemovable(target) })
					sub(t).must("restore", sn.ID, "--target", target)
					checkFrozenTree(t, filepath.Join(target, frozenSource), want)
				})
			}
			var checked struct{ Snapshots, Packs, Blobs int }
			if out := e.must("check", "--read-data", "--json").stdout; json.Unmarshal([]byte(out), &checked) != nil ||
				checked.Snapshots != 2 || checked.Packs != tc.packs || checked.Blobs != tc.blobs {
				t.Errorf("check --read-data --json printed %q, want 2 snapshots, %d packs, %d blobs", out, tc.packs, tc.blobs)
			}
			var verified struct {
				Records, Signed int64
				Snapshots       int
			}
			if out := e.must("verify", "--read-data", "--json").stdout; json.Unmarshal([]byte(out), &verified) != nil ||
				verified.Records != tc.records || verified.Signed != tc.records || verified.Snapshots != 2 {
				t.Errorf("verify --read-data --json printed %q, want %d records, all signed, 2 snapshots", out, tc.records)
			}

			t.Run("back up into it", func(t *testing.T) {
				testFrozenAppend(t, sub(t), repo, snaps[1].ID)
			})
		})
	}
}

// testFrozenAppend restores the data folder of snapshot id and backs it up
// again into e's repository: every file's content is in the repository
// already, so a build that named blobs by another function than the
// repository's would store the files again. The repository must keep its
// config, pass check and verify, and restore the new snapshot.
func testFrozenAppend(t *testing.T, e *testEnv, repo, id string) {
	config, err := os.ReadFile(filepath.Join(repo, "config"))
	must(t, err)
	out := t.TempDir()
	t.Cleanup(func() { testtree.MakeRemovable(out) })
	e.must("restore", id, "--target", out, "--include", frozenSource+"/data")
	data := filepath.Join(out, frozenSource, "data")
	random, err := os.Stat(filepath.Join(data, "random.bin"))
	must(t, err)

	r := e.must("backup", "--json", data)
	var v struct {
		Snapshot string
		Summary  snapshot.Summary
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("backup output %q: %v", r.stdout, err)
	}
	// random.bin alone is more than the new trees: it is random, so it
	// would take at least its size again.
	if v.Summary.BytesAdded >= random.Size() {
		t.Errorf("backup of content the repository holds added %d bytes in %d blobs, want only trees, less than %d bytes",
			v.Summary.BytesAdded, v.Summary.BlobsAdded, random.Size())
	}
	after, err := os.ReadFile(filepath.Join(repo, "config"))
	must(t, err)
	if string(after) != string(config) {
		t.Errorf("backup changed the config:\n%s\nwas:\n%s", after, config)
	}
	e.must("check", "--read-data")
	e.must("verify", "--read-data")
	back := t.TempDir()
	t.Cleanup(func() { testtree.MakeRemovable(back) })
	e.must("restore", v.Snapshot, "--target", back)
	assertSameTree(t, data, filepath.Join(back, data))
}

// frozenEnv returns an environment for the repository at repo that opens
// it with the password in testdata/frozen/<password> and has a client state
// of its own, which has pinned no ledger key yet.
func frozenEnv(t *testing.T, repo, password string) *testEnv {
	pw, err := filepath.Abs(filepath.Join(frozenDir, password))
	must(t, err)
	return &testEnv{t: t, repo: repo, vars: []string{"KALAJA_REPOSITORY=" + repo, "KALAJA_PASSWORD_FILE=" + pw,
		"KALAJA_STATE_DIR=" + filepath.Join(t.TempDir(), "state")}}
}

// frozenSnapshot is what TestFrozenRepositories reads of snapshots --json.
type frozenSnapshot struct {
	ID       string               `json:"id"`
	Parent   string               `json:"parent"`
	Paths    []string             `json:"paths"`
	Hostname string               `json:"hostname"`
	Tags     []string             `json:"tags"`
	Ledger   *snapshot.Checkpoint `json:"ledger"`
}

// frozenSnapshots lists the repository's snapshots and requires the two
// make.sh made: both of frozenSource from host "frozen", tagged first and
// second, the second with the first as parent and the ledger checkpoint
// its client had checked (the first backup found the log empty).
func frozenSnapshots(t *testing.T, e *testEnv) []frozenSnapshot {
	t.Helper()
	var snaps []frozenSnapshot
	if out := e.must("snapshots", "--json").stdout; json.Unmarshal([]byte(out), &snaps) != nil || len(snaps) != 2 {
		t.Fatalf("snapshots --json printed %q, want two snapshots", out)
	}
	for i, sn := range snaps {
		tag := []string{"first", "second"}[i]
		if !slices.Equal(sn.Paths, []string{frozenSource}) || sn.Hostname != "frozen" || !slices.Equal(sn.Tags, []string{tag}) {
			t.Errorf("snapshot %d: paths %q, host %q, tags %q; want [%s], frozen, [%s]", i+1, sn.Paths, sn.Hostname, sn.Tags, frozenSource, tag)
		}
	}
	if snaps[0].Parent != "" || snaps[1].Parent != snaps[0].ID {
		t.Errorf("parents %q and %q, want none and %s", snaps[0].Parent, snaps[1].Parent, snaps[0].ID)
	}
	if snaps[0].Ledger != nil || snaps[1].Ledger == nil || snaps[1].Ledger.Size == 0 {
		t.Errorf("ledger checkpoints %+v and %+v, want none (the log was empty) and one", snaps[0].Ledger, snaps[1].Ledger)
	}
	return snaps
}

// checkFrozenLs requires ls --json's entries below frozenSource to be the
// golden listing's, in its order, with its types, modes, times, sizes and
// targets.
func checkFrozenLs(t *testing.T, entries []lsJSON, want []frozenEntry) {
	t.Helper()
	var got []lsJSON
	for _, e := range entries {
		if p := string(e.Path); p == frozenSource || strings.HasPrefix(p, frozenSource+"/") {
			got = append(got, e)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("ls lists %d entries in %s, want %d", len(got), frozenSource, len(want))
	}
	for i, w := range want {
		g := got[i]
		wantPath := filepath.Join(frozenSource, string(w.Path))
		wantSize := uint64(w.Size)
		mtime := time.Unix(w.MTime[0], w.MTime[1])
		if string(g.Path) != wantPath || g.Type != w.Type || g.Mode != w.Mode || g.Size != wantSize ||
			!g.MTime.Equal(mtime) || g.Target != w.Target {
			t.Errorf("ls entry %d: %q %s %s size %d %s target %q; want %q %s %s size %d %s target %q", i,
				g.Path, g.Type, g.Mode, g.Size, g.MTime.Format(time.RFC3339Nano), g.Target,
				wantPath, w.Type, w.Mode, wantSize, mtime.UTC().Format(time.RFC3339Nano), w.Target)
		}
	}
}

// checkFrozenTree requires the tree at root to hold exactly the golden
// listing's entries, each with its type, mode, modification time, size,
// content, symlink target and user.* xattrs, and hard links where the
// listing has them. Xattrs are not compared where the temporary
// directories' file system has none.
func checkFrozenTree(t *testing.T, root string, want []frozenEntry) {
	t.Helper()
	xattrs := supportsXattrs(t)
	listed := map[string]bool{}
	inodes := map[string]uint64{}
	for _, w := range want {
		rel := string(w.Path)
		listed[rel] = true
		p := filepath.Join(root, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Error(err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		inodes[rel] = st.Ino
		var diffs []string
		differ := func(what string, got, want any) {
			diffs = append(diffs, fmt.Sprintf("%s %v, want %v", what, got, want))
		}
		if got := kindName(fi.Mode()); got != w.Type {
			differ("type", got, w.Type)
		}
		if got := fmt.Sprintf("%04o", st.Mode&0o7777); got != w.Mode {
			differ("mode", got, w.Mode)
		}
		if got := [2]int64{st.Mtim.Sec, st.Mtim.Nsec}; got != w.MTime {
			differ("mtime", got, w.MTime)
		}
		switch w.Type {
		case "file":
			if fi.Size() != w.Size {
				differ("size", fi.Size(), w.Size)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Error(err)
				continue
			}
			if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != w.SHA256 {
				differ("sha256", hex.EncodeToString(sum[:]), w.SHA256)
			}
			if w.Link != "" && inodes[string(w.Link)] != st.Ino {
				differ("inode", st.Ino, fmt.Sprintf("that of %q, %d", w.Link, inodes[string(w.Link)]))
			}
		case "symlink":
			target, err := os.Readlink(p)
			if err != nil {
				t.Error(err)
				continue
			}
			if target != string(w.Target) {
				differ("target", fmt.Sprintf("%q", target), fmt.Sprintf("%q", w.Target))
			}
		}
		if xattrs && w.Type != "symlink" {
			got, err := testtree.UserXattrs(p)
			must(t, err)
			wantX := map[string]string{}
			for n, v := range w.XAttrs {
				wantX[n] = string(v)
			}
			if !maps.Equal(got, wantX) {
				differ("xattrs", fmt.Sprintf("%q", got), fmt.Sprintf("%q", wantX))
			}
		}
		for _, d := range diffs {
			t.Errorf("%q: %s", rel, d)
		}
	}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err == nil && !listed[rel] {
			t.Errorf("%q restored but not in the listing", rel)
		}
		return err
	})
	must(t, err)
}

// supportsXattrs reports whether the file system of t's temporary
// directories keeps user.* extended attributes.
func supportsXattrs(t *testing.T) bool {
	t.Helper()
	p := filepath.Join(t.TempDir(), "xattr-probe")
	must(t, os.WriteFile(p, nil, 0o600))
	err := unix.Setxattr(p, "user.kalaja.probe", []byte("1"), 0)
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
		t.Logf("the file system of %s keeps no user.* xattrs: not compared", p)
		return false
	}
	must(t, err)
	return true
}

// readGolden reads a golden listing, one JSON entry per line.
func readGolden(t *testing.T, path string) []frozenEntry {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	var out []frozenEntry
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	for dec.More() {
		var e frozenEntry
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, e)
	}
	if len(out) == 0 || out[0].Path != "." {
		t.Fatalf("%s: the listing does not start with the folder itself", path)
	}
	return out
}

// frozenConfig is the part of a repository's config the test checks.
type frozenConfig struct {
	Version int    `json:"version"`
	BlobID  string `json:"blob_id"`
}

func readFrozenConfig(t *testing.T, repo string) frozenConfig {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "config"))
	must(t, err)
	var c frozenConfig
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("config: %v", err)
	}
	return c
}

// unpack extracts the gzipped tar archive at archive, of directories and
// regular files only, to the new directory dir, with the archive's modes
// and modification times.
func unpack(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	must(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	must(t, err)
	tr := tar.NewReader(zr)
	must(t, os.Mkdir(dir, 0o700))
	var dirs []*tar.Header
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		if !filepath.IsLocal(h.Name) && filepath.Clean(h.Name) != "." {
			t.Fatalf("%s: entry %q outside the archive", archive, h.Name)
		}
		p := filepath.Join(dir, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				t.Fatal(err)
			}
			dirs = append(dirs, h)
			continue
		case tar.TypeReg:
			out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			must(t, err)
			_, err = io.Copy(out, tr)
			must(t, err)
			must(t, out.Close())
		default:
			t.Fatalf("%s: entry %q of type %c", archive, h.Name, h.Typeflag)
		}
		must(t, os.Chmod(p, h.FileInfo().Mode().Perm()))
		must(t, os.Chtimes(p, h.ModTime, h.ModTime))
	}
	// Directories last, deepest first, so their entries do not touch their
	// times again.
	for _, h := range slices.Backward(dirs) {
		p := filepath.Join(dir, h.Name)
		must(t, os.Chmod(p, h.FileInfo().Mode().Perm()))
		must(t, os.Chtimes(p, h.ModTime, h.ModTime))
	}
}

package testtree

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// generate fills a fresh temporary directory and makes sure the test's
// cleanup can remove it even without root.
func generate(t testing.TB, o Options) (string, Manifest) {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() {
		if err := MakeRemovable(dir); err != nil {
			t.Error(err)
		}
	})
	m, err := Generate(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return dir, m
}

func TestGenerateDeterministic(t *testing.T) {
	o := Options{Seed: 42, Devices: true}
	if testing.Short() {
		o.MaxFileSize = 256 << 10
	}
	a, ma := generate(t, o)
	b, mb := generate(t, o)
	if !reflect.DeepEqual(ma, mb) {
		t.Error("manifests differ for the same seed")
	}
	for _, d := range Compare(a, b, CompareOptions{Sparse: true}) {
		t.Error(d)
	}
}

func TestGenerateSeedMatters(t *testing.T) {
	o := Options{Seed: 1, Files: 50, MaxFileSize: 64 << 10}
	a, _ := generate(t, o)
	o.Seed = 2
	b, _ := generate(t, o)
	if len(Compare(a, b, CompareOptions{})) == 0 {
		t.Error("seeds 1 and 2 gave identical trees")
	}
}

func TestGenerateManifest(t *testing.T) {
	dir, m := generate(t, Options{Seed: 5, Devices: true})
	for _, s := range m.Skipped {
		t.Logf("skipped: %s", s)
	}
	skipped := func(feature string) bool {
		for _, s := range m.Skipped {
			if strings.HasPrefix(s, feature+":") {
				return true
			}
		}
		return false
	}

	listed := make(map[string]Kind)
	kinds := make(map[Kind]int)
	var longest string
	var invalid, name255 bool
	for _, e := range m.Entries {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, e.Path), &st); err != nil {
			t.Errorf("%q listed but: %v", e.Path, err)
			continue
		}
		if k := kindOf(st.Mode); k != e.Kind {
			t.Errorf("%q listed as %v, is %v", e.Path, e.Kind, k)
		}
		listed[e.Path] = e.Kind
		kinds[e.Kind]++
		if len(e.Path) > len(longest) {
			longest = e.Path
		}
		invalid = invalid || !utf8.ValidString(e.Path)
		name255 = name255 || len(filepath.Base(e.Path)) == 255
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		if _, ok := listed[filepath.ToSlash(p[len(dir)+1:])]; !ok {
			t.Errorf("%q exists but is not listed", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	wantKinds := []Kind{File, Dir, Symlink, FIFO}
	if !skipped("socket") {
		wantKinds = append(wantKinds, Socket)
	}
	if !skipped("devices") {
		wantKinds = append(wantKinds, CharDevice, BlockDevice)
	}
	for _, k := range wantKinds {
		if kinds[k] == 0 {
			t.Errorf("no %v made", k)
		}
	}
	if n := kinds[File]; n < 180 || n > 220 {
		t.Errorf("%d regular files, want about 200", n)
	}
	traits := map[Trait]string{Large: "", HardLink: "", SetID: "", Sparse: "sparse", XAttr: "xattrs", Owner: "owners"}
	for tr, feature := range traits {
		if feature != "" && skipped(feature) {
			continue
		}
		if len(m.Paths(tr)) == 0 {
			t.Errorf("no entry has trait %#x", tr)
		}
	}
	if got := len(m.Paths(HardLink)); got < 3 {
		t.Errorf("%d hard-linked names, want a group of 3 at least", got)
	}
	if len(longest) <= 1024 {
		t.Errorf("longest path is %d bytes, want > 1024", len(longest))
	}
	if !invalid {
		t.Error("no name is invalid UTF-8")
	}
	if !name255 {
		t.Error("no name is 255 bytes long")
	}
}

func TestGenerateTimes(t *testing.T) {
	dir, _ := generate(t, Options{Seed: 1, Files: 1, MaxFileSize: 1024})
	for rel, want := range map[string]time.Time{
		"times":                            time.Date(1965, 6, 15, 12, 0, 0, 987654321, time.UTC),
		"times/1901-12-13-int32-min":       time.Unix(-1<<31, 0),
		"times/1969-12-31-minus-1ns":       time.Unix(-1, 999999999),
		"times/2400-01-01-beyond-int64-ns": time.Date(2400, 1, 1, 0, 0, 0, 999999999, time.UTC),
		"links/mtime-2100":                 time.Date(2100, 1, 1, 0, 0, 0, 1, time.UTC),
	} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, rel), &st); err != nil {
			t.Fatal(err)
		}
		if got := time.Unix(st.Mtim.Sec, st.Mtim.Nsec); !got.Equal(want) {
			t.Errorf("%s: mtime %v, want %v (does this filesystem keep it?)", rel, got.UTC(), want)
		}
	}
}

func TestGenerateNotEmpty(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(dir, Options{}); err == nil {
		t.Error("Generate into a non-empty dir succeeded")
	}
	if _, err := Generate(filepath.Join(dir, "missing"), Options{}); err == nil {
		t.Error("Generate into a missing dir succeeded")
	}
}

// TestGenerateLongRoot checks the socket is made when its absolute path is
// longer than a sockaddr_un allows.
func TestGenerateLongRoot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("s", 120))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { MakeRemovable(dir) })
	m, err := Generate(dir, Options{Seed: 1, Files: 1, MaxFileSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "special/socket"), &st); err != nil || kindOf(st.Mode) != Socket {
		t.Errorf("no socket under a long root: %v; skipped %q", err, m.Skipped)
	}
}

func TestMakeRemovable(t *testing.T) {
	dir, _ := generate(t, Options{Seed: 1, Files: 1, MaxFileSize: 1024})
	if err := MakeRemovable(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "perms/readonly-0555"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %v after MakeRemovable, want 0755", fi.Mode().Perm())
	}
	if err := MakeRemovable(filepath.Join(dir, "missing")); err != nil {
		t.Errorf("missing dir: %v", err)
	}
}

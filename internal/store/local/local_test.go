package local_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/local"
	"github.com/kalaja/kalaja/internal/store/storetest"
)

func newLocal(t *testing.T) *local.Local {
	t.Helper()
	l, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return newLocal(t) })
}

var packName = blob.Hash([]byte("pack")).String()

func TestOpen(t *testing.T) {
	ctx := t.Context()
	l := newLocal(t)
	for _, root := range []string{l.Location(), filepath.Join(t.TempDir(), "missing")} {
		if _, err := local.Open(root); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Open(%s) without a config = %v, want blob.ErrNotFound", root, err)
		}
	}
	if err := l.Save(ctx, store.Handle{Type: store.Config}, []byte("config")); err != nil {
		t.Fatal(err)
	}
	o, err := local.Open(l.Location())
	if err != nil {
		t.Fatalf("Open after the config was saved: %v", err)
	}
	if _, err := o.Stat(ctx, store.Handle{Type: store.Config}); err != nil {
		t.Errorf("the opened store does not see the config: %v", err)
	}
}

func TestCreate(t *testing.T) {
	root := t.TempDir() // exists and is empty: allowed
	l, err := local.Create(root)
	if err != nil {
		t.Fatalf("Create in an empty directory: %v", err)
	}
	if _, err := local.Create(root); err != nil {
		t.Fatalf("Create again before a config is saved: %v", err)
	}
	if err := l.Save(t.Context(), store.Handle{Type: store.Config}, []byte("config")); err != nil {
		t.Fatal(err)
	}
	if _, err := local.Create(root); err == nil {
		t.Fatal("Create succeeded over an existing repository")
	}
	if b, err := l.Load(t.Context(), store.Handle{Type: store.Config}); err != nil || string(b) != "config" {
		t.Fatalf("the config after a refused Create = %q, %v", b, err)
	}
}

func TestLayout(t *testing.T) {
	ctx := t.Context()
	l := newLocal(t)
	keyName, indexName := blob.Hash([]byte("key")).String(), blob.Hash([]byte("index")).String()
	saves := map[store.Handle]string{
		{Type: store.Config}:                                               "config",
		{Type: store.Keys, Name: keyName}:                                  "keys/" + keyName,
		{Type: store.Packs, Name: packName}:                                "data/" + packName[:2] + "/" + packName,
		{Type: store.Index, Name: indexName}:                               "index/" + indexName,
		{Type: store.Snapshots, Name: packName}:                            "snapshots/" + packName,
		{Type: store.LedgerEntries, Name: "00000000000000000000"}:          "ledger/entries/00000000000000000000",
		{Type: store.LedgerTiles, Name: "0-0.p3"}:                          "ledger/tiles/0-0.p3",
		{Type: store.LedgerCheckpoints, Name: "00000000000000000003"}:      "ledger/checkpoints/00000000000000000003",
		{Type: store.LedgerWitness, Name: "00000000000000000003.0123abcd"}: "ledger/witness/00000000000000000003.0123abcd",
		{Type: store.LedgerKeys, Name: "verifier"}:                         "ledger/keys/verifier",
	}
	for h, rel := range saves {
		if err := l.Save(ctx, h, []byte(rel)); err != nil {
			t.Fatalf("Save(%v): %v", h, err)
		}
		b, err := os.ReadFile(filepath.Join(l.Location(), rel))
		if err != nil || string(b) != rel {
			t.Errorf("%v is not stored at %s: %q, %v", h, rel, b, err)
		}
	}
}

// TestListSkipsStrays plants files the store never writes: List reports
// none of them, only the objects Load can read.
func TestListSkipsStrays(t *testing.T) {
	ctx := t.Context()
	l := newLocal(t)
	h := store.Handle{Type: store.Packs, Name: packName}
	if err := l.Save(ctx, h, []byte("pack")); err != nil {
		t.Fatal(err)
	}
	other := blob.Hash([]byte("other")).String()
	strays := []string{
		"data/" + packName[:2] + "/.hidden",
		"data/" + packName[:2] + "/" + strings.ToUpper(other),
		"data/" + packName[:2] + "/" + other, // in the wrong fan-out folder
		"data/zz/" + other,
		"index/latest",
		"index/" + other + ".tmp",
		"ledger/tiles/0-01",
	}
	for _, rel := range strays {
		p := filepath.Join(l.Location(), rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("stray"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, ft := range store.Listable {
		err := l.List(ctx, ft, func(fi store.FileInfo) error {
			if ft != h.Type || fi.Name != h.Name {
				t.Errorf("List(%s) reports %s", ft, fi.Name)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// tmpFiles returns the names in the store's tmp/ directory.
func tmpFiles(t *testing.T, l *local.Local) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(l.Location(), "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestSaveLeavesNoTemp(t *testing.T) {
	ctx := t.Context()
	l := newLocal(t)
	h := store.Handle{Type: store.Packs, Name: packName}
	if err := l.Save(ctx, h, []byte("first")); err != nil {
		t.Fatal(err)
	}
	if err := l.Save(ctx, h, []byte("second")); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second Save = %v, want store.ErrExists", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.Save(cancelled, store.Handle{Type: store.Index, Name: "i"}, []byte("x")); err == nil {
		t.Fatal("Save with a cancelled context succeeded")
	}
	if names := tmpFiles(t, l); len(names) != 0 {
		t.Fatalf("tmp/ holds %v after saves returned", names)
	}
}

// A writer that crashes before its rename leaves a file in tmp/ and no
// object: the leftover is invisible to every reader.
func TestCrashLeavesOnlyTemp(t *testing.T) {
	ctx := t.Context()
	l := newLocal(t)
	f, err := os.CreateTemp(filepath.Join(l.Location(), "tmp"), "data-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("half a pa"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, ft := range []store.FileType{store.Keys, store.Packs, store.Index, store.Snapshots} {
		if err := l.List(ctx, ft, func(fi store.FileInfo) error {
			t.Errorf("List(%s) reports %s, want nothing", ft, fi.Name)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Stat(ctx, store.Handle{Type: store.Packs, Name: filepath.Base(f.Name())}); !errors.Is(err, store.ErrInvalidHandle) {
		t.Errorf("Stat of the leftover's name = %v, want store.ErrInvalidHandle", err)
	}
}

func TestCleanTemp(t *testing.T) {
	l := newLocal(t)
	dir := filepath.Join(l.Location(), "tmp")
	now := time.Now()
	ages := map[string]time.Duration{
		"data-old":    48 * time.Hour,
		"index-old":   2 * time.Hour,
		"data-young":  time.Minute,
		"keys-future": -time.Hour,
	}
	for name, age := range ages {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(name), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	// A writer still at work: its file is old but locked.
	live, err := l.Stage(store.Packs)
	if err != nil {
		t.Fatal(err)
	}
	live.Write([]byte("in progress"))
	var livePath string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if _, ok := ages[e.Name()]; !ok {
			livePath = filepath.Join(dir, e.Name())
		}
	}
	if err := os.Chtimes(livePath, now.Add(-48*time.Hour), now.Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := l.CleanTemp(time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(livePath); err != nil {
		t.Errorf("CleanTemp removed the file of a live writer: %v", err)
	}
	live.Abort()
	for name, age := range ages {
		_, err := os.Stat(filepath.Join(dir, name))
		switch {
		case age > time.Hour && !errors.Is(err, fs.ErrNotExist):
			t.Errorf("%s (age %v) survived CleanTemp(1h): %v", name, age, err)
		case age <= time.Hour && err != nil:
			t.Errorf("%s (age %v) was removed by CleanTemp(1h): %v", name, age, err)
		}
	}
}

// Repositories hold key files and sealed data: nothing in one may be readable
// by other users.
func TestPermissions(t *testing.T) {
	ctx := t.Context()
	l := newLocal(t)
	// A pack whose fan-out folder is missing makes it.
	onDemand := blob.Hash([]byte("on demand")).String()
	if err := os.Remove(filepath.Join(l.Location(), "data", onDemand[:2])); err != nil {
		t.Fatal(err)
	}
	for _, h := range []store.Handle{
		{Type: store.Config},
		{Type: store.Keys, Name: packName},
		{Type: store.Packs, Name: packName},
		{Type: store.Packs, Name: onDemand},
	} {
		if err := l.Save(ctx, h, []byte("secret")); err != nil {
			t.Fatal(err)
		}
	}
	err := filepath.WalkDir(l.Location(), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %v, want %v", p, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

package store_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/storetest"
)

func TestCheck(t *testing.T) {
	for _, h := range storetest.ValidHandles() {
		if err := h.Check(); err != nil {
			t.Errorf("Check(%q, %q) = %v, want nil", h.Type, h.Name, err)
		}
	}
	for _, h := range storetest.InvalidHandles() {
		if err := h.Check(); !errors.Is(err, store.ErrInvalidHandle) {
			t.Errorf("Check(%q, %q) = %v, want store.ErrInvalidHandle", h.Type, h.Name, err)
		}
	}
}

func TestContentAddressed(t *testing.T) {
	for _, ft := range append([]store.FileType{store.Config}, store.Listable...) {
		want := ft == store.Packs || ft == store.Index || ft == store.Snapshots || ft == store.LedgerRemovals
		if got := ft.ContentAddressed(); got != want {
			t.Errorf("%s.ContentAddressed() = %v, want %v", ft, got, want)
		}
	}
}

// FuzzCheck checks that every name Check accepts is short, plain ASCII a
// file system, a URL path and an object key take literally: no
// separator, no dot-dot, no hidden file, no byte outside [0-9a-z.-].
func FuzzCheck(f *testing.F) {
	for _, h := range storetest.ValidHandles() {
		f.Add(string(h.Type), h.Name)
	}
	for _, s := range []string{"..", "0-1.p3\n", "0-0.p0", "00000000000000000007.0123ABCD", "a/b"} {
		f.Add(string(store.LedgerTiles), s)
	}
	f.Fuzz(func(t *testing.T, typ, name string) {
		h := store.Handle{Type: store.FileType(typ), Name: name}
		err := h.Check()
		if err != nil {
			if !errors.Is(err, store.ErrInvalidHandle) {
				t.Fatalf("Check(%q, %q) = %v, which does not wrap ErrInvalidHandle", typ, name, err)
			}
			return
		}
		if h.Type == store.Config {
			if name != "" {
				t.Fatalf("Check accepted config with name %q", name)
			}
			return
		}
		if name == "" || len(name) > 64 || name[0] == '.' || strings.Contains(name, "..") ||
			strings.Trim(name, "0123456789abcdefghijklmnopqrstuvwxyz.-") != "" {
			t.Fatalf("Check accepted %s name %q", typ, name)
		}
	})
}

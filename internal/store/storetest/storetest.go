// Package storetest is the conformance suite every store.Store implementation
// and every decorator runs from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return newStore(t) })
//	}
//
// The suite checks the contracts written in package store: round trips of
// every object type, that Save never overwrites (also under concurrent Saves
// of one name, which must never tear an object), that missing objects are
// reported with blob.ErrNotFound, that short reads are io.ErrUnexpectedEOF,
// that List reports exactly what was saved, that every handle of the attack
// table (InvalidHandles) is refused with store.ErrInvalidHandle in every
// operation and every handle of ValidHandles is accepted (so that all
// stores, and the server, accept exactly the names of store.Handle.Check),
// and that a cancelled Save leaves no
// object, and that List and Stat stamp an object with the time it was
// saved. It also asks stores to refuse object types they do not know.
//
// store.Store has no Delete, so there is nothing to test for it: code that
// gets a Store cannot remove objects, which the compiler checks. If a store
// also implements store.Remover, Run tests Remove as well.
package storetest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/store"
)

// named are the object types whose objects have names; Config has none.
var named = []store.FileType{store.Keys, store.Packs, store.Index, store.Snapshots}

var allTypes = append([]store.FileType{store.Config}, named...)

// Run runs the conformance suite as subtests of t. newStore must return an
// empty store, a fresh one for every call; it is called once per subtest and
// may use t for cleanup. Subtests do not run in parallel with each other;
// testing.Short drops the large objects and shrinks the concurrency tests.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, func(*testing.T) store.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"NoOverwrite", testNoOverwrite},
		{"NotFound", testNotFound},
		{"ReadAt", testReadAt},
		{"List", testList},
		{"ListStops", testListStops},
		{"InvalidHandle", testInvalidHandle},
		{"ValidHandles", testValidHandles},
		{"ConcurrentDistinct", testConcurrentDistinct},
		{"ConcurrentSameName", testConcurrentSameName},
		{"CancelledSave", testCancelledSave},
		{"Remove", testRemove},
		{"Stage", testStage},
		{"Stamp", testStamp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newStore) })
	}
}

// handle returns a handle of type ft; config ignores i.
func handle(ft store.FileType, i int) store.Handle {
	if ft == store.Config {
		return store.Handle{Type: store.Config}
	}
	return store.Handle{Type: ft, Name: id(ft, i)}
}

// id returns a name shaped like the object IDs repositories use.
func id(ft store.FileType, i int) string {
	return blob.Hash(fmt.Appendf(nil, "%s %d", ft, i)).String()
}

// content returns n bytes determined by seed.
func content(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

func testRoundTrip(t *testing.T, newStore func(*testing.T) store.Store) {
	ctx := t.Context()
	sizes := []int{0, 1, 4096}
	if !testing.Short() {
		sizes = append(sizes, 1<<20+3)
	}
	for _, ft := range allTypes {
		for _, size := range sizes {
			t.Run(fmt.Sprintf("%s/%d", ft, size), func(t *testing.T) {
				s := newStore(t)
				h := handle(ft, size)
				want := content(uint64(size), size)
				data := bytes.Clone(want)
				if err := s.Save(ctx, h, data); err != nil {
					t.Fatalf("Save(%v): %v", h, err)
				}
				// The store must not keep the caller's slice.
				clear(data)

				got, err := s.Load(ctx, h)
				if err != nil {
					t.Fatalf("Load(%v): %v", h, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("Load(%v) returned %d bytes that differ from the %d saved", h, len(got), len(want))
				}
				// Nor share its own copy with callers.
				clear(got)
				if again, _ := s.Load(ctx, h); !bytes.Equal(again, want) {
					t.Fatalf("Load(%v) changed after the caller wrote to a previous result", h)
				}

				p := make([]byte, size)
				if err := s.ReadAt(ctx, h, p, 0); err != nil {
					t.Fatalf("ReadAt(%v, whole): %v", h, err)
				}
				if !bytes.Equal(p, want) {
					t.Fatalf("ReadAt(%v, whole) differs from the saved bytes", h)
				}

				fi, err := s.Stat(ctx, h)
				if err != nil {
					t.Fatalf("Stat(%v): %v", h, err)
				}
				if fi.Name != h.Name || fi.Size != int64(size) {
					t.Fatalf("Stat(%v) = %+v, want {Name:%q Size:%d}", h, fi, h.Name, size)
				}

				if ft == store.Config {
					return
				}
				got2 := list(t, s, ft)
				if len(got2) != 1 || got2[h.Name] != int64(size) {
					t.Fatalf("List(%s) = %v, want just %s of size %d", ft, got2, h.Name, size)
				}
			})
		}
	}
}

func testNoOverwrite(t *testing.T, newStore func(*testing.T) store.Store) {
	ctx := t.Context()
	for _, ft := range allTypes {
		t.Run(string(ft), func(t *testing.T) {
			s := newStore(t)
			h := handle(ft, 1)
			first, second := content(1, 100), content(2, 200)
			if err := s.Save(ctx, h, first); err != nil {
				t.Fatalf("first Save(%v): %v", h, err)
			}
			for _, data := range [][]byte{second, first} {
				if err := s.Save(ctx, h, data); !errors.Is(err, store.ErrExists) {
					t.Fatalf("second Save(%v) = %v, want an error wrapping store.ErrExists", h, err)
				}
			}
			got, err := s.Load(ctx, h)
			if err != nil {
				t.Fatalf("Load(%v): %v", h, err)
			}
			if !bytes.Equal(got, first) {
				t.Fatalf("Load(%v) after a refused Save does not return the first bytes", h)
			}
			if ft != store.Config {
				if got := list(t, s, ft); len(got) != 1 {
					t.Fatalf("List(%s) after a refused Save = %v, want one object", ft, got)
				}
			}
		})
	}
}

func testNotFound(t *testing.T, newStore func(*testing.T) store.Store) {
	ctx := t.Context()
	s := newStore(t)
	// One object of each type exists, so the misses are not about an
	// empty directory or bucket.
	for _, ft := range named {
		if err := s.Save(ctx, handle(ft, 0), []byte("present")); err != nil {
			t.Fatal(err)
		}
	}
	for _, ft := range allTypes {
		h := handle(ft, 1)
		t.Run(string(ft), func(t *testing.T) {
			if _, err := s.Load(ctx, h); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("Load(%v) = %v, want blob.ErrNotFound", h, err)
			}
			if err := s.ReadAt(ctx, h, make([]byte, 1), 0); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("ReadAt(%v) = %v, want blob.ErrNotFound", h, err)
			}
			if err := s.ReadAt(ctx, h, nil, 0); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("ReadAt(%v, empty buffer) = %v, want blob.ErrNotFound", h, err)
			}
			if _, err := s.Stat(ctx, h); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("Stat(%v) = %v, want blob.ErrNotFound", h, err)
			}
		})
	}
}

func testReadAt(t *testing.T, newStore func(*testing.T) store.Store) {
	ctx := t.Context()
	s := newStore(t)
	const size = 1000
	data := content(7, size)
	h := handle(store.Packs, 0)
	if err := s.Save(ctx, h, data); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		off, n int64
		ok     bool
	}{
		{"whole", 0, size, true},
		{"first byte", 0, 1, true},
		{"last byte", size - 1, 1, true},
		{"middle", 100, 200, true},
		{"empty at end", size, 0, true},
		{"one past end", size - 1, 2, false},
		{"at end", size, 1, false},
		{"beyond end", size + 10, 1, false},
		{"longer than object", 0, size + 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := make([]byte, tt.n)
			err := s.ReadAt(ctx, h, p, tt.off)
			if !tt.ok {
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("ReadAt(off %d, len %d) = %v, want io.ErrUnexpectedEOF", tt.off, tt.n, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadAt(off %d, len %d): %v", tt.off, tt.n, err)
			}
			if !bytes.Equal(p, data[tt.off:tt.off+tt.n]) {
				t.Fatalf("ReadAt(off %d, len %d) returned other bytes", tt.off, tt.n)
			}
		})
	}
	t.Run("negative offset", func(t *testing.T) {
		if err := s.ReadAt(ctx, h, make([]byte, 1), -1); err == nil {
			t.Fatal("ReadAt at offset -1 succeeded")
		}
	})
}

// list returns name -> size of every object of type ft.
func list(t *testing.T, s store.Store, ft store.FileType) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	err := s.List(t.Context(), ft, func(fi store.FileInfo) error {
		if _, dup := got[fi.Name]; dup {
			t.Errorf("List(%s) reported %s twice", ft, fi.Name)
		}
		got[fi.Name] = fi.Size
		return nil
	})
	if err != nil {
		t.Fatalf("List(%s): %v", ft, err)
	}
	return got
}

func testList(t *testing.T, newStore func(*testing.T) store.Store) {
	ctx := t.Context()
	s := newStore(t)
	if err := s.Save(ctx, handle(store.Config, 0), []byte("config")); err != nil {
		t.Fatal(err)
	}
	want := map[store.FileType]map[string]int64{}
	for k, ft := range named {
		want[ft] = map[string]int64{}
		// Packs get names spread over many fan-out prefixes.
		n := 5 + 20*k
		for i := range n {
			name := id(ft, i)
			data := content(uint64(i), i*3)
			if err := s.Save(ctx, store.Handle{Type: ft, Name: name}, data); err != nil {
				t.Fatalf("Save(%s/%s): %v", ft, name, err)
			}
			want[ft][name] = int64(len(data))
		}
	}
	for _, ft := range named {
		t.Run(string(ft), func(t *testing.T) {
			got := list(t, s, ft)
			for name, size := range want[ft] {
				if gs, ok := got[name]; !ok {
					t.Errorf("List(%s) misses %s", ft, name)
				} else if gs != size {
					t.Errorf("List(%s) reports %s of size %d, want %d", ft, name, gs, size)
				}
			}
			for name := range got {
				if _, ok := want[ft][name]; !ok {
					t.Errorf("List(%s) reports %s, which was not saved as %s", ft, name, ft)
				}
			}
		})
	}
	t.Run("empty", func(t *testing.T) {
		if got := list(t, newStore(t), store.Snapshots); len(got) != 0 {
			t.Fatalf("List of a new store = %v, want nothing", got)
		}
	})
}

func testListStops(t *testing.T, newStore func(*testing.T) store.Store) {
	ctx := t.Context()
	s := newStore(t)
	for i := range 3 {
		if err := s.Save(ctx, handle(store.Index, i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	stop := errors.New("stop")
	calls := 0
	err := s.List(ctx, store.Index, func(store.FileInfo) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) {
		t.Errorf("List = %v, want the callback's error", err)
	}
	if calls != 1 {
		t.Errorf("List called the callback %d times after it failed, want 1", calls)
	}
}

// testInvalidHandle checks that the store refuses every handle of the
// attack table (InvalidHandles) in every operation, with an error wrapping
// store.ErrInvalidHandle, and stores nothing.
func testInvalidHandle(t *testing.T, newStore func(*testing.T) store.Store) {
	ctx := t.Context()
	s := newStore(t)
	rm, _ := s.(store.Remover)
	st, _ := s.(store.Stager)
	refused := func(op string, h store.Handle, err error) {
		t.Helper()
		if !errors.Is(err, store.ErrInvalidHandle) {
			t.Errorf("%s(%q, %q) = %v, want an error wrapping store.ErrInvalidHandle", op, h.Type, h.Name, err)
		}
	}
	for _, h := range InvalidHandles() {
		refused("Save", h, s.Save(ctx, h, []byte("x")))
		_, err := s.Load(ctx, h)
		refused("Load", h, err)
		refused("ReadAt", h, s.ReadAt(ctx, h, make([]byte, 1), 0))
		_, err = s.Stat(ctx, h)
		refused("Stat", h, err)
		if rm != nil {
			refused("Remove", h, rm.Remove(ctx, h))
		}
		if st != nil && h.Type.Check() == nil && h.Type != store.Config {
			staged, err := st.Stage(h.Type)
			if err != nil {
				t.Fatalf("Stage(%s): %v", h.Type, err)
			}
			if _, err := staged.Write([]byte("x")); err != nil {
				t.Fatalf("Stage(%s).Write: %v", h.Type, err)
			}
			refused("Commit", h, staged.Commit(ctx, h.Name))
		}
	}
	for _, ft := range []store.FileType{"", store.Config, "tmp", "..", "../data", "unknown", "data/", "ledger"} {
		refused("List", store.Handle{Type: ft}, s.List(ctx, ft, func(store.FileInfo) error { return nil }))
		if st != nil && ft != store.Config {
			_, err := st.Stage(ft)
			refused("Stage", store.Handle{Type: ft}, err)
		}
	}
	for _, ft := range store.Listable {
		if got := list(t, s, ft); len(got) != 0 {
			t.Errorf("List(%s) after refused handles = %v, want nothing", ft, got)
		}
	}
}

// testValidHandles checks that the store accepts every handle of
// ValidHandles: each is saved, read, described and listed.
func testValidHandles(t *testing.T, newStore func(*testing.T) store.Store) {
	ctx := t.Context()
	s := newStore(t)
	want := map[store.FileType]map[string]int64{}
	for _, h := range ValidHandles() {
		data := []byte(h.String())
		if err := s.Save(ctx, h, data); err != nil {
			t.Errorf("Save(%q, %q): %v", h.Type, h.Name, err)
			continue
		}
		if got, err := s.Load(ctx, h); err != nil || !bytes.Equal(got, data) {
			t.Errorf("Load(%q, %q) = %q, %v; want %q", h.Type, h.Name, got, err, data)
		}
		if fi, err := s.Stat(ctx, h); err != nil || fi.Size != int64(len(data)) {
			t.Errorf("Stat(%q, %q) = %+v, %v", h.Type, h.Name, fi, err)
		}
		if h.Type != store.Config {
			if want[h.Type] == nil {
				want[h.Type] = map[string]int64{}
			}
			want[h.Type][h.Name] = int64(len(data))
		}
	}
	for ft, names := range want {
		if got := list(t, s, ft); !maps.Equal(got, names) {
			t.Errorf("List(%s) = %v, want %v", ft, got, names)
		}
	}
}

// workers returns how many goroutines and objects per goroutine the
// concurrency tests use.
func workers() (goroutines, each int) {
	if testing.Short() {
		return 4, 4
	}
	return 16, 16
}

func testConcurrentDistinct(t *testing.T, newStore func(*testing.T) store.Store) {
	ctx := t.Context()
	s := newStore(t)
	g, each := workers()
	var wg sync.WaitGroup
	errs := make(chan error, g*each)
	for w := range g {
		wg.Go(func() {
			for i := range each {
				n := w*each + i
				h := handle(named[n%len(named)], n)
				if err := s.Save(ctx, h, content(uint64(n), 1000+n)); err != nil {
					errs <- fmt.Errorf("Save(%v): %w", h, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	counts := map[store.FileType]int{}
	for n := range g * each {
		h := handle(named[n%len(named)], n)
		counts[h.Type]++
		got, err := s.Load(ctx, h)
		if err != nil {
			t.Fatalf("Load(%v): %v", h, err)
		}
		if !bytes.Equal(got, content(uint64(n), 1000+n)) {
			t.Fatalf("Load(%v) returned other bytes", h)
		}
	}
	for ft, n := range counts {
		if got := list(t, s, ft); len(got) != n {
			t.Errorf("List(%s) reports %d objects, want %d", ft, len(got), n)
		}
	}
}

func testConcurrentSameName(t *testing.T, newStore func(*testing.T) store.Store) {
	ctx := t.Context()
	s := newStore(t)
	g, _ := workers()
	h := handle(store.Packs, 0)
	candidates := make([][]byte, g)
	for i := range candidates {
		candidates[i] = content(uint64(i), 256<<10)
	}
	isCandidate := func(b []byte) bool {
		for _, c := range candidates {
			if bytes.Equal(b, c) {
				return true
			}
		}
		return false
	}

	// Readers load the object while the writers race; every read sees no
	// object or one candidate in full.
	done := make(chan struct{})
	torn := make(chan error, 4)
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				b, err := s.Load(ctx, h)
				if errors.Is(err, blob.ErrNotFound) {
					continue
				}
				if err == nil && !isCandidate(b) {
					err = fmt.Errorf("a concurrent Load returned %d bytes that are not one candidate", len(b))
				}
				if err != nil {
					torn <- err
					return
				}
			}
		})
	}

	results := make([]error, g)
	var writers sync.WaitGroup
	for i := range g {
		writers.Go(func() { results[i] = s.Save(ctx, h, candidates[i]) })
	}
	writers.Wait()
	close(done)
	readers.Wait()
	close(torn)
	for err := range torn {
		t.Error(err)
	}

	winners := 0
	for i, err := range results {
		switch {
		case err == nil:
			winners++
		case !errors.Is(err, store.ErrExists):
			t.Errorf("Save %d = %v, want nil or store.ErrExists", i, err)
		}
	}
	if winners != 1 {
		t.Errorf("%d of %d concurrent Saves of one name succeeded, want exactly 1", winners, g)
	}
	got, err := s.Load(ctx, h)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !isCandidate(got) {
		t.Fatal("the object is not one candidate in full")
	}
	if got := list(t, s, store.Packs); len(got) != 1 {
		t.Fatalf("List(data) = %d objects, want 1", len(got))
	}
}

func testCancelledSave(t *testing.T, newStore func(*testing.T) store.Store) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, ft := range allTypes {
		h := handle(ft, 0)
		if err := s.Save(ctx, h, []byte("never")); !errors.Is(err, context.Canceled) {
			t.Errorf("Save(%v) with a cancelled context = %v, want context.Canceled", h, err)
		}
		if _, err := s.Stat(t.Context(), h); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Stat(%v) after a cancelled Save = %v, want blob.ErrNotFound", h, err)
		}
	}
}

func testRemove(t *testing.T, newStore func(*testing.T) store.Store) {
	ctx := t.Context()
	s := newStore(t)
	rm, ok := s.(store.Remover)
	if !ok {
		t.Skip("the store does not implement store.Remover")
	}
	for _, ft := range allTypes {
		t.Run(string(ft), func(t *testing.T) {
			h, other := handle(ft, 0), handle(ft, 1)
			if err := s.Save(ctx, h, []byte("doomed")); err != nil {
				t.Fatal(err)
			}
			if ft != store.Config {
				if err := s.Save(ctx, other, []byte("kept")); err != nil {
					t.Fatal(err)
				}
			}
			if err := rm.Remove(ctx, h); err != nil {
				t.Fatalf("Remove(%v): %v", h, err)
			}
			if _, err := s.Load(ctx, h); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("Load(%v) after Remove = %v, want blob.ErrNotFound", h, err)
			}
			if _, err := s.Stat(ctx, h); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("Stat(%v) after Remove = %v, want blob.ErrNotFound", h, err)
			}
			if err := rm.Remove(ctx, h); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("second Remove(%v) = %v, want blob.ErrNotFound", h, err)
			}
			if ft != store.Config {
				if got := list(t, s, ft); len(got) != 1 || got[other.Name] == 0 {
					t.Errorf("List(%s) after Remove = %v, want just %s", ft, got, other.Name)
				}
			}
			// A removed name can be saved again.
			if err := s.Save(ctx, h, []byte("again")); err != nil {
				t.Errorf("Save(%v) after Remove: %v", h, err)
			}
		})
	}
}

func testStage(t *testing.T, newStore func(*testing.T) store.Store) {
	ctx := t.Context()
	s := newStore(t)
	st, ok := s.(store.Stager)
	if !ok {
		t.Skip("the store does not implement store.Stager")
	}
	data := content(7, 100_003)
	h := handle(store.Packs, 0)

	staged, err := st.Stage(store.Packs)
	if err != nil {
		t.Fatal(err)
	}
	for p := data; len(p) > 0; p = p[min(len(p), 4096):] {
		if _, err := staged.Write(p[:min(len(p), 4096)]); err != nil {
			t.Fatal(err)
		}
	}
	if got := list(t, s, store.Packs); len(got) != 0 {
		t.Fatalf("a staged object is listed before Commit: %v", got)
	}
	if err := staged.Commit(ctx, h.Name); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Load(ctx, h); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Load after Commit: %d bytes, %v", len(got), err)
	}

	again, err := st.Stage(store.Packs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.Write([]byte("other bytes")); err != nil {
		t.Fatal(err)
	}
	if err := again.Commit(ctx, h.Name); !errors.Is(err, store.ErrExists) {
		t.Fatalf("Commit over an existing object: %v, want store.ErrExists", err)
	}
	if got, _ := s.Load(ctx, h); !bytes.Equal(got, data) {
		t.Fatal("Commit replaced an existing object")
	}

	aborted, err := st.Stage(store.Packs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := aborted.Write([]byte("never stored")); err != nil {
		t.Fatal(err)
	}
	aborted.Abort()
	if got := list(t, s, store.Packs); len(got) != 1 {
		t.Fatalf("after Abort the store lists %v", got)
	}
	if _, err := st.Stage("no such type"); !errors.Is(err, store.ErrInvalidHandle) {
		t.Fatalf("Stage of an unknown type = %v, want store.ErrInvalidHandle", err)
	}
}

// stampSlack is how far a stamp may be from the time of the Save that
// made it: file system timestamps are coarse, and an object store's
// clock is not the test's.
const stampSlack = 5 * time.Second

// testStamp checks that Stat and List report when an object was saved,
// by the store's clock.
func testStamp(t *testing.T, newStore func(*testing.T) store.Store) {
	ctx := t.Context()
	s := newStore(t)
	check := func(op string, h store.Handle, stamp, before, after time.Time) {
		t.Helper()
		if stamp.Before(before.Add(-stampSlack)) || stamp.After(after.Add(stampSlack)) {
			t.Errorf("%s(%v).Stamp = %v, want between %v and %v (within %v)", op, h, stamp, before, after, stampSlack)
		}
	}
	for _, ft := range allTypes {
		t.Run(string(ft), func(t *testing.T) {
			h := handle(ft, 0)
			before := time.Now()
			if err := s.Save(ctx, h, []byte("stamped")); err != nil {
				t.Fatal(err)
			}
			after := time.Now()
			fi, err := s.Stat(ctx, h)
			if err != nil {
				t.Fatalf("Stat(%v): %v", h, err)
			}
			check("Stat", h, fi.Stamp, before, after)
			if ft == store.Config {
				return
			}
			n := 0
			err = s.List(ctx, ft, func(fi store.FileInfo) error {
				n++
				check("List", h, fi.Stamp, before, after)
				return nil
			})
			if err != nil || n != 1 {
				t.Fatalf("List(%s): %d objects, %v", ft, n, err)
			}
		})
	}
}

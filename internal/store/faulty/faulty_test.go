package faulty_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/faulty"
	"github.com/kalaja/kalaja/internal/store/local"
	"github.com/kalaja/kalaja/internal/store/storetest"
)

func newInner(t *testing.T) store.Store {
	t.Helper()
	l, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return faulty.New(newInner(t)) })
}

func TestConformanceUnmatchedFaults(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return faulty.New(newInner(t),
			faulty.Fault{Name: "no such object"},
			faulty.Fault{Op: faulty.OpSave, Kind: faulty.Flip},
		)
	})
}

var (
	pack  = store.Handle{Type: store.Packs, Name: blob.Hash([]byte("pack")).String()}
	pack2 = store.Handle{Type: store.Packs, Name: blob.Hash([]byte("pack2")).String()}
	index = store.Handle{Type: store.Index, Name: blob.Hash([]byte("index")).String()}
	data  = []byte("0123456789")
)

// flip returns data with the lowest bit of byte i flipped.
func flip(i int) []byte {
	b := bytes.Clone(data)
	b[i] ^= 1
	return b
}

func TestFaults(t *testing.T) {
	custom := errors.New("disk on fire")
	tests := []struct {
		name   string
		faults []faulty.Fault
		// stored is saved through the wrapped store before the test runs.
		stored []store.Handle
		run    func(t *testing.T, s *faulty.Store, inner store.Store)
		fired  int
	}{
		{
			name:   "nth save fails and stores nothing",
			faults: []faulty.Fault{{Op: faulty.OpSave, Nth: 2}},
			run: func(t *testing.T, s *faulty.Store, inner store.Store) {
				mustSave(t, s, pack)
				if err := s.Save(t.Context(), pack2, data); !errors.Is(err, faulty.ErrInjected) {
					t.Fatalf("second Save = %v, want faulty.ErrInjected", err)
				}
				mustSave(t, s, index)
				mustMiss(t, inner, pack2)
				if n := s.Calls(faulty.OpSave); n != 3 {
					t.Errorf("Calls(Save) = %d, want 3", n)
				}
			},
			fired: 1,
		},
		{
			name:   "saves of one type fail",
			faults: []faulty.Fault{{Op: faulty.OpSave, Type: store.Index, Err: custom}},
			run: func(t *testing.T, s *faulty.Store, inner store.Store) {
				mustSave(t, s, pack)
				for range 2 {
					if err := s.Save(t.Context(), index, data); !errors.Is(err, custom) {
						t.Fatalf("Save(index) = %v, want the fault's error", err)
					}
				}
				mustMiss(t, inner, index)
			},
			fired: 2,
		},
		{
			name:   "save fails after storing",
			faults: []faulty.Fault{{Op: faulty.OpSave, Kind: faulty.FailAfter}},
			run: func(t *testing.T, s *faulty.Store, inner store.Store) {
				if err := s.Save(t.Context(), pack, data); !errors.Is(err, faulty.ErrInjected) {
					t.Fatalf("Save = %v, want faulty.ErrInjected", err)
				}
				mustLoad(t, inner, pack, data)
				if err := s.Save(t.Context(), pack, data); !errors.Is(err, store.ErrExists) {
					t.Fatalf("retried Save = %v, want store.ErrExists from the wrapped store", err)
				}
			},
			fired: 1,
		},
		{
			name:   "torn save",
			faults: []faulty.Fault{{Kind: faulty.Torn}},
			run: func(t *testing.T, s *faulty.Store, inner store.Store) {
				if err := s.Save(t.Context(), pack, data); !errors.Is(err, faulty.ErrInjected) {
					t.Fatalf("Save = %v, want faulty.ErrInjected", err)
				}
				mustLoad(t, inner, pack, data[:len(data)/2])
			},
			fired: 1,
		},
		{
			name:   "load and readat of one object fail",
			faults: []faulty.Fault{{Op: faulty.OpLoad, Name: pack.Name}, {Op: faulty.OpReadAt, Name: pack.Name}},
			stored: []store.Handle{pack, pack2},
			run: func(t *testing.T, s *faulty.Store, inner store.Store) {
				if _, err := s.Load(t.Context(), pack); !errors.Is(err, faulty.ErrInjected) {
					t.Errorf("Load = %v, want faulty.ErrInjected", err)
				}
				if err := s.ReadAt(t.Context(), pack, make([]byte, 2), 0); !errors.Is(err, faulty.ErrInjected) {
					t.Errorf("ReadAt = %v, want faulty.ErrInjected", err)
				}
				mustLoad(t, s, pack2, data)
			},
			fired: 2,
		},
		{
			name:   "load fails after reading",
			faults: []faulty.Fault{{Op: faulty.OpLoad, Kind: faulty.FailAfter, Err: blob.ErrCorrupt}},
			stored: []store.Handle{pack},
			run: func(t *testing.T, s *faulty.Store, inner store.Store) {
				if _, err := s.Load(t.Context(), pack); !errors.Is(err, blob.ErrCorrupt) {
					t.Errorf("Load = %v, want the fault's error", err)
				}
			},
			fired: 1,
		},
		{
			name:   "flip first byte",
			faults: []faulty.Fault{{Name: pack.Name, Kind: faulty.Flip}},
			stored: []store.Handle{pack, pack2},
			run: func(t *testing.T, s *faulty.Store, inner store.Store) {
				mustLoad(t, s, pack, flip(0))
				mustLoad(t, s, pack2, data)
				mustReadAt(t, s, pack, 0, flip(0)[:3])
				mustReadAt(t, s, pack, 1, data[1:3]) // does not cover the bad byte
				mustLoad(t, inner, pack, data)
			},
			fired: 2,
		},
		{
			name:   "flip last byte",
			faults: []faulty.Fault{{Type: store.Packs, Kind: faulty.Flip, Offset: -1}},
			stored: []store.Handle{pack, index},
			run: func(t *testing.T, s *faulty.Store, inner store.Store) {
				mustLoad(t, s, pack, flip(len(data)-1))
				mustReadAt(t, s, pack, 7, flip(len(data) - 1)[7:])
				mustLoad(t, s, index, data)
			},
			fired: 2,
		},
		{
			name:   "flip on the nth read only",
			faults: []faulty.Fault{{Op: faulty.OpLoad, Kind: faulty.Flip, Offset: 4, Nth: 2}},
			stored: []store.Handle{pack},
			run: func(t *testing.T, s *faulty.Store, inner store.Store) {
				mustLoad(t, s, pack, data)
				mustLoad(t, s, pack, flip(4))
				mustLoad(t, s, pack, data)
			},
			fired: 1,
		},
		{
			name:   "stat and list fail",
			faults: []faulty.Fault{{Op: faulty.OpStat}, {Op: faulty.OpList, Type: store.Packs}},
			stored: []store.Handle{pack, index},
			run: func(t *testing.T, s *faulty.Store, inner store.Store) {
				if _, err := s.Stat(t.Context(), pack); !errors.Is(err, faulty.ErrInjected) {
					t.Errorf("Stat = %v, want faulty.ErrInjected", err)
				}
				called := false
				err := s.List(t.Context(), store.Packs, func(store.FileInfo) error { called = true; return nil })
				if !errors.Is(err, faulty.ErrInjected) || called {
					t.Errorf("List(data) = %v after calling back: %v, want faulty.ErrInjected before", err, called)
				}
				if err := s.List(t.Context(), store.Index, func(store.FileInfo) error { return nil }); err != nil {
					t.Errorf("List(index): %v", err)
				}
			},
			fired: 2,
		},
		{
			name:   "first matching fault wins",
			faults: []faulty.Fault{{Op: faulty.OpLoad, Err: custom}, {Op: faulty.OpLoad, Kind: faulty.Flip}},
			stored: []store.Handle{pack},
			run: func(t *testing.T, s *faulty.Store, inner store.Store) {
				if _, err := s.Load(t.Context(), pack); !errors.Is(err, custom) {
					t.Errorf("Load = %v, want the first fault's error", err)
				}
			},
			fired: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inner := newInner(t)
			for _, h := range tt.stored {
				mustSave(t, inner, h)
			}
			s := faulty.New(inner, tt.faults...)
			tt.run(t, s, inner)
			if got := s.Fired(); got != tt.fired {
				t.Errorf("Fired() = %d, want %d", got, tt.fired)
			}
		})
	}
}

func mustSave(t *testing.T, s store.Store, h store.Handle) {
	t.Helper()
	if err := s.Save(t.Context(), h, data); err != nil {
		t.Fatalf("Save(%v): %v", h, err)
	}
}

func mustMiss(t *testing.T, s store.Store, h store.Handle) {
	t.Helper()
	if _, err := s.Stat(t.Context(), h); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Stat(%v) = %v, want blob.ErrNotFound", h, err)
	}
}

func mustLoad(t *testing.T, s store.Store, h store.Handle, want []byte) {
	t.Helper()
	got, err := s.Load(t.Context(), h)
	if err != nil {
		t.Fatalf("Load(%v): %v", h, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Load(%v) = %q, want %q", h, got, want)
	}
}

func mustReadAt(t *testing.T, s store.Store, h store.Handle, off int64, want []byte) {
	t.Helper()
	p := make([]byte, len(want))
	if err := s.ReadAt(t.Context(), h, p, off); err != nil {
		t.Fatalf("ReadAt(%v, %d): %v", h, off, err)
	}
	if !bytes.Equal(p, want) {
		t.Fatalf("ReadAt(%v, %d) = %q, want %q", h, off, p, want)
	}
}

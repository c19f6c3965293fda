// Package faulty is a store decorator for tests: it passes calls through to
// another store.Store and breaks the ones its Faults choose, failing them,
// failing them after they took effect (a crash between a durable write and
// its acknowledgement), tearing saved objects, or flipping a bit in what is
// read. It counts the calls of every method, so tests can also check how a
// caller used the store.
//
//	s := faulty.New(inner,
//		faulty.Fault{Op: faulty.OpSave, Nth: 3},                      // the third Save fails
//		faulty.Fault{Op: faulty.OpSave, Type: store.Index},           // every index Save fails
//		faulty.Fault{Type: store.Packs, Name: id, Kind: faulty.Flip}, // pack id reads corrupt
//	)
package faulty

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/kalaja/kalaja/internal/store"
)

// ErrInjected is the error a Fault without its own Err makes calls return.
var ErrInjected = errors.New("injected fault")

// Op names a method of store.Store.
type Op string

// Methods a Fault can break.
const (
	OpSave   Op = "Save"
	OpLoad   Op = "Load"
	OpReadAt Op = "ReadAt"
	OpStat   Op = "Stat"
	OpList   Op = "List"
)

// Kind is what a Fault does to a call.
type Kind int

// Kinds of fault.
const (
	// Fail makes the call return the fault's error without reaching the
	// wrapped store: a failed Save stores nothing.
	Fail Kind = iota
	// FailAfter makes the call reach the wrapped store and then return the
	// fault's error. For Save the object is stored: the caller sees the crash
	// that comes after a durable write and before its acknowledgement.
	FailAfter
	// Torn applies to Save only: the first half of the data is stored under
	// the name and the fault's error returned, as from a backend that breaks
	// Save's atomicity promise.
	Torn
	// Flip applies to Load and ReadAt only: the byte at object offset Offset
	// has its lowest bit flipped in what the caller gets. ReadAt ranges that
	// do not cover that byte, and empty objects, are returned unchanged.
	Flip
)

// Fault chooses calls and says how to break them. The zero Fault fails every
// call.
type Fault struct {
	// Op is the method to break; empty means every method the Kind applies to.
	Op Op
	// Type, if not empty, restricts the fault to objects of that type.
	Type store.FileType
	// Name, if not empty, restricts the fault to the object of that name,
	// which List calls never match.
	Name string
	// Nth, if positive, restricts the fault to the Nth call it matches,
	// counting from 1; zero means every call it matches.
	Nth int
	// Kind says what happens to a chosen call.
	Kind Kind
	// Err is returned, wrapped, by Fail, FailAfter and Torn; nil means
	// ErrInjected.
	Err error
	// Offset is the object offset of the byte Flip corrupts; negative
	// offsets count from the end, -1 being the last byte.
	Offset int64
}

// applies reports whether f can break calls of op.
func (f *Fault) applies(op Op) bool {
	if f.Op != "" && f.Op != op {
		return false
	}
	switch f.Kind {
	case Torn:
		return op == OpSave
	case Flip:
		return op == OpLoad || op == OpReadAt
	}
	return true
}

// Store is a store.Store that breaks the calls its faults choose and passes
// the others to the wrapped store unchanged. It is safe for concurrent use if
// the wrapped store is. It does not implement store.Remover.
type Store struct {
	inner  store.Store
	faults []Fault

	mu      sync.Mutex
	matched []int // matched[i] counts the calls faults[i] matched
	calls   map[Op]int
	fired   int
}

var _ store.Store = (*Store)(nil)

// New returns a Store over inner that breaks calls as faults say. When
// several faults choose one call, the first in the list applies; every
// matching fault still counts the call toward its Nth.
func New(inner store.Store, faults ...Fault) *Store {
	return &Store{
		inner:   inner,
		faults:  faults,
		matched: make([]int, len(faults)),
		calls:   map[Op]int{},
	}
}

// Calls returns how many times op has been called, broken or not.
func (s *Store) Calls(op Op) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// Fired returns how many calls a fault has broken. A Flip that changed no
// byte does not count, nor a FailAfter or Torn call the wrapped store failed.
func (s *Store) Fired() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fired
}

// fault counts a call of op on h (for List, Name is empty) and returns the
// fault that breaks it, or nil.
func (s *Store) fault(op Op, h store.Handle) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[op]++
	var chosen *Fault
	for i := range s.faults {
		f := &s.faults[i]
		if !f.applies(op) || f.Type != "" && f.Type != h.Type ||
			f.Name != "" && (op == OpList || f.Name != h.Name) {
			continue
		}
		s.matched[i]++
		if chosen == nil && (f.Nth <= 0 || f.Nth == s.matched[i]) {
			chosen = f
		}
	}
	return chosen
}

// fire counts a broken call and returns f's error for it.
func (s *Store) fire(f *Fault, op Op, what string) error {
	s.broke()
	err := f.Err
	if err == nil {
		err = ErrInjected
	}
	return fmt.Errorf("faulty: %s %s: %w", op, what, err)
}

// broke counts a call a fault broke.
func (s *Store) broke() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fired++
}

// Save implements store.Saver.
func (s *Store) Save(ctx context.Context, h store.Handle, data []byte) error {
	f := s.fault(OpSave, h)
	if f == nil {
		return s.inner.Save(ctx, h, data)
	}
	switch f.Kind {
	case FailAfter:
		if err := s.inner.Save(ctx, h, data); err != nil {
			return err
		}
	case Torn:
		if err := s.inner.Save(ctx, h, data[:len(data)/2]); err != nil {
			return err
		}
	}
	return s.fire(f, OpSave, h.String())
}

// Load implements store.Loader.
func (s *Store) Load(ctx context.Context, h store.Handle) ([]byte, error) {
	f := s.fault(OpLoad, h)
	if f != nil && f.Kind == Fail {
		return nil, s.fire(f, OpLoad, h.String())
	}
	b, err := s.inner.Load(ctx, h)
	if f == nil || err != nil {
		return b, err
	}
	if f.Kind == FailAfter {
		return nil, s.fire(f, OpLoad, h.String())
	}
	pos := f.Offset
	if pos < 0 {
		pos += int64(len(b))
	}
	if pos >= 0 && pos < int64(len(b)) {
		b = bytes.Clone(b) // the wrapped store may share its copy
		b[pos] ^= 1
		s.broke()
	}
	return b, nil
}

// ReadAt implements store.Loader.
func (s *Store) ReadAt(ctx context.Context, h store.Handle, p []byte, off int64) error {
	f := s.fault(OpReadAt, h)
	if f != nil && f.Kind == Fail {
		return s.fire(f, OpReadAt, h.String())
	}
	if err := s.inner.ReadAt(ctx, h, p, off); f == nil || err != nil {
		return err
	}
	if f.Kind == FailAfter {
		return s.fire(f, OpReadAt, h.String())
	}
	pos := f.Offset
	if pos < 0 {
		fi, err := s.inner.Stat(ctx, h)
		if err != nil {
			return err
		}
		pos += fi.Size
	}
	if pos >= off && pos < off+int64(len(p)) {
		p[pos-off] ^= 1
		s.broke()
	}
	return nil
}

// Stat implements store.Lister.
func (s *Store) Stat(ctx context.Context, h store.Handle) (store.FileInfo, error) {
	f := s.fault(OpStat, h)
	if f != nil && f.Kind == Fail {
		return store.FileInfo{}, s.fire(f, OpStat, h.String())
	}
	fi, err := s.inner.Stat(ctx, h)
	if f != nil && err == nil {
		return store.FileInfo{}, s.fire(f, OpStat, h.String())
	}
	return fi, err
}

// List implements store.Lister. A FailAfter fault lets the listing run to
// the end and then returns its error.
func (s *Store) List(ctx context.Context, t store.FileType, fn func(store.FileInfo) error) error {
	f := s.fault(OpList, store.Handle{Type: t})
	if f != nil && f.Kind == Fail {
		return s.fire(f, OpList, string(t))
	}
	err := s.inner.List(ctx, t, fn)
	if f != nil && err == nil {
		return s.fire(f, OpList, string(t))
	}
	return err
}

// Location returns the wrapped store's location.
func (s *Store) Location() string { return s.inner.Location() }

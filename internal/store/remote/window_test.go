package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/store"
)

// countGets wraps a handler and counts the GETs of objects it serves.
func countGets(n *atomic.Int64) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet {
				n.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	}
}

// savePack stores a pack of size pseudo-random bytes on the server and
// returns its handle and bytes.
func savePack(t *testing.T, s *Store, size int) (store.Handle, []byte) {
	t.Helper()
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{byte(size)}).Read(data)
	h := store.Handle{Type: store.Packs, Name: name(data)}
	if err := s.Save(t.Context(), h, data); err != nil {
		t.Fatal(err)
	}
	return h, data
}

// TestWindows reads packs in small pieces, as a restore does, and checks
// the bytes and how many requests they took.
func TestWindows(t *testing.T) {
	const size = 3*windowSize + 12345
	type read struct{ off, n int64 }
	var forward []read
	for off := int64(0); off < size; {
		n := min(size-off, 1+(off*7919)%(windowedRead/8))
		forward = append(forward, read{off, n})
		off += n
	}
	backward := slices.Clone(forward)
	slices.Reverse(backward)
	tests := []struct {
		name    string
		reads   []read
		maxGets int64
		wantEOF bool
	}{
		// Then all the windows are kept, and reading again takes no
		// request.
		{"forward through every window, then backward", append(forward, backward...), 4, false},
		{"across a window's end", []read{{2*windowSize - 10, 20}}, 2, false}, // and the next one ahead
		{"largest windowed read", []read{{windowSize + 1, windowedRead}}, 1, false},
		{"one byte more, its own request", []read{{5, windowedRead + 1}, {6, windowedRead + 1}}, 2, false},
		{"last byte", []read{{size - 1, 1}}, 1, false},
		{"past the end", []read{{size - 1, 2}}, 1, true},
		{"at the end", []read{{size, 1}}, 1, true},
		{"in a window after the end", []read{{4 * windowSize, 1}}, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gets atomic.Int64
			s := newBackend(t, false, countGets(&gets)).client(t)
			h, data := savePack(t, s, size)
			for _, r := range tt.reads {
				p := make([]byte, r.n)
				err := s.ReadAt(t.Context(), h, p, r.off)
				if tt.wantEOF {
					if !errors.Is(err, io.ErrUnexpectedEOF) {
						t.Fatalf("ReadAt(off %d, len %d) = %v, want io.ErrUnexpectedEOF", r.off, r.n, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("ReadAt(off %d, len %d): %v", r.off, r.n, err)
				}
				if !bytes.Equal(p, data[r.off:r.off+r.n]) {
					t.Fatalf("ReadAt(off %d, len %d) returned other bytes", r.off, r.n)
				}
			}
			if got := gets.Load(); got > tt.maxGets {
				t.Errorf("%d reads took %d requests, want at most %d", len(tt.reads), got, tt.maxGets)
			}
		})
	}
}

// TestWindowsAhead checks that reading a pack forward fetches the next
// window before a reader asks for it.
func TestWindowsAhead(t *testing.T) {
	held := make(chan string)
	release := make(chan struct{})
	b := newBackend(t, false, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if rng := r.Header.Get("Range"); r.Method == http.MethodGet && strings.HasPrefix(rng, "bytes="+strconv.Itoa(2*windowSize)+"-") {
				held <- rng
				<-release
			}
			h.ServeHTTP(w, r)
		})
	})
	s := b.client(t)
	h, data := savePack(t, s, 3*windowSize)
	for _, off := range []int64{10, windowSize + 10} {
		p := make([]byte, 10)
		if err := s.ReadAt(t.Context(), h, p, off); err != nil || !bytes.Equal(p, data[off:off+10]) {
			t.Fatalf("ReadAt(off %d): %q, %v", off, p, err)
		}
	}
	if rng := <-held; rng != fmt.Sprintf("bytes=%d-%d", 2*windowSize, 3*windowSize-1) {
		t.Fatalf("the window ahead was fetched with Range %s", rng)
	}
	close(release)
	p := make([]byte, 10)
	if err := s.ReadAt(t.Context(), h, p, 2*windowSize); err != nil || !bytes.Equal(p, data[2*windowSize:2*windowSize+10]) {
		t.Fatalf("ReadAt of the window ahead: %q, %v", p, err)
	}
}

// TestWindowsConcurrent has readers read the same packs at once, in
// pieces, each from its own place, and checks their bytes (run it with
// -race).
func TestWindowsConcurrent(t *testing.T) {
	var gets atomic.Int64
	s := newBackend(t, false, countGets(&gets)).client(t)
	ctx := t.Context()
	h1, d1 := savePack(t, s, 2*windowSize+1)
	h2, d2 := savePack(t, s, windowSize/2)
	before := gets.Load()
	var wg sync.WaitGroup
	for r := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 1))
			for range 200 {
				h, d := h1, d1
				if rng.IntN(3) == 0 {
					h, d = h2, d2
				}
				n := 1 + rng.IntN(4096)
				off := rng.IntN(len(d) - n + 1)
				p := make([]byte, n)
				if err := s.ReadAt(ctx, h, p, int64(off)); err != nil {
					t.Errorf("ReadAt(off %d, len %d): %v", off, n, err)
					return
				}
				if !bytes.Equal(p, d[off:off+n]) {
					t.Errorf("ReadAt(off %d, len %d) returned other bytes", off, n)
					return
				}
			}
		})
	}
	wg.Wait()
	// Four windows, all kept: each is fetched once at most.
	if got := gets.Load() - before; got > 4 {
		t.Errorf("1,600 reads took %d requests, want at most 4", got)
	}
}

// TestWindowsFailures checks that a failed fetch fails its readers, is not
// kept, and that a reader whose context ends does not fail another.
func TestWindowsFailures(t *testing.T) {
	var fail, hold atomic.Bool
	held := make(chan struct{}) // a held GET arrived
	release := make(chan struct{})
	b := newBackend(t, false, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && fail.Load() {
				http.Error(w, "gone", http.StatusNotFound)
				return
			}
			if r.Method == http.MethodGet && hold.CompareAndSwap(true, false) {
				held <- struct{}{}
				<-release
			}
			h.ServeHTTP(w, r)
		})
	})
	s := b.client(t)
	ctx := t.Context()
	h, data := savePack(t, s, 1000)

	fail.Store(true)
	if err := s.ReadAt(ctx, h, make([]byte, 10), 0); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("ReadAt of a missing window = %v, want blob.ErrNotFound", err)
	}
	fail.Store(false)
	p := make([]byte, 10)
	if err := s.ReadAt(ctx, h, p, 0); err != nil || !bytes.Equal(p, data[:10]) {
		t.Fatalf("ReadAt after a failed fetch: %q, %v", p, err)
	}

	// The first reader's fetch is held until its context ends; a second
	// reader of the same window, waiting for that fetch or coming after
	// it, gets its bytes.
	s = b.client(t)
	hold.Store(true)
	cctx, cancel := context.WithCancel(ctx)
	firstDone := make(chan error)
	go func() { firstDone <- s.ReadAt(cctx, h, make([]byte, 10), 0) }()
	<-held
	secondDone := make(chan error)
	p = make([]byte, 10)
	go func() { secondDone <- s.ReadAt(ctx, h, p, 20) }()
	cancel()
	if err := <-firstDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled reader got %v, want context.Canceled", err)
	}
	close(release)
	if err := <-secondDone; err != nil || !bytes.Equal(p, data[20:30]) {
		t.Fatalf("the second reader got %q, %v", p, err)
	}
}

// TestWindowsAround checks that a read larger than windowedRead takes the
// bytes that kept windows hold at its ends from them, and fetches only the
// rest.
func TestWindowsAround(t *testing.T) {
	const size = 3*windowSize + 12345
	tests := []struct {
		name    string
		small   []int64 // offsets of small reads first
		off, n  int64   // the large read
		want    string  // its request's Range, "" for none
		wantEOF bool
	}{
		{"nothing kept", nil, 100, windowSize, fmt.Sprintf("bytes=100-%d", windowSize+99), false},
		{"kept at the start", []int64{5}, 100, windowSize, fmt.Sprintf("bytes=%d-%d", windowSize, windowSize+99), false},
		{"kept at the end", []int64{2*windowSize + 5}, windowSize + 100, windowSize, fmt.Sprintf("bytes=%d-%d", windowSize+100, 2*windowSize-1), false},
		{"kept in the middle only", []int64{windowSize + 5}, 100, 2 * windowSize, fmt.Sprintf("bytes=100-%d", 2*windowSize+99), false},
		{"kept at both ends", []int64{5, 2*windowSize + 5}, 100, 2 * windowSize, fmt.Sprintf("bytes=%d-%d", windowSize, 2*windowSize-1), false},
		{"all kept", []int64{5, windowSize + 5}, 100, windowSize, "", false},
		{"past the end of a kept window", []int64{3*windowSize + 5}, 3*windowSize + 100, windowedRead + 1, "", true},
		{"past the end, the start not kept", []int64{3*windowSize + 5}, size - windowedRead, windowedRead + 1, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var ranges []string
			b := newBackend(t, false, func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if rng := r.Header.Get("Range"); r.Method == http.MethodGet && rng != "" {
						mu.Lock()
						ranges = append(ranges, rng)
						mu.Unlock()
					}
					h.ServeHTTP(w, r)
				})
			})
			s := b.client(t)
			h, data := savePack(t, s, size)
			for _, off := range tt.small {
				if err := s.ReadAt(t.Context(), h, make([]byte, 10), off); err != nil {
					t.Fatalf("ReadAt(off %d, len 10): %v", off, err)
				}
			}
			mu.Lock()
			before := len(ranges)
			mu.Unlock()
			p := make([]byte, tt.n)
			err := s.ReadAt(t.Context(), h, p, tt.off)
			switch {
			case tt.wantEOF:
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("ReadAt(off %d, len %d) = %v, want io.ErrUnexpectedEOF", tt.off, tt.n, err)
				}
			case err != nil:
				t.Fatalf("ReadAt(off %d, len %d): %v", tt.off, tt.n, err)
			case !bytes.Equal(p, data[tt.off:tt.off+tt.n]):
				t.Fatalf("ReadAt(off %d, len %d) returned other bytes", tt.off, tt.n)
			}
			// Reading windows 0 and 1 fetches window 2 ahead, maybe after
			// the large read.
			ahead := fmt.Sprintf("bytes=%d-%d", 2*windowSize, 3*windowSize-1)
			mu.Lock()
			got := slices.DeleteFunc(slices.Clone(ranges[before:]), func(rng string) bool { return rng == ahead })
			mu.Unlock()
			want := []string{tt.want}
			if tt.want == "" {
				want = nil
			}
			if !slices.Equal(got, want) {
				t.Errorf("the large read asked for %q, want %q", got, want)
			}
		})
	}
}

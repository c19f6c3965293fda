package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/kalaja/kalaja/internal/store"
)

// A restore reads most packs in many small pieces: a few KiB per file or
// tree, in the order the backup wrote them. One request per piece costs a
// round trip and the server's and client's per-request work, many times
// the cost of the bytes; so small reads of packs are served from windows,
// aligned pieces of a pack fetched whole, and the next small reads of
// nearby bytes find them there. When a pack is read forward, window by
// window, the next window is fetched while the readers use this one, so
// that they do not wait for the server at each window's end. A larger read
// takes the bytes at its ends that kept windows hold from them, and fetches
// only the rest. A pack's bytes never change (its name is their hash), so
// a window is never stale.
const (
	// windowSize is the size and alignment of a window in its pack.
	windowSize = 512 << 10
	// windowedRead is the largest read served from windows; larger ones
	// are worth a request of their own.
	windowedRead = windowSize / 4
	// windowsKept bounds the windows a Store keeps, the least recently
	// used going first: its memory is windowsKept × windowSize.
	windowsKept = 24
)

// window is one aligned piece of a pack, fetched or being fetched.
type window struct {
	pack  string
	index int64         // its offset in the pack is index × windowSize
	done  chan struct{} // closed when data and err are set
	data  []byte        // shorter than windowSize where the pack ends
	err   error
	used  bool // by a reader; guarded by windows.mu
}

// windows are the windows a Store keeps. Safe for concurrent use.
type windows struct {
	mu   sync.Mutex
	kept []*window // least recently used first; windows being fetched too
}

// fetchFunc reads the bytes of a pack at off into p with one request, and
// returns how many it read: fewer than len(p) only where the pack ends.
type fetchFunc func(ctx context.Context, p []byte, off int64) (int, error)

// readAt fills p, at most windowedRead bytes, from pack h at off, through
// the windows that hold those bytes, fetching the missing ones in one
// request with fetch. Readers that need a window another is fetching wait
// for it. A failed fetch is not kept. Where the pack ends before off +
// len(p), it fails with io.ErrUnexpectedEOF.
//
// When the last of those windows is used for the first time and the one
// before it is kept, the window after it is fetched in the background,
// with ctx.
func (ws *windows) readAt(ctx context.Context, h store.Handle, p []byte, off int64, fetch fetchFunc) error {
	first, last := off/windowSize, (off+int64(len(p))-1)/windowSize
	for {
		need, missing, ahead := ws.lookup(h.Name, first, last)
		if ahead {
			go ws.prefetch(ctx, need[len(need)-1], fetch)
		}
		if len(missing) > 0 {
			ws.fill(ctx, missing, fetch)
		}
		again := false
		for _, w := range need {
			select {
			case <-w.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			if w.err == nil {
				continue
			}
			if slices.Contains(missing, w) || !isContextErr(w.err) {
				return w.err
			}
			// Another reader's fetch ended with its context: fetch
			// again, with this one's.
			again = true
		}
		if !again {
			if !copyOut(need, p, off) {
				return fmt.Errorf("read %v at %d: %w", h, off, io.ErrUnexpectedEOF)
			}
			return nil
		}
	}
}

// readAround fills p, of any length, from pack h at off: the bytes at its
// start and at its end that kept windows hold (once fetched) are copied
// from them, and the bytes between are fetched with one request with
// fetch, which must read them all. Where the pack ends before off +
// len(p), it fails with io.ErrUnexpectedEOF.
func (ws *windows) readAround(ctx context.Context, h store.Handle, p []byte, off int64, fetch fetchFunc) error {
	lo, hi := off, off+int64(len(p)) // the bytes not copied yet
	for _, w := range ws.held(h.Name, lo/windowSize, (hi-1)/windowSize) {
		if !wait(ctx, w) {
			break
		}
		start := w.index * windowSize
		if w.index == lo/windowSize && lo < hi {
			// At the start: w holds lo.
			n := copy(p[lo-off:hi-off], w.data[min(int64(len(w.data)), lo-start):])
			if lo += int64(n); lo < hi && len(w.data) < windowSize {
				return fmt.Errorf("read %v at %d: %w", h, off, io.ErrUnexpectedEOF)
			}
			continue
		}
		if w.index == (hi-1)/windowSize && start > lo {
			// At the end: w holds hi - 1.
			if int64(len(w.data)) < hi-start {
				return fmt.Errorf("read %v at %d: %w", h, off, io.ErrUnexpectedEOF)
			}
			copy(p[start-off:hi-off], w.data)
			hi = start
		}
	}
	if lo == hi {
		return nil
	}
	_, err := fetch(ctx, p[lo-off:hi-off], lo)
	return err
}

// held returns, of the windows first to last of pack name, the kept ones
// that follow each other from first on, then those that do from last
// back, the same window at most once.
func (ws *windows) held(name string, first, last int64) []*window {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	var held []*window
	i := first
	for ; i <= last; i++ {
		k := ws.find(name, i)
		if k < 0 {
			break
		}
		held = append(held, ws.kept[k])
	}
	for j := last; j > i; j-- {
		k := ws.find(name, j)
		if k < 0 {
			break
		}
		held = append(held, ws.kept[k])
	}
	return held
}

// wait waits for window w to be fetched and reports whether it was.
func wait(ctx context.Context, w *window) bool {
	select {
	case <-w.done:
		return w.err == nil
	case <-ctx.Done():
		return false
	}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// lookup returns the windows first to last of pack name, and those of them
// that the caller is to fetch: they are added to the kept windows, and
// other readers wait for them. ahead reports that the caller is to fetch
// the window after last in the background: last is used for the first
// time, the one before it is kept, and the one after it is not.
func (ws *windows) lookup(name string, first, last int64) (need, missing []*window, ahead bool) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for i := first; i <= last; i++ {
		var w *window
		if k := ws.find(name, i); k >= 0 {
			w = ws.kept[k]
			ws.kept = slices.Delete(ws.kept, k, k+1)
		} else {
			w = &window{pack: name, index: i, done: make(chan struct{})}
			missing = append(missing, w)
		}
		ws.kept = append(ws.kept, w)
		need = append(need, w)
	}
	w := need[len(need)-1]
	ahead = !w.used && ws.find(name, last-1) >= 0 && ws.find(name, last+1) < 0
	for _, w := range need {
		w.used = true
	}
	ws.trim()
	return need, missing, ahead
}

// find returns the place of window i of pack name in the kept windows, or
// -1. ws.mu is held.
func (ws *windows) find(name string, i int64) int {
	return slices.IndexFunc(ws.kept, func(w *window) bool { return w.index == i && w.pack == name })
}

// trim drops the least recently used windows beyond windowsKept. ws.mu is
// held.
func (ws *windows) trim() {
	if n := len(ws.kept) - windowsKept; n > 0 {
		ws.kept = slices.Delete(ws.kept, 0, n)
	}
}

// prefetch waits for window w and, unless the pack ends in it, fetches and
// keeps the window after it, if no reader has done so meanwhile.
func (ws *windows) prefetch(ctx context.Context, w *window, fetch fetchFunc) {
	select {
	case <-w.done:
	case <-ctx.Done():
		return
	}
	if w.err != nil || len(w.data) < windowSize {
		return
	}
	ws.mu.Lock()
	if ws.find(w.pack, w.index+1) >= 0 {
		ws.mu.Unlock()
		return
	}
	next := &window{pack: w.pack, index: w.index + 1, done: make(chan struct{})}
	ws.kept = append(ws.kept, next)
	ws.trim()
	ws.mu.Unlock()
	ws.fill(ctx, []*window{next}, fetch)
}

// fill fetches the windows missing, in order, with one request that
// spans them, and releases their readers. Failed windows are no longer
// kept, so that the next reader fetches them again.
func (ws *windows) fill(ctx context.Context, missing []*window, fetch fetchFunc) {
	base := missing[0].index
	buf := make([]byte, (missing[len(missing)-1].index-base+1)*windowSize)
	n, err := fetch(ctx, buf, base*windowSize)
	buf = buf[:n]
	if err != nil {
		ws.mu.Lock()
		ws.kept = slices.DeleteFunc(ws.kept, func(w *window) bool { return slices.Contains(missing, w) })
		ws.mu.Unlock()
	}
	for _, w := range missing {
		if w.err = err; err == nil {
			start := min(int64(len(buf)), (w.index-base)*windowSize)
			end := min(int64(len(buf)), start+windowSize)
			w.data = buf[start:end:end]
		}
		close(w.done)
	}
}

// copyOut copies the bytes at off from the consecutive windows need into
// p, and reports whether they held all of len(p).
func copyOut(need []*window, p []byte, off int64) bool {
	for _, w := range need {
		start := off - w.index*windowSize // in w, of the bytes still wanted
		if start >= int64(len(w.data)) {
			return false
		}
		n := copy(p, w.data[start:])
		p, off = p[n:], off+int64(n)
		if len(p) == 0 {
			return true
		}
	}
	return false
}

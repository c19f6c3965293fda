package fswatch

import "time"

// Throttling. A program writing a file writes it in many pieces (a
// database page after page, a log line after line), and every write(2) is
// a Modify. A Modify matters only for what no close follows (a close is
// a Write, and the watcher judges the file then): a file cut to nothing
// while it stays open, or by truncate(2). So a
// source reports at most one Modify per file per modifyEvery and drops the
// rest. With fanotify the kernel drops them: once a file's Modify has come
// twice within the window, an ignore mark on its inode keeps the kernel
// from making the next ones until the window ends. Each event the kernel
// makes costs the writing process a little of its own time, which for a
// program writing in many pieces was most of what the watcher cost it
// (docs/design.md, "Throttling of FAN_MODIFY").
//
// A window ends early when the file is closed (the next Modify is news)
// and when the loop, having read nothing for linger, is about to wait in
// poll(2), where it could not end windows on time.
//
// A file is muted only on its second Modify in a window, because most
// files are written in one go between two reads of the loop (the kernel
// merges their writes into one event) and closed: for those a mark would
// cost four system calls and save nothing.

// modifyEvery is the shortest time between two Modify events of one file
// that stays open.
const modifyEvery = 100 * time.Millisecond

// maxThrottled bounds the files in a window at once; a Modify of a file
// beyond it is reported and not throttled.
const maxThrottled = 4096

// throttle drops Modify events (see Throttling). It is used by the loop's
// goroutine only.
type throttle struct {
	// mute, when not nil, keeps the kernel from making Modify events of
	// the file at path until unmute is called; it returns nil when the
	// file cannot be muted.
	mute   func(path string) (unmute func())
	window map[string]*window
	queue  []*window // in the order opened, which is also by end
}

// window is one file's time between reported Modify events.
type window struct {
	path   string
	end    time.Time
	unmute func() // the file is muted in the kernel
	muting bool   // mute was tried
}

func newThrottle(mute func(string) func()) *throttle {
	return &throttle{mute: mute, window: map[string]*window{}}
}

// filter drops from batch, in place, the Modify events of files in their
// window, and opens a window for the others. It returns the rest of batch.
func (t *throttle) filter(batch []Event, now time.Time) []Event {
	t.expire(now)
	out := batch[:0]
	for _, e := range batch {
		if e.Op == Write {
			if w := t.window[e.Path]; w != nil {
				t.close(w) // closed: the next Modify is news
			}
		}
		if e.Op != Modify {
			out = append(out, e)
			continue
		}
		if w := t.window[e.Path]; w != nil {
			if !w.muting && t.mute != nil {
				w.muting = true
				w.unmute = t.mute(e.Path)
			}
			continue
		}
		if len(t.queue) < maxThrottled {
			w := &window{path: e.Path, end: now.Add(modifyEvery)}
			t.window[e.Path] = w
			t.queue = append(t.queue, w)
		}
		out = append(out, e)
	}
	return out
}

// expire closes the windows that ended by now.
func (t *throttle) expire(now time.Time) {
	n := 0
	for n < len(t.queue) && !now.Before(t.queue[n].end) {
		t.close(t.queue[n])
		n++
	}
	if n > 0 {
		t.queue = t.queue[:copy(t.queue, t.queue[n:])]
	}
}

// release closes every window: the loop is about to wait in poll(2),
// where it cannot close them on time, or to return.
func (t *throttle) release() {
	for _, w := range t.queue {
		t.close(w)
	}
	t.queue = t.queue[:0]
}

// close ends w, before its end when the file was closed; the queue keeps
// it until then.
func (t *throttle) close(w *window) {
	if w.unmute != nil {
		w.unmute()
		w.unmute = nil
	}
	if t.window[w.path] == w {
		delete(t.window, w.path)
	}
}

// Package outbox is a host's on-disk queue of the events it owes the vault
// (alerts and heartbeats, for POST /v1/events of kalaja serve), and the
// sender that delivers them in order (docs/design.md, "The host's outbox
// (version 1)").
//
// A queue is a folder holding the file "queue": a header line
// {"outbox":1,"queue":"<32 hex>","acked":N}, then one line per event not
// yet acknowledged, each exactly the line sent:
// {"queue":"<32 hex>","seq":S,"type":"alert","alert":{...}}. An event
// counts as queued once its line is written and synced. The server
// answers each batch with the highest seq it has applied (its ack); the
// acknowledged lines are then dropped by replacing the file whole. Every
// change holds an exclusive flock on the sibling file "lock", so the
// processes of a host that share a queue (two watchers) never interleave;
// only one process at a time sends (flock on "send.lock").
package outbox

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/kalaja/kalaja/internal/event"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/atomicfile"
)

// ErrTooLarge is returned by Append for an event the server would refuse
// for its size (over event.MaxAlert, or a line over event.MaxBody): it could never be
// delivered.
var ErrTooLarge = errors.New("event too large for the vault")

// Queue is a queue folder. Its methods are safe for concurrent use, also
// by several processes: each holds the folder's lock while it reads or
// changes the file.
type Queue struct {
	dir string
	// wake has a value when an event was appended since the sender last
	// looked; capacity 1.
	wake chan struct{}
}

// Open opens the queue in dir, creating the folder and an empty queue
// with a new random ID if there is none. A queue file that is damaged
// (its header does not decode) or of another version is an error naming
// the file.
func Open(dir string) (*Queue, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	q := &Queue{dir: dir, wake: make(chan struct{}, 1)}
	err := q.locked(func() error {
		_, err := q.load()
		return err
	})
	if err != nil {
		return nil, err
	}
	return q, nil
}

// Dir returns the queue's folder.
func (q *Queue) Dir() string { return q.dir }

func (q *Queue) path() string { return filepath.Join(q.dir, "queue") }

// locked runs f holding the queue's lock.
func (q *Queue) locked(f func() error) error {
	lock, err := os.OpenFile(filepath.Join(q.dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	defer func() { _ = lock.Close() }() // nothing is written to it; closing releases the lock
	if err := flock(lock, unix.LOCK_EX); err != nil {
		return fmt.Errorf("outbox: lock %s: %w", lock.Name(), err)
	}
	return f()
}

// load reads the queue file, creating it if it does not exist, and cuts
// off a torn last line so the next append does not follow it. The caller
// holds the lock.
func (q *Queue) load() (*state, error) {
	b, err := os.ReadFile(q.path())
	if errors.Is(err, fs.ErrNotExist) {
		id := make([]byte, 16)
		if _, err := rand.Read(id); err != nil {
			return nil, fmt.Errorf("outbox: queue ID: %w", err)
		}
		s := &state{queue: hex.EncodeToString(id)}
		if err := q.write(s); err != nil {
			return nil, err
		}
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	s, err := decode(b)
	if err != nil {
		return nil, fmt.Errorf("outbox %s: %w", q.path(), err)
	}
	if s.torn {
		if err := os.Truncate(q.path(), s.valid); err != nil {
			return nil, fmt.Errorf("outbox %s: cut the torn last line: %w", q.path(), err)
		}
		s.torn = false
	}
	return s, nil
}

// write replaces the queue file with s, atomically and durably.
func (q *Queue) write(s *state) error {
	var buf bytes.Buffer
	buf.Write(encodeHeader(s.queue, s.acked))
	for _, e := range s.entries {
		buf.Write(e.Line)
	}
	if err := atomicfile.Write(q.path(), buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// Append queues an event of type typ (event.TypeAlert or event.TypeHeartbeat) whose
// body is the JSON object body, with the next seq, and returns once its
// line is synced to disk. A heartbeat equal to the newest queued event
// (also a heartbeat, with the same body) is not appended: it would say
// nothing new, and so heartbeats do not pile up while the vault is
// unreachable; appended reports whether the event was. An alert is always
// appended. A body that is not a JSON object is an error, and so is an
// alert over event.MaxAlert or a line over event.MaxBody (ErrTooLarge).
func (q *Queue) Append(typ string, body []byte) (appended bool, err error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, body); err != nil || buf.Len() == 0 || buf.Bytes()[0] != '{' {
		return false, fmt.Errorf("outbox: %s event: not a JSON object", typ)
	}
	body = buf.Bytes()
	err = q.locked(func() error {
		s, err := q.load()
		if err != nil {
			return err
		}
		if n := len(s.entries); typ == event.TypeHeartbeat && n > 0 &&
			s.entries[n-1].Type == event.TypeHeartbeat && bytes.Equal(s.entries[n-1].Body, body) {
			return nil
		}
		line, err := encodeLine(s.queue, s.last()+1, typ, body)
		if err != nil {
			return err
		}
		if len(line) > event.MaxBody || (typ == event.TypeAlert && len(body) > event.MaxAlert) {
			return fmt.Errorf("outbox: %s event of %d bytes: %w", typ, len(body), ErrTooLarge)
		}
		f, err := os.OpenFile(q.path(), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		_, err = f.Write(line)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("outbox %s: append: %w", q.path(), err)
		}
		appended = true
		return nil
	})
	if appended {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return appended, err
}

// Pending returns the queue's ID and its oldest events not yet
// acknowledged, in seq order, as many as fit in one batch (event.MaxEvents lines,
// event.MaxBody bytes), and the count of lines skipped as damaged.
func (q *Queue) Pending() (queue string, entries []Entry, bad int, err error) {
	err = q.locked(func() error {
		s, err := q.load()
		if err != nil {
			return err
		}
		queue, bad = s.queue, s.bad
		size := 0
		for _, e := range s.entries {
			if len(entries) == event.MaxEvents || size+len(e.Line) > event.MaxBody {
				break
			}
			size += len(e.Line)
			entries = append(entries, e)
		}
		return nil
	})
	return queue, entries, bad, err
}

// Ack records that the server applied every event of queue up to seq
// ack: they are dropped from the file. An ack for another queue (the file
// was replaced meanwhile) or not above the recorded one changes nothing.
//
// An ack above every seq the file has assigned means the server applied
// events of this queue that the file does not know: the state directory
// was put back from an older copy. The server would skip the file's
// events as already applied, so the queue takes a new ID and renumbers
// them from 1, and the server applies them as a new queue's; renewed says
// so.
func (q *Queue) Ack(queue string, ack uint64) (renewed bool, err error) {
	err = q.locked(func() error {
		s, err := q.load()
		if err != nil {
			return err
		}
		if s.queue != queue || ack <= s.acked {
			return nil
		}
		if ack > s.last() {
			renewed = true
			return q.renew(s)
		}
		s.acked = ack
		i := 0
		for i < len(s.entries) && s.entries[i].Seq <= ack {
			i++
		}
		s.entries = s.entries[i:]
		return q.write(s)
	})
	return renewed, err
}

// renew gives s a new queue ID and numbers its events from 1. The caller
// holds the lock.
func (q *Queue) renew(s *state) error {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return fmt.Errorf("outbox: queue ID: %w", err)
	}
	s.queue, s.acked = hex.EncodeToString(id), 0
	for i := range s.entries {
		e := &s.entries[i]
		line, err := encodeLine(s.queue, uint64(i+1), e.Type, e.Body)
		if err != nil {
			return err
		}
		e.Seq, e.Line = uint64(i+1), line
	}
	return q.write(s)
}

// flock applies op to f's lock, waiting for it unless op has LOCK_NB;
// EINTR retries.
func flock(f *os.File, op int) error {
	for {
		err := unix.Flock(int(f.Fd()), op)
		if err != unix.EINTR {
			return err
		}
	}
}

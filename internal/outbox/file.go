package outbox

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/kalaja/kalaja/internal/event"

	"github.com/kalaja/kalaja/internal/blob"
)

// Version is the version of the queue file's encoding.
const Version = 1

// header is the first line of a queue file.
type header struct {
	Outbox int    `json:"outbox"` // the version, Version
	Queue  string `json:"queue"`  // 32 lowercase hex digits
	Acked  uint64 `json:"acked"`  // the highest seq the server acknowledged
}

// wireLine is one event as queued and as sent: a line of the body of
// POST /v1/events.
type wireLine struct {
	Queue     string          `json:"queue"`
	Seq       uint64          `json:"seq"`
	Type      string          `json:"type"`
	Alert     json.RawMessage `json:"alert,omitempty"`
	Heartbeat json.RawMessage `json:"heartbeat,omitempty"`
}

// Entry is one queued event.
type Entry struct {
	Seq  uint64
	Type string // event.TypeAlert or event.TypeHeartbeat
	Body []byte // the alert or heartbeat object, JSON
	Line []byte // the event's line as sent, with its final line break
}

// state is what a queue file holds.
type state struct {
	queue   string
	acked   uint64
	entries []Entry // seq increasing, each above acked
	bad     int     // complete lines skipped: they did not decode or broke the order
	valid   int64   // length of the file up to the end of its last complete line
	torn    bool    // bytes after valid: a write cut short
}

// last returns the highest seq the file knows: of its last entry, else
// the acknowledged one.
func (s *state) last() uint64 {
	if n := len(s.entries); n > 0 {
		return s.entries[n-1].Seq
	}
	return s.acked
}

// validQueue reports whether id is a queue ID: 32 lowercase hex digits.
func validQueue(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && id == string(bytes.ToLower([]byte(id)))
}

// decode reads a queue file. A header that is missing, torn or of another
// version is an error (blob.ErrCorrupt, blob.ErrUnsupported): the file is
// replaced whole, never torn, so that is damage. Event lines that do not
// decode, belong to another queue, or do not increase the seq are skipped
// and counted; bytes after the last line break are a torn write and are
// ignored.
func decode(b []byte) (*state, error) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, fmt.Errorf("no header line: %w", blob.ErrCorrupt)
	}
	var h header
	if err := strictUnmarshal(b[:i], &h); err != nil {
		return nil, fmt.Errorf("header: %v: %w", err, blob.ErrCorrupt)
	}
	if h.Outbox != Version {
		return nil, fmt.Errorf("version %d: %w", h.Outbox, blob.ErrUnsupported)
	}
	if !validQueue(h.Queue) {
		return nil, fmt.Errorf("header: invalid queue ID: %w", blob.ErrCorrupt)
	}
	s := &state{queue: h.Queue, acked: h.Acked}
	off := i + 1
	s.valid = int64(off)
	for off < len(b) {
		j := bytes.IndexByte(b[off:], '\n')
		if j < 0 {
			s.torn = true
			break
		}
		raw := b[off : off+j+1]
		off += j + 1
		s.valid = int64(off)
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		e, ok := decodeLine(raw, s.queue)
		if !ok || e.Seq <= s.last() {
			s.bad++
			continue
		}
		s.entries = append(s.entries, e)
	}
	return s, nil
}

// decodeLine decodes one event line of queue.
func decodeLine(raw []byte, queue string) (Entry, bool) {
	var l wireLine
	if err := strictUnmarshal(raw, &l); err != nil || l.Queue != queue || l.Seq == 0 {
		return Entry{}, false
	}
	e := Entry{Seq: l.Seq, Type: l.Type, Line: bytes.Clone(raw)}
	switch {
	case l.Type == event.TypeAlert && len(l.Alert) > 0 && len(l.Heartbeat) == 0:
		e.Body = l.Alert
	case l.Type == event.TypeHeartbeat && len(l.Heartbeat) > 0 && len(l.Alert) == 0:
		e.Body = l.Heartbeat
	default:
		return Entry{}, false
	}
	return e, true
}

// strictUnmarshal decodes one JSON value, refusing unknown fields and
// trailing data.
func strictUnmarshal(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return fmt.Errorf("trailing data")
	}
	return nil
}

// encodeHeader returns the header line of a queue file.
func encodeHeader(queue string, acked uint64) []byte {
	b, _ := json.Marshal(header{Outbox: Version, Queue: queue, Acked: acked}) // cannot fail: plain fields
	return append(b, '\n')
}

// encodeLine returns the line of an event. body must be a JSON object.
func encodeLine(queue string, seq uint64, typ string, body []byte) ([]byte, error) {
	l := wireLine{Queue: queue, Seq: seq, Type: typ}
	switch typ {
	case event.TypeAlert:
		l.Alert = body
	case event.TypeHeartbeat:
		l.Heartbeat = body
	default:
		return nil, fmt.Errorf("event type %q", typ)
	}
	b, err := json.Marshal(l)
	if err != nil {
		return nil, fmt.Errorf("encode %s event: %w", typ, err)
	}
	return append(b, '\n'), nil
}

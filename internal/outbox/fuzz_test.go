package outbox

import (
	"bytes"
	"github.com/kalaja/kalaja/internal/event"
	"testing"
)

// FuzzDecode checks that no queue file makes decode panic, and that what
// it accepts is consistent: seqs increase above the ack, each entry's line
// decodes back to it, and valid ends at a line break within the file.
func FuzzDecode(f *testing.F) {
	id := "0123456789abcdef0123456789abcdef"
	hdr := encodeHeader(id, 2)
	l3, _ := encodeLine(id, 3, event.TypeAlert, []byte(`{"pid":1}`))
	l4, _ := encodeLine(id, 4, event.TypeHeartbeat, []byte(`{"interval":"30s","watching":["/srv"],"version":"dev"}`))
	f.Add(hdr)
	f.Add(append(append(append([]byte{}, hdr...), l3...), l4...))
	f.Add(append(append(append([]byte{}, hdr...), l3...), l4[:20]...))
	f.Add(append(append(append([]byte{}, hdr...), l4...), l3...))
	f.Add([]byte("garbage\n{}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decode(b)
		if err != nil {
			return
		}
		if s.valid > int64(len(b)) || b[s.valid-1] != '\n' || s.torn != (s.valid < int64(len(b))) {
			t.Fatalf("valid %d of %d, torn %v", s.valid, len(b), s.torn)
		}
		prev := s.acked
		for _, e := range s.entries {
			if e.Seq <= prev {
				t.Fatalf("seq %d after %d", e.Seq, prev)
			}
			prev = e.Seq
			back, ok := decodeLine(e.Line, s.queue)
			if !ok || back.Seq != e.Seq || back.Type != e.Type || !bytes.Equal(back.Body, e.Body) {
				t.Fatalf("line %q does not decode back", e.Line)
			}
		}
	})
}

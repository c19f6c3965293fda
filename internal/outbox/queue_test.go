package outbox

import (
	"errors"
	"fmt"
	"github.com/kalaja/kalaja/internal/event"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kalaja/kalaja/internal/blob"
)

func alertBody(i int) []byte { return []byte(fmt.Sprintf(`{"pid": %d, "command": "enc"}`, i)) }

func mustAppend(t *testing.T, q *Queue, typ string, body []byte) bool {
	t.Helper()
	ok, err := q.Append(typ, body)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func pending(t *testing.T, q *Queue) (string, []Entry) {
	t.Helper()
	id, es, bad, err := q.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Errorf("%d bad lines", bad)
	}
	return id, es
}

func seqs(es []Entry) []uint64 {
	var s []uint64
	for _, e := range es {
		s = append(s, e.Seq)
	}
	return s
}

func TestOrderAckRestart(t *testing.T) {
	dir := t.TempDir()
	q, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		mustAppend(t, q, event.TypeAlert, alertBody(i))
	}
	id, es := pending(t, q)
	if !validQueue(id) || fmt.Sprint(seqs(es)) != "[1 2 3 4 5]" {
		t.Fatalf("queue %q, seqs %v", id, seqs(es))
	}
	for i, e := range es {
		if e.Type != event.TypeAlert || string(e.Body) != fmt.Sprintf(`{"pid":%d,"command":"enc"}`, i+1) {
			t.Errorf("entry %d: %s %s", i, e.Type, e.Body)
		}
		want := fmt.Sprintf(`{"queue":"%s","seq":%d,"type":"alert","alert":{"pid":%d,"command":"enc"}}`+"\n", id, i+1, i+1)
		if string(e.Line) != want {
			t.Errorf("line %q, want %q", e.Line, want)
		}
	}
	if _, err := q.Ack(id, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Ack("0123456789abcdef0123456789abcdef", 5); err != nil { // another queue: ignored
		t.Fatal(err)
	}
	if _, err := q.Ack(id, 2); err != nil { // older: ignored
		t.Fatal(err)
	}
	// A new process opens the same folder: same queue, what is left, next seq.
	q2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, q2, event.TypeAlert, alertBody(6))
	id2, es := pending(t, q2)
	if id2 != id || fmt.Sprint(seqs(es)) != "[4 5 6]" {
		t.Fatalf("after restart: queue %s (was %s), seqs %v", id2, id, seqs(es))
	}
	if _, err := q2.Ack(id, 6); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, q2, event.TypeAlert, alertBody(7))
	if _, es := pending(t, q2); fmt.Sprint(seqs(es)) != "[7]" {
		t.Fatalf("after ack of all: seqs %v", seqs(es))
	}
}

func TestHeartbeatsCoalesce(t *testing.T) {
	q, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	hb := []byte(`{"interval":"30s","watching":["/srv"],"version":"dev"}`)
	steps := []struct {
		typ  string
		body []byte
		want bool
	}{
		{event.TypeHeartbeat, hb, true},
		{event.TypeHeartbeat, hb, false},
		{event.TypeHeartbeat, hb, false},
		{event.TypeAlert, alertBody(1), true},
		{event.TypeHeartbeat, hb, true},
		{event.TypeHeartbeat, hb, false},
		{event.TypeHeartbeat, []byte(`{"interval":"1m0s","watching":["/srv"],"version":"dev"}`), true},
		{event.TypeAlert, alertBody(2), true},
		{event.TypeAlert, alertBody(2), true}, // alerts are never coalesced
	}
	for i, s := range steps {
		if got := mustAppend(t, q, s.typ, s.body); got != s.want {
			t.Errorf("step %d: appended %v, want %v", i, got, s.want)
		}
	}
	id, es := pending(t, q)
	if fmt.Sprint(seqs(es)) != "[1 2 3 4 5 6]" {
		t.Fatalf("seqs %v", seqs(es))
	}
	// Once the heartbeat is acknowledged, the next one is queued again.
	if _, err := q.Ack(id, 6); err != nil {
		t.Fatal(err)
	}
	if !mustAppend(t, q, event.TypeHeartbeat, hb) || !mustAppend(t, q, event.TypeAlert, alertBody(3)) {
		t.Fatal("not appended after the ack")
	}
}

func TestTornLastLine(t *testing.T) {
	dir := t.TempDir()
	q, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		mustAppend(t, q, event.TypeAlert, alertBody(i))
	}
	id, es := pending(t, q)
	// A crash cut the fourth line's write short, at every possible length.
	line, err := encodeLine(id, 4, event.TypeAlert, []byte(`{"pid":4}`))
	if err != nil {
		t.Fatal(err)
	}
	whole, err := os.ReadFile(q.path())
	if err != nil {
		t.Fatal(err)
	}
	for cut := 1; cut < len(line); cut++ {
		if err := os.WriteFile(q.path(), append(append([]byte{}, whole...), line[:cut]...), 0o600); err != nil {
			t.Fatal(err)
		}
		q, err := Open(dir)
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		if _, got := pending(t, q); fmt.Sprint(seqs(got)) != fmt.Sprint(seqs(es)) {
			t.Fatalf("cut %d: seqs %v", cut, seqs(got))
		}
		// The torn bytes are gone: the next event takes seq 4 on a line of its own.
		mustAppend(t, q, event.TypeAlert, alertBody(40))
		_, got := pending(t, q)
		if fmt.Sprint(seqs(got)) != "[1 2 3 4]" || string(got[3].Body) != `{"pid":40,"command":"enc"}` {
			t.Fatalf("cut %d: after append: seqs %v, last %s", cut, seqs(got), got[len(got)-1].Body)
		}
		if err := os.WriteFile(q.path(), whole, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDamagedLinesSkipped(t *testing.T) {
	dir := t.TempDir()
	q, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, q, event.TypeAlert, alertBody(1))
	mustAppend(t, q, event.TypeAlert, alertBody(2))
	id, _ := pending(t, q)
	f, err := os.OpenFile(q.path(), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := encodeLine("0123456789abcdef0123456789abcdef", 3, event.TypeAlert, []byte(`{}`))
	dup, _ := encodeLine(id, 2, event.TypeAlert, []byte(`{"pid":99}`))
	for _, l := range [][]byte{[]byte("garbage\n"), other, dup, []byte(`{"queue":"` + id + `","seq":3,"type":"nope","alert":{}}` + "\n")} {
		f.Write(l)
	}
	f.Close()
	_, es, bad, err := q.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if bad != 4 || fmt.Sprint(seqs(es)) != "[1 2]" || string(es[1].Body) != `{"pid":2,"command":"enc"}` {
		t.Fatalf("bad %d, seqs %v", bad, seqs(es))
	}
	mustAppend(t, q, event.TypeAlert, alertBody(3))
	if _, es, _, _ := q.Pending(); fmt.Sprint(seqs(es)) != "[1 2 3]" {
		t.Fatalf("seqs %v", seqs(es))
	}
	// The ack's rewrite leaves the damage behind.
	if _, err := q.Ack(id, 1); err != nil {
		t.Fatal(err)
	}
	if _, es, bad, _ := q.Pending(); bad != 0 || fmt.Sprint(seqs(es)) != "[2 3]" {
		t.Fatalf("after ack: bad %d, seqs %v", bad, seqs(es))
	}
}

func TestOpenRefusesDamagedHeader(t *testing.T) {
	for name, content := range map[string]string{
		"empty":   "",
		"garbage": "garbage\n",
		"version": `{"outbox":2,"queue":"0123456789abcdef0123456789abcdef","acked":0}` + "\n",
		"queue":   `{"outbox":1,"queue":"xyz","acked":0}` + "\n",
		"torn":    `{"outbox":1,"queue":"0123456789abcdef0123456789abcdef","acked":0}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "queue"), []byte(content), 0o600)
			_, err := Open(dir)
			want := blob.ErrCorrupt
			if name == "version" {
				want = blob.ErrUnsupported
			}
			if !errors.Is(err, want) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("err %v, want %v naming the file", err, want)
			}
		})
	}
}

func TestAppendRefuses(t *testing.T) {
	q, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"", "[]", "nope", `"s"`, `{"a":`} {
		if _, err := q.Append(event.TypeAlert, []byte(body)); err == nil {
			t.Errorf("body %q appended", body)
		}
	}
	if _, err := q.Append("other", []byte(`{}`)); err == nil {
		t.Error("type other appended")
	}
	big := `{"files":["` + strings.Repeat("x", event.MaxAlert) + `"]}`
	if _, err := q.Append(event.TypeAlert, []byte(big)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("alert over event.MaxAlert: %v", err)
	}
	huge := `{"watching":["` + strings.Repeat("x", event.MaxBody) + `"]}`
	if _, err := q.Append(event.TypeHeartbeat, []byte(huge)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("heartbeat over event.MaxBody: %v", err)
	}
	if _, es := pending(t, q); len(es) != 0 {
		t.Errorf("%d entries queued", len(es))
	}
}

func TestPendingBatchBounds(t *testing.T) {
	dir := t.TempDir()
	id := "0123456789abcdef0123456789abcdef"
	file := encodeHeader(id, 0)
	for i := 1; i <= event.MaxEvents+5; i++ {
		l, err := encodeLine(id, uint64(i), event.TypeAlert, alertBody(i))
		if err != nil {
			t.Fatal(err)
		}
		file = append(file, l...)
	}
	if err := os.WriteFile(filepath.Join(dir, "queue"), file, 0o600); err != nil {
		t.Fatal(err)
	}
	q, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, es := pending(t, q)
	if len(es) != event.MaxEvents || es[0].Seq != 1 || es[len(es)-1].Seq != event.MaxEvents {
		t.Fatalf("%d entries, %d..%d", len(es), es[0].Seq, es[len(es)-1].Seq)
	}
	q2, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fat := `{"files":["` + strings.Repeat("x", 200<<10) + `"]}`
	for range 6 {
		mustAppend(t, q2, event.TypeAlert, []byte(fat))
	}
	_, es = pending(t, q2)
	size := 0
	for _, e := range es {
		size += len(e.Line)
	}
	if len(es) != 5 || size > event.MaxBody {
		t.Fatalf("%d entries of %d bytes", len(es), size)
	}
}

// TestRenewWhenServerAhead: an ack above every seq the file assigned (the
// state directory was put back from an older copy) moves the pending
// events to a new queue, numbered from 1.
func TestRenewWhenServerAhead(t *testing.T) {
	q, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, q, event.TypeAlert, alertBody(1))
	mustAppend(t, q, event.TypeAlert, alertBody(2))
	id, _ := pending(t, q)
	renewed, err := q.Ack(id, 9)
	if err != nil || !renewed {
		t.Fatalf("renewed %v, err %v", renewed, err)
	}
	id2, es := pending(t, q)
	if id2 == id || fmt.Sprint(seqs(es)) != "[1 2]" || string(es[1].Body) != `{"pid":2,"command":"enc"}` ||
		!strings.Contains(string(es[0].Line), id2) {
		t.Fatalf("queue %s (was %s), seqs %v", id2, id, seqs(es))
	}
}

// TestConcurrentAppenders has goroutines, each with its own Queue as a
// process would have, append to one folder: every event is queued once,
// with seqs 1..n without a gap, and each appender's events keep their
// order.
func TestConcurrentAppenders(t *testing.T) {
	dir := t.TempDir()
	const writers, each = 4, 25
	var wg sync.WaitGroup
	for w := range writers {
		q, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for i := range each {
				if _, err := q.Append(event.TypeAlert, []byte(fmt.Sprintf(`{"w":%d,"i":%d}`, w, i))); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	q, _ := Open(dir)
	_, es := pending(t, q)
	if len(es) != writers*each {
		t.Fatalf("%d entries, want %d", len(es), writers*each)
	}
	next := map[int]int{}
	for i, e := range es {
		if e.Seq != uint64(i+1) {
			t.Fatalf("entry %d has seq %d", i, e.Seq)
		}
		var w, n int
		fmt.Sscanf(string(e.Body), `{"w":%d,"i":%d}`, &w, &n)
		if n != next[w] {
			t.Fatalf("writer %d: event %d after %d", w, n, next[w]-1)
		}
		next[w]++
	}
}

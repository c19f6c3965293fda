package outbox

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/kalaja/kalaja/internal/event"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// vault is a server of POST /v1/events as docs/design.md specifies it, for
// one host: it applies a batch all or nothing, skips events it has
// applied, and answers the ack.
type vault struct {
	mu      sync.Mutex
	queue   string
	last    uint64
	applied []string      // bodies, in the order applied
	mode    string        // "" works, "down" 503, "refuse" 400, "lose" applies and answers 500
	gaps    int           // batches that skipped a seq
	posts   int           // requests
	notify  chan struct{} // a value per request handled
	srv     *httptest.Server
}

func newVault(t *testing.T) *vault {
	v := &vault{notify: make(chan struct{}, 1000)}
	v.srv = httptest.NewServer(http.HandlerFunc(v.serve))
	t.Cleanup(v.srv.Close)
	return v
}

func (v *vault) setMode(m string) {
	v.mu.Lock()
	v.mode = m
	v.mu.Unlock()
}

func (v *vault) serve(w http.ResponseWriter, r *http.Request) {
	defer func() { v.notify <- struct{}{} }()
	v.mu.Lock()
	defer v.mu.Unlock()
	v.posts++
	if r.Method != http.MethodPost || r.URL.Path != "/v1/events" || r.Header.Get("Content-Type") != "application/x-ndjson" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	switch v.mode {
	case "down":
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	case "refuse":
		http.Error(w, "malformed", http.StatusBadRequest)
		return
	}
	body, _ := io.ReadAll(r.Body)
	type ev struct {
		Queue     string          `json:"queue"`
		Seq       uint64          `json:"seq"`
		Type      string          `json:"type"`
		Alert     json.RawMessage `json:"alert"`
		Heartbeat json.RawMessage `json:"heartbeat"`
	}
	var evs []ev
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 2<<20)
	for sc.Scan() {
		var e ev
		d := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		d.DisallowUnknownFields()
		if err := d.Decode(&e); err != nil || e.Seq == 0 || (e.Type != event.TypeAlert && e.Type != event.TypeHeartbeat) {
			http.Error(w, "malformed", http.StatusBadRequest)
			return
		}
		evs = append(evs, e)
	}
	for _, e := range evs {
		if e.Queue != v.queue {
			v.queue, v.last = e.Queue, 0
		}
		if e.Seq <= v.last {
			continue
		}
		if e.Seq > v.last+1 {
			v.gaps++
		}
		v.last = e.Seq
		b := e.Alert
		if e.Type == event.TypeHeartbeat {
			b = e.Heartbeat
		}
		v.applied = append(v.applied, e.Type+" "+string(b))
	}
	if v.mode == "lose" {
		http.Error(w, "lost answer", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"ack":%d}`, v.last)
}

// snapshot returns what the vault applied and its gap count.
func (v *vault) snapshot() ([]string, int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.applied...), v.gaps
}

// waitApplied waits until the vault applied n events, failing the test if
// that takes implausibly long.
func (v *vault) waitApplied(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		if got, _ := v.snapshot(); len(got) >= n {
			return got
		}
		select {
		case <-v.notify:
		case <-deadline:
			got, _ := v.snapshot()
			t.Fatalf("vault applied %d events, want %d", len(got), n)
		}
	}
}

// waitPosts waits for n more requests.
func (v *vault) waitPosts(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-v.notify:
		case <-time.After(time.Minute):
			t.Fatal("no request reached the vault")
		}
	}
}

// errRefused marks a refusal of poster.
var errRefused = errors.New("refused")

// poster posts to a test server over plain HTTP.
type poster struct{ url string }

func (p poster) PostEvents(ctx context.Context, body []byte) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url+"/v1/events", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode/100 == 4 {
			return 0, fmt.Errorf("%w: %s", errRefused, resp.Status)
		}
		return 0, errors.New(resp.Status)
	}
	var a struct{ Ack uint64 }
	err = json.NewDecoder(resp.Body).Decode(&a)
	return a.Ack, err
}

// startSender runs a sender of the queue in dir to v until the test ends.
func startSender(t *testing.T, q *Queue, v *vault) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Sender{Queue: q, Poster: poster{v.srv.URL}, Refused: func(err error) bool { return errors.Is(err, errRefused) },
		Backoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, RefusedWait: 20 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("sender: %v", err)
		}
	})
}

func wantAlerts(from, to int) []string {
	var w []string
	for i := from; i <= to; i++ {
		w = append(w, fmt.Sprintf(`alert {"pid":%d,"command":"enc"}`, i))
	}
	return w
}

func TestSenderDelivers(t *testing.T) {
	v := newVault(t)
	q, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	startSender(t, q, v)
	for i := 1; i <= 10; i++ {
		mustAppend(t, q, event.TypeAlert, alertBody(i))
	}
	got := v.waitApplied(t, 10)
	if strings.Join(got, "\n") != strings.Join(wantAlerts(1, 10), "\n") {
		t.Fatalf("applied:\n%s", strings.Join(got, "\n"))
	}
}

// TestSenderOutages: the vault is down, then refuses, then loses its
// answers: every event arrives once, in order, without a gap.
func TestSenderOutages(t *testing.T) {
	for _, mode := range []string{"down", "refuse", "lose"} {
		t.Run(mode, func(t *testing.T) {
			v := newVault(t)
			q, err := Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			mustAppend(t, q, event.TypeAlert, alertBody(1))
			startSender(t, q, v)
			v.waitApplied(t, 1)
			v.setMode(mode)
			for i := 2; i <= 10; i++ {
				mustAppend(t, q, event.TypeAlert, alertBody(i))
			}
			v.waitPosts(t, 3) // tried, and tried again
			v.setMode("")
			mustAppend(t, q, event.TypeAlert, alertBody(11))
			got := v.waitApplied(t, 11)
			if strings.Join(got, "\n") != strings.Join(wantAlerts(1, 11), "\n") {
				t.Fatalf("applied:\n%s", strings.Join(got, "\n"))
			}
			if _, gaps := v.snapshot(); gaps != 0 {
				t.Errorf("%d gaps", gaps)
			}
		})
	}
}

// TestSenderRestart: events queued by one process while the vault was
// down are delivered by the next, once, in order.
func TestSenderRestart(t *testing.T) {
	v := newVault(t)
	v.setMode("down")
	dir := t.TempDir()
	q, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Sender{Queue: q, Poster: poster{v.srv.URL}, Backoff: time.Millisecond, MaxBackoff: time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	hb := []byte(`{"interval":"30s","watching":["/srv"],"version":"dev"}`)
	for i := 1; i <= 10; i++ {
		mustAppend(t, q, event.TypeAlert, alertBody(i))
		mustAppend(t, q, event.TypeHeartbeat, hb)
		mustAppend(t, q, event.TypeHeartbeat, hb)
	}
	v.waitPosts(t, 2)
	cancel()
	<-done

	v.setMode("")
	q2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	startSender(t, q2, v)
	got := v.waitApplied(t, 20)
	var want []string
	for _, a := range wantAlerts(1, 10) {
		want = append(want, a, "heartbeat "+string(hb))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("applied:\n%s", strings.Join(got, "\n"))
	}
}

// TestOneSenderPerQueue: of two senders of one folder, one sends; when
// it ends, the other takes over.
func TestOneSenderPerQueue(t *testing.T) {
	v := newVault(t)
	dir := t.TempDir()
	q1, _ := Open(dir)
	q2, _ := Open(dir)
	ctx1, cancel1 := context.WithCancel(context.Background())
	s1 := &Sender{Queue: q1, Poster: poster{v.srv.URL}, Backoff: time.Millisecond, MaxBackoff: time.Millisecond}
	done1 := make(chan error, 1)
	go func() { done1 <- s1.Run(ctx1) }()
	mustAppend(t, q1, event.TypeAlert, alertBody(1))
	v.waitApplied(t, 1)
	startSender(t, q2, v) // waits for the lock
	cancel1()
	<-done1
	mustAppend(t, q2, event.TypeAlert, alertBody(2)) // sent by the second once it holds the lock
	got := v.waitApplied(t, 2)
	if strings.Join(got, "\n") != strings.Join(wantAlerts(1, 2), "\n") {
		t.Fatalf("applied:\n%s", strings.Join(got, "\n"))
	}
}

// TestSenderSeesOtherProcesses: events another process appends (another
// Queue of the folder, whose appends do not wake this sender) are sent
// too.
func TestSenderSeesOtherProcesses(t *testing.T) {
	v := newVault(t)
	dir := t.TempDir()
	q1, _ := Open(dir)
	q2, _ := Open(dir)
	startSender(t, q1, v)
	for i := 1; i <= 3; i++ {
		mustAppend(t, q2, event.TypeAlert, alertBody(i))
	}
	got := v.waitApplied(t, 3)
	if strings.Join(got, "\n") != strings.Join(wantAlerts(1, 3), "\n") {
		t.Fatalf("applied:\n%s", strings.Join(got, "\n"))
	}
}

func TestBeat(t *testing.T) {
	q, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	for _, d := range []time.Duration{0, 999 * time.Millisecond, 25 * time.Hour} {
		if err := q.Beat(t.Context(), d, nil, "dev", log); err == nil {
			t.Errorf("interval %v accepted", d)
		}
	}
	var many []string
	for i := range event.MaxWatching + 3 {
		many = append(many, fmt.Sprintf("/srv/%d", i))
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // the first heartbeat is queued before Beat looks at ctx
	if err := q.Beat(ctx, 30*time.Second, many, "dev", log); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	_, es := pending(t, q)
	var hb event.Heartbeat
	if len(es) != 1 || es[0].Type != event.TypeHeartbeat || json.Unmarshal(es[0].Body, &hb) != nil ||
		hb.Interval != "30s" || hb.Version != "dev" || len(hb.Watching) != event.MaxWatching || hb.Watching[0] != "/srv/0" {
		t.Fatalf("queued %v: %+v", seqs(es), hb)
	}
}

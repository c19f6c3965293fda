package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/event"
	"github.com/kalaja/kalaja/internal/fleet"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/store"
)

// vault is a real server over HTTP with a fleet state whose records go to
// the repository's ledger, and two hosts' tokens.
type vault struct {
	*fixture
	url    string
	fleet  *fleet.State
	log    *ledger.Log
	tokens map[string]string
}

func newVault(t *testing.T) *vault {
	t.Helper()
	v := &vault{tokens: map[string]string{}}
	dir := t.TempDir()
	v.fixture = newFixture(t, func(o *Options) {
		_, vkey, err := ledger.GenerateKey(ledger.KeyName(blob.ID{1}))
		if err != nil {
			t.Fatal(err)
		}
		if v.log, err = ledger.OpenReadOnly(o.Store, blob.ID{1}, vkey); err != nil {
			t.Fatal(err)
		}
		open := func(context.Context) (*ledger.Log, error) { return v.log, nil }
		if v.fleet, err = fleet.Open(filepath.Join(dir, "fleet"), o.Now, fleet.LedgerLogger(open), fleet.WithTokenHosts(o.Tokens.Hosts),
			fleet.WithSource(&fleet.Source{Store: o.Store, OpenLog: open})); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = v.fleet.Close() })
		o.Fleet = v.fleet
		if v.tokens["host-2"], err = o.Tokens.Add("host-2"); err != nil {
			t.Fatal(err)
		}
	})
	v.tokens["host-1"] = v.token
	hs := httptest.NewServer(v.srv)
	t.Cleanup(hs.Close)
	v.url = hs.URL
	return v
}

// post sends an events body as host over HTTP and returns the status and body.
func (v *vault) post(host, path, body string) (int, string) {
	v.t.Helper()
	req, err := http.NewRequest(http.MethodPost, v.url+path, strings.NewReader(body))
	if err != nil {
		v.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	if host != "" {
		req.Header.Set("Authorization", "Bearer "+v.tokens[host])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// records returns the kinds and hosts of the ledger's records.
func (v *vault) records() string {
	v.t.Helper()
	recs, _, err := v.log.RecordsFrom(v.t.Context(), 0)
	if err != nil {
		v.t.Fatal(err)
	}
	var s []string
	for _, r := range recs {
		s = append(s, r.Host+":"+r.Kind)
	}
	return strings.Join(s, " ")
}

const q1 = "0123456789abcdef0123456789abcdef"

func heartbeatLine(seq int) string {
	return fmt.Sprintf(`{"queue":"%s","seq":%d,"type":"heartbeat","heartbeat":{"interval":"30s","watching":["/srv"],"version":"t"}}`, q1, seq)
}

func alertLine(seq int, extra string) string {
	return fmt.Sprintf(`{"queue":"%s","seq":%d,"type":"alert","alert":{"time":"2020-01-01T00:00:00Z","pid":42,"command":"evil"%s,"signals":[{"signal":"rename_ext"}],"files":["/srv/a"]}}`, q1, seq, extra)
}

// TestEvents posts events over HTTP: the host is the token's, whatever the
// message says, a malformed body applies nothing, and the alert reaches the
// ledger.
func TestEvents(t *testing.T) {
	v := newVault(t)
	tests := []struct {
		name string
		host string // token used; "" for none
		path string
		body string
		code int
		ack  string
	}{
		{"no token", "", eventsPath, heartbeatLine(1), http.StatusUnauthorized, ""},
		{"heartbeat and alert", "host-1", eventsPath, heartbeatLine(1) + "\n" + alertLine(2, `,"host":"host-2"`) + "\n", http.StatusOK, `{"ack":2}`},
		{"resent", "host-1", eventsPath, alertLine(2, "") + "\n", http.StatusOK, `{"ack":2}`},
		{"claims another host", "host-1", eventsPath, `{"queue":"` + q1 + `","seq":3,"type":"heartbeat","host":"host-2","heartbeat":{"interval":"30s"}}`, http.StatusBadRequest, ""},
		{"malformed second line", "host-1", eventsPath, alertLine(3, "") + "\n{", http.StatusBadRequest, ""},
		{"after the refusals", "host-1", eventsPath, heartbeatLine(3), http.StatusOK, `{"ack":3}`},
		{"too large", "host-1", eventsPath, strings.Repeat(" ", event.MaxBody+1), http.StatusRequestEntityTooLarge, ""},
	}
	for _, tt := range tests {
		code, body := v.post(tt.host, tt.path, tt.body)
		if code != tt.code || tt.ack != "" && strings.TrimSpace(body) != tt.ack {
			t.Errorf("%s: %d %q, want %d %s", tt.name, code, body, tt.code, tt.ack)
		}
	}
	if w := v.do(http.MethodGet, eventsPath, nil); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "POST" {
		t.Errorf("GET events: %d, Allow %q", w.Code, w.Header().Get("Allow"))
	}
	alerts := v.fleet.Alerts(time.Time{}, 10)
	if len(alerts) != 1 || alerts[0].Host != "host-1" || alerts[0].PID != 42 {
		t.Fatalf("alerts %+v, want host-1's one", alerts)
	}
	hosts := v.fleet.Hosts()
	if len(hosts) != 2 || hosts[0].Watcher != fleet.Watching || hosts[1].Name != "host-2" || hosts[1].Watcher != fleet.Never {
		t.Errorf("hosts %+v", hosts)
	}
	if got := v.records(); got != "host-1:alert" {
		t.Errorf("ledger records %q, want host-1's alert", got)
	}
}

// TestForgedRecords: a host's ledger batch holding a record only the
// server writes is refused, and so is one no reader would accept (it
// would stop every later append); one of the host's own kinds is stored.
func TestForgedRecords(t *testing.T) {
	v := newVault(t)
	rec := func(kind string) string {
		return string(ledger.Record{Kind: kind, ID: blob.ID{2}, Size: 3, Time: time.Unix(1_800_000_000, 0), Host: "host-1"}.Marshal())
	}
	batch := func(recs ...string) []byte {
		return []byte(fmt.Sprintf("kalaja ledger batch v1 0 %d\n%s\n", len(recs), strings.Join(recs, "\n")))
	}
	tests := []struct {
		name string
		body []byte
		want int
	}{
		{"alert", batch(rec(ledger.KindPack), rec(ledger.KindAlert)), http.StatusForbidden},
		{"silent", batch(rec(ledger.KindSilent)), http.StatusForbidden},
		{"back without its newline", bytes.TrimSuffix(batch(rec(ledger.KindBack)), []byte("\n")), http.StatusBadRequest},
		{"garbage", []byte("not a batch\n"), http.StatusBadRequest},
		{"fewer records than the header says", []byte(fmt.Sprintf("kalaja ledger batch v1 0 2\n%s\n", rec(ledger.KindPack))), http.StatusBadRequest},
		{"another start than its name", []byte(fmt.Sprintf("kalaja ledger batch v1 5 1\n%s\n", rec(ledger.KindPack))), http.StatusBadRequest},
		{"a record not in canonical form", []byte("kalaja ledger batch v1 0 1\n{\"kind\":\"pack\", \"v\":1}\n"), http.StatusBadRequest},
		{"snapshot", batch(rec(ledger.KindSnapshot)), http.StatusCreated},
	}
	for _, tt := range tests {
		path := "/v1/ledger/entries/" + fmt.Sprintf("%020d", 0)
		if w := v.do(http.MethodPut, path, tt.body); w.Code != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, w.Code, w.Body, tt.want)
		}
	}
	if _, err := v.st.Stat(t.Context(), store.Handle{Type: store.LedgerEntries, Name: fmt.Sprintf("%020d", 0)}); err != nil {
		t.Fatal(err)
	}
	if got := v.records(); got != "host-1:snapshot" {
		t.Errorf("ledger %q", got)
	}
}

// TestRun checks that a tick reads a snapshot record of the ledger into
// the host's snapshots, that a survey verifies the ledger and measures the
// storage, and that Run ends with its context.
func TestRun(t *testing.T) {
	v := newVault(t)
	if _, err := v.log.AppendUnsigned(t.Context(), []ledger.Record{{Kind: ledger.KindSnapshot, ID: blob.ID{3}, Size: 9,
		Time: time.Unix(1_800_000_000, 0), Host: "host-2"}}); err != nil {
		t.Fatal(err)
	}
	if err := v.fleet.Tick(t.Context()); err != nil {
		t.Fatal(err)
	}
	if hs := v.fleet.Hosts(); hs[1].LastSnapshot == nil || hs[1].LastSnapshot.Size != 9 || hs[1].Overdue {
		t.Errorf("host-2 %+v", hs[1])
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		v.srv.Run(ctx)
	}()
	cancel()
	<-done
	if err := v.fleet.Survey(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	// A snapshot logged but not stored is a problem.
	if got := v.fleet.Ledger(); got.Size != 1 || got.LastVerify.Time.IsZero() || got.LastVerify.OK || got.LastVerify.Problems != 1 {
		t.Errorf("ledger status %+v", got)
	}
	if got := v.fleet.Storage(); got.Bytes == 0 || got.Objects != 1 || got.Free != -1 {
		t.Errorf("storage %+v", got)
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/testtree"
)

// TestServeVault posts a host's alert and another host's heartbeats to a
// real kalaja serve over HTTPS, lets the second host go silent and come
// back, and checks the alert, silent and back records in 'ledger show',
// each host's own, and that verify passes after the next backup signs
// them.
func TestServeVault(t *testing.T) {
	s := startServer(t, "--check-every", "200ms")
	token1, tokenFile := s.addToken(t, "host-1")
	token2, _ := s.addToken(t, "host-2")
	e := s.client(t, tokenFile)
	e.must("init")
	src := filepath.Join(t.TempDir(), "src")
	generate(t, src, testtree.Options{Seed: 5, Files: 10, MaxFileSize: 64 << 10})
	e.backup(src)

	hc := s.https(t)
	post := func(token, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.url+"v1/events", strings.NewReader(body))
		must(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := hc.Do(req)
		must(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	q := "00112233445566778899aabbccddeeff"
	heartbeat := func(seq int, interval string) string {
		return fmt.Sprintf(`{"queue":"%s","seq":%d,"type":"heartbeat","heartbeat":{"interval":"%s","watching":["/srv"],"version":"test"}}`, q, seq, interval)
	}
	alert := fmt.Sprintf(`{"queue":"%s","seq":2,"type":"alert","alert":{"time":"2026-12-06T10:00:00Z","pid":4242,"command":"encryptor","signals":[{"signal":"rename_ext","score":3,"files":["/srv/a"]}],"files":["/srv/a","/srv/b"]}}`, q)
	if code, body := post(token1, heartbeat(1, "1h")+"\n"+alert+"\n"); code != http.StatusOK || body != `{"ack":2}` {
		t.Fatalf("host-1's events: %d %s", code, body)
	}
	if code, body := post(token2, heartbeat(1, "1s")); code != http.StatusOK || body != `{"ack":1}` {
		t.Fatalf("host-2's heartbeat: %d %s", code, body)
	}
	// host-2 sends nothing more: three seconds later the server's check
	// finds it silent and logs it once.
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(s.log(), "fleet: host silent") {
		if time.Now().After(deadline) {
			t.Fatalf("host-2 never went silent:\n%s", s.log())
		}
		time.Sleep(100 * time.Millisecond) // polling the server's log, which has no other signal
	}
	if code, body := post(token2, heartbeat(2, "1s")); code != http.StatusOK || body != `{"ack":2}` {
		t.Fatalf("host-2's return: %d %s", code, body)
	}

	var rows []struct {
		Kind string `json:"kind"`
		Host string `json:"host"`
		Size int64  `json:"size"`
	}
	must(t, json.Unmarshal([]byte(e.must("ledger", "show", "--all", "--json").stdout), &rows))
	var vault []string
	for _, r := range rows {
		switch r.Kind {
		case "alert", "silent", "back":
			vault = append(vault, r.Host+":"+r.Kind)
		}
	}
	if got := strings.Join(vault, " "); got != "host-1:alert host-2:silent host-2:back" {
		t.Fatalf("vault records %q, want host-1's alert, host-2's silence and return", got)
	}
	kept, err := os.ReadFile(filepath.Join(s.dir, "fleet", "events"))
	must(t, err)
	if !strings.Contains(string(kept), `"pid":4242`) || !strings.Contains(string(kept), `"host":"host-1"`) {
		t.Errorf("the kept events lack the alert:\n%s", kept)
	}
	e.backup(src)
	e.must("verify")
}

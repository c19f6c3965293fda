package remote

import (
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestPostEvents: the batch goes as sent, with the token, once; the ack
// comes back; refusals are told apart from failures worth retrying.
func TestPostEvents(t *testing.T) {
	const body = `{"queue":"0123456789abcdef0123456789abcdef","seq":1,"type":"heartbeat","heartbeat":{}}` + "\n"
	for _, c := range []struct {
		status  int
		answer  string
		ack     uint64
		refused bool
		fails   bool
	}{
		{200, `{"ack":1}`, 1, false, false},
		{200, `{"ack":0}`, 0, false, false},
		{200, `{}`, 0, false, true},
		{200, `nope`, 0, false, true},
		{400, "malformed", 0, true, true},
		{401, "no token", 0, true, true},
		{403, "dashboard", 0, true, true},
		{404, "unknown", 0, true, true},
		{408, "timeout", 0, false, true},
		{413, "too large", 0, true, true},
		{429, "slow down", 0, false, true},
		{500, "oops", 0, false, true},
		{503, "down", 0, false, true},
	} {
		posts := 0
		ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			posts++
			b, _ := io.ReadAll(r.Body)
			if r.Method != http.MethodPost || r.URL.Path != "/pre/v1/events" || string(b) != body ||
				r.Header.Get("Authorization") != "Bearer tok" || r.Header.Get("Content-Type") != "application/x-ndjson" {
				t.Errorf("request %s %s %q %v", r.Method, r.URL.Path, b, r.Header)
			}
			w.WriteHeader(c.status)
			io.WriteString(w, c.answer)
		}))
		pin := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
		s, err := New(ts.URL+"/pre", Options{Token: "tok", PinnedCert: pin})
		if err != nil {
			t.Fatal(err)
		}
		ack, err := s.PostEvents(t.Context(), []byte(body))
		ts.Close()
		if (err != nil) != c.fails || errors.Is(err, ErrRefused) != c.refused || ack != c.ack || posts != 1 {
			t.Errorf("%d %s: ack %d, err %v, %d posts", c.status, c.answer, ack, err, posts)
		}
		if err != nil && (strings.Contains(err.Error(), "tok ") || (c.status >= 400 && !strings.Contains(err.Error(), c.answer))) {
			t.Errorf("%d: error %q", c.status, err)
		}
	}
}

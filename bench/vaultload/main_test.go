package main

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeVault implements the events contract the way the server must: per
// host, the queue and the last applied seq; events applied once, in order.
// Every failEvery-th request fails with 503 before anything is applied;
// with dropAlert, the first alert is acknowledged but not counted.
type fakeVault struct {
	mu        sync.Mutex
	tokens    map[string]string // token -> host
	queue     map[string]string
	last      map[string]uint64
	alerts    map[string]int
	requests  int
	failEvery int
	dropAlert bool
}

func (v *fakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if r.URL.Path == "/metrics" {
		for h, n := range v.alerts {
			fmt.Fprintf(w, "kalaja_fleet_alerts_total{host=%q} %d\n", h, n)
		}
		return
	}
	host, ok := v.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	if r.URL.Path != "/v1/events" || r.Method != http.MethodPost || !ok {
		http.Error(w, "no", http.StatusBadRequest)
		return
	}
	v.requests++
	if v.failEvery > 0 && v.requests%v.failEvery == 0 {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	sc := bufio.NewScanner(r.Body)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if e.Queue != v.queue[host] {
			v.queue[host], v.last[host] = e.Queue, 0
		}
		if e.Seq <= v.last[host] {
			continue
		}
		v.last[host] = e.Seq
		if e.Type == "alert" {
			if v.dropAlert {
				v.dropAlert = false
				continue
			}
			v.alerts[host]++
		} else if _, ok := v.alerts[host]; !ok {
			v.alerts[host] = 0
		}
	}
	fmt.Fprintf(w, `{"ack":%d}`, v.last[host])
}

func TestRun(t *testing.T) {
	tests := []struct {
		name      string
		failEvery int
		dropAlert bool
		wantErr   bool
	}{
		{name: "all arrive"},
		{name: "failed requests are sent again", failEvery: 3},
		{name: "a lost alert is found", dropAlert: true, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const hosts = 6
			v := &fakeVault{tokens: map[string]string{}, queue: map[string]string{}, last: map[string]uint64{},
				alerts: map[string]int{}, failEvery: tt.failEvery, dropAlert: tt.dropAlert}
			dir := t.TempDir()
			for i := range hosts {
				token := "token-" + strconv.Itoa(i)
				v.tokens[token] = fmt.Sprintf("h%d", i)
				if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(i)), []byte(token+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			srv := httptest.NewTLSServer(v)
			defer srv.Close()
			cert := filepath.Join(dir, "cert.pem")
			if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
				t.Fatal(err)
			}
			o := options{url: srv.URL + "/", cert: cert, tokens: dir, names: "h%d", hosts: hosts, alerters: 2, alerts: 3,
				interval: 20 * time.Millisecond, duration: 200 * time.Millisecond, drain: 5 * time.Second}
			res, err := run(context.Background(), o)
			if (err != nil) != tt.wantErr {
				t.Fatalf("run: %v, want an error: %v (result %+v)", err, tt.wantErr, res)
			}
			if res.AlertsSent != 6 || res.Unacked != 0 {
				t.Errorf("sent %d alerts, %d events unacknowledged; want 6, 0", res.AlertsSent, res.Unacked)
			}
			if lost := len(res.Lost) > 0; lost != tt.wantErr {
				t.Errorf("lost %v", res.Lost)
			}
		})
	}
}

// Command vaultload plays a fleet of watchers against a kalaja serve: each
// host sends a heartbeat every -interval, and the first -alerters hosts
// send -alerts alerts each, spread over the run, through POST /v1/events
// as a watcher's queue does (docs/design.md, issue 19's wire contract):
// events are kept until the server acknowledges them, and sent again with
// the next request if a request fails. At the end it waits until every
// event is acknowledged (or -drain passes), then reads the server's
// /metrics and checks that kalaja_fleet_alerts_total of each alerting host
// counts exactly the alerts it sent (the server must be new: nothing
// counted before). It prints one JSON object with the numbers and exits 1
// if an alert was lost or counted twice.
//
// Tokens come from -tokens, a folder of files named 0, 1, ... holding one
// token each for hosts named by -names (a printf format of the index), as
// bench/vault.sh makes them.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kalaja/kalaja/internal/detect"
)

type options struct {
	url, cert, tokens, names  string
	hosts, alerters, alerts   int
	interval, duration, drain time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.url, "url", "", "the server, https://HOST:PORT/")
	flag.StringVar(&o.cert, "cert", "", "the server's certificate (PEM), pinned")
	flag.StringVar(&o.tokens, "tokens", "", "folder of token files 0, 1, ...")
	flag.StringVar(&o.names, "names", "host-%04d", "host name of index i, a printf format")
	flag.IntVar(&o.hosts, "hosts", 200, "hosts sending heartbeats")
	flag.IntVar(&o.alerters, "alerters", 10, "hosts that also send alerts (the first ones)")
	flag.IntVar(&o.alerts, "alerts", 5, "alerts each alerting host sends")
	flag.DurationVar(&o.interval, "interval", 10*time.Second, "heartbeat interval")
	flag.DurationVar(&o.duration, "duration", 2*time.Minute, "how long the hosts send")
	flag.DurationVar(&o.drain, "drain", time.Minute, "how long to wait for the last acknowledgements")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, o)
	if res != nil {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vaultload:", err)
		os.Exit(1)
	}
}

// result is what a run printed.
type result struct {
	Hosts          int              `json:"hosts"`
	Requests       int64            `json:"requests"`
	FailedRequests int64            `json:"failed_requests"`
	Heartbeats     int64            `json:"heartbeats"`
	AlertsSent     int              `json:"alerts_sent"`
	Unacked        int              `json:"events_unacknowledged"`
	AlertsCounted  int              `json:"alerts_counted"`
	Lost           []string         `json:"lost,omitempty"` // host: sent N, counted M
	LatencyP50ms   float64          `json:"latency_p50_ms"`
	LatencyP99ms   float64          `json:"latency_p99_ms"`
	LatencyMaxms   float64          `json:"latency_max_ms"`
	Statuses       map[string]int64 `json:"statuses"`
}

// event is one line of a POST /v1/events body.
type event struct {
	Queue     string        `json:"queue"`
	Seq       uint64        `json:"seq"`
	Type      string        `json:"type"`
	Heartbeat *heartbeat    `json:"heartbeat,omitempty"`
	Alert     *detect.Alert `json:"alert,omitempty"`
}

type heartbeat struct {
	Interval string   `json:"interval"`
	Watching []string `json:"watching"`
	Version  string   `json:"version"`
}

// host is one simulated watcher's queue.
type host struct {
	name, token, queue string
	seq                uint64
	pending            []event // not yet acknowledged, in seq order
	alertsSent         int
}

// fail counts a request that could not be made.
func (st *stats) fail(why string) {
	st.failed.Add(1)
	st.mu.Lock()
	st.statuses[why]++
	st.mu.Unlock()
}

type stats struct {
	requests, failed, heartbeats atomic.Int64
	mu                           sync.Mutex
	latencies                    []time.Duration
	statuses                     map[string]int64
}

func run(ctx context.Context, o options) (*result, error) {
	if o.alerters > o.hosts {
		return nil, fmt.Errorf("-alerters %d > -hosts %d", o.alerters, o.hosts)
	}
	client, err := newClient(o.cert)
	if err != nil {
		return nil, err
	}
	base := strings.TrimSuffix(o.url, "/")
	hosts := make([]*host, o.hosts)
	for i := range hosts {
		b, err := os.ReadFile(filepath.Join(o.tokens, strconv.Itoa(i)))
		if err != nil {
			return nil, fmt.Errorf("token of host %d: %w", i, err)
		}
		q := make([]byte, 16)
		if _, err := rand.Read(q); err != nil {
			return nil, err
		}
		hosts[i] = &host{name: fmt.Sprintf(o.names, i), token: strings.TrimSpace(string(b)), queue: hex.EncodeToString(q)}
	}
	st := &stats{statuses: map[string]int64{}}
	end := time.Now().Add(o.duration)
	var wg sync.WaitGroup
	for i, h := range hosts {
		alerts := 0
		if i < o.alerters {
			alerts = o.alerts
		}
		// Start times spread over an interval, as real hosts' would be.
		offset := time.Duration(int64(o.interval) * int64(i) / int64(len(hosts)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.play(ctx, client, base, o, offset, end, alerts, st)
		}()
	}
	wg.Wait()
	res := &result{Hosts: len(hosts), Requests: st.requests.Load(), FailedRequests: st.failed.Load(),
		Heartbeats: st.heartbeats.Load(), Statuses: st.statuses}
	slices.Sort(st.latencies)
	if n := len(st.latencies); n > 0 {
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		res.LatencyP50ms, res.LatencyP99ms, res.LatencyMaxms = ms(st.latencies[n/2]), ms(st.latencies[n*99/100]), ms(st.latencies[n-1])
	}
	for _, h := range hosts {
		res.AlertsSent += h.alertsSent
		res.Unacked += len(h.pending)
	}
	counted, err := alertCounts(ctx, client, base)
	if err != nil {
		return res, err
	}
	for i, h := range hosts {
		res.AlertsCounted += counted[h.name]
		if i < o.alerters && counted[h.name] != h.alertsSent || i >= o.alerters && counted[h.name] != 0 {
			res.Lost = append(res.Lost, fmt.Sprintf("%s: sent %d, counted %d", h.name, h.alertsSent, counted[h.name]))
		}
	}
	if len(res.Lost) > 0 || res.Unacked > 0 {
		return res, fmt.Errorf("%d events unacknowledged; alerts sent %d, counted %d", res.Unacked, res.AlertsSent, res.AlertsCounted)
	}
	return res, nil
}

// play runs one host until end, then sends what is pending until it is
// acknowledged or the drain time passes.
func (h *host) play(ctx context.Context, c *http.Client, base string, o options, offset time.Duration, end time.Time, alerts int, st *stats) {
	select {
	case <-time.After(offset):
	case <-ctx.Done():
		return
	}
	t := time.NewTicker(o.interval)
	defer t.Stop()
	// Alerts go out at ticks spread over the run.
	ticks := int(o.duration / o.interval)
	for tick := 0; time.Now().Before(end); tick++ {
		h.add(event{Type: "heartbeat", Heartbeat: &heartbeat{Interval: o.interval.String(), Watching: []string{"/srv"}, Version: "vaultload"}})
		st.heartbeats.Add(1)
		if alerts > 0 && ticks > 0 && h.alertsSent < alerts && tick >= h.alertsSent*ticks/alerts {
			h.add(event{Type: "alert", Alert: fakeAlert(h.name, h.alertsSent)})
			h.alertsSent++
		}
		h.send(ctx, c, base, st)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
	for h.alertsSent < alerts { // a run too short for the spread
		h.add(event{Type: "alert", Alert: fakeAlert(h.name, h.alertsSent)})
		h.alertsSent++
	}
	deadline := time.Now().Add(o.drain)
	for len(h.pending) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		h.send(ctx, c, base, st)
		if len(h.pending) > 0 {
			time.Sleep(time.Second)
		}
	}
}

func (h *host) add(e event) {
	h.seq++
	e.Queue, e.Seq = h.queue, h.seq
	h.pending = append(h.pending, e)
}

// send posts every pending event (at most 1000) and drops those the
// server acknowledged.
func (h *host) send(ctx context.Context, c *http.Client, base string, st *stats) {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	for _, e := range h.pending[:min(len(h.pending), 1000)] {
		if err := enc.Encode(e); err != nil {
			st.fail("encode: " + err.Error())
			return
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/events", &body)
	if err != nil {
		st.fail("request: " + err.Error())
		return
	}
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Set("Content-Type", "application/x-ndjson")
	began := time.Now()
	resp, err := c.Do(req)
	st.requests.Add(1)
	status := "error"
	defer func() {
		st.mu.Lock()
		st.statuses[status]++
		st.latencies = append(st.latencies, time.Since(began))
		st.mu.Unlock()
	}()
	if err != nil {
		st.failed.Add(1)
		return
	}
	defer resp.Body.Close()
	status = strconv.Itoa(resp.StatusCode)
	var v struct {
		Ack uint64 `json:"ack"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&v) != nil {
		st.failed.Add(1)
		return
	}
	i := 0
	for i < len(h.pending) && h.pending[i].Seq <= v.Ack {
		i++
	}
	h.pending = h.pending[i:]
}

// fakeAlert is an alert as a watcher writes it, for the n-th alert of host.
func fakeAlert(host string, n int) *detect.Alert {
	files := make([]string, 20)
	for i := range files {
		files[i] = fmt.Sprintf("/srv/%s/docs/report-%d-%d.docx", host, n, i)
	}
	return &detect.Alert{
		Time: time.Now().UTC(), Scope: "process tree", PID: 4000 + n, Group: 4000 + n, PIDs: []int{4000 + n},
		Command: "encryptor", UID: 1000, Score: 12.5, Threshold: 10, Stopped: true, Files: files,
		Signals: []detect.Hit{{Signal: "entropy", Score: 8, Files: files[:10]}, {Signal: "rename_ext", Score: 4.5, Files: files[10:]}},
	}
}

// alertCounts reads kalaja_fleet_alerts_total per host from /metrics.
func alertCounts(ctx context.Context, c *http.Client, base string) (map[string]int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read /metrics: %w", err)
	}
	defer resp.Body.Close()
	m := map[string]int{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), `kalaja_fleet_alerts_total{host="`)
		if !ok {
			continue
		}
		name, val, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", sc.Text(), err)
		}
		m[name] = int(f)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read /metrics: %w", err)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("/metrics has no kalaja_fleet_alerts_total (no fleet state in this server?)")
	}
	return m, nil
}

// newClient pins the server's certificate, as kalaja's own client does.
func newClient(certFile string) (*http.Client, error) {
	b, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("read the server's certificate: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no certificate", certFile)
	}
	pinned := block.Bytes
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12,
			// The pin is the trust: the exact certificate, not its names or dates.
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, pinned) {
					return errors.New("the server did not present the pinned certificate")
				}
				return nil
			}},
		MaxIdleConnsPerHost: 1000,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr, Timeout: time.Minute}, nil
}

package event

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func queue(n int) string { return fmt.Sprintf("%032x", n) }

func TestParse(t *testing.T) {
	q := queue(1)
	tests := []struct {
		name string
		body string
		n    int // events, -1 for an error
	}{
		{"heartbeat", `{"queue":"` + q + `","seq":1,"type":"heartbeat","heartbeat":{"interval":"30s","watching":["/srv"],"version":"1"}}`, 1},
		{"two and a blank line", `{"queue":"` + q + `","seq":1,"type":"alert","alert":{"pid":3}}` + "\n\n" + `{"queue":"` + q + `","seq":2,"type":"alert","alert":{}}` + "\n", 2},
		{"empty", "", -1},
		{"bad queue", `{"queue":"xyz","seq":1,"type":"alert","alert":{}}`, -1},
		{"seq 0", `{"queue":"` + q + `","seq":0,"type":"alert","alert":{}}`, -1},
		{"unknown type", `{"queue":"` + q + `","seq":1,"type":"x"}`, -1},
		{"unknown field", `{"queue":"` + q + `","seq":1,"type":"alert","alert":{},"host":"other"}`, -1},
		{"alert not an object", `{"queue":"` + q + `","seq":1,"type":"alert","alert":3}`, -1},
		{"short interval", `{"queue":"` + q + `","seq":1,"type":"heartbeat","heartbeat":{"interval":"1ms"}}`, -1},
		{"heartbeat without object", `{"queue":"` + q + `","seq":1,"type":"heartbeat"}`, -1},
		{"trailing garbage", `{"queue":"` + q + `","seq":1,"type":"alert","alert":{}} x`, -1},
		{"too many", strings.Repeat(`{"queue":"`+q+`","seq":1,"type":"alert","alert":{}}`+"\n", MaxEvents+1), -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := Parse([]byte(tt.body))
			if tt.n < 0 {
				if err == nil {
					t.Fatalf("accepted: %+v", evs)
				}
				return
			}
			if err != nil || len(evs) != tt.n {
				t.Fatalf("%d events, %v; want %d", len(evs), err, tt.n)
			}
		})
	}
}

// FuzzParse checks that what Parse accepts is within the bounds and
// encodes back to events Parse accepts the same.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"queue":"` + queue(1) + `","seq":1,"type":"heartbeat","heartbeat":{"interval":"30s","watching":["/srv"],"version":"1"}}`))
	f.Add([]byte(`{"queue":"` + queue(1) + `","seq":2,"type":"alert","alert":{"pid":3,"files":["a"]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := Parse(b)
		if err != nil {
			return
		}
		if len(evs) == 0 || len(evs) > MaxEvents {
			t.Fatalf("%d events accepted", len(evs))
		}
		var again []byte
		for _, ev := range evs {
			if ev.Type == TypeHeartbeat {
				if d, err := ev.Heartbeat.Duration(); err != nil || d < MinInterval || d > MaxInterval {
					t.Fatalf("heartbeat interval %q accepted: %v", ev.Heartbeat.Interval, err)
				}
			}
			line, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			again = append(append(again, line...), '\n')
		}
		if evs2, err := Parse(again); err != nil || len(evs2) != len(evs) {
			t.Fatalf("re-encoded events %q: %d, %v", again, len(evs2), err)
		}
	})
}

package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kalaja/kalaja/internal/blob"
)

// TestServerOwners: the listing of snapshots names the host whose token
// stored each, whatever the snapshot says inside, first writer only, and
// it survives a restart.
func TestServerOwners(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.OwnersFile = filepath.Join(filepath.Dir(o.UsageFile), "owners") })
	other, err := f.opts.Tokens.Add("web-07")
	if err != nil {
		t.Fatal(err)
	}
	mine, theirs := []byte("snapshot of host-1"), []byte("snapshot claiming host-1")
	if w := f.do(http.MethodPut, "/v1/snapshots/"+sha(mine), mine); w.Code != http.StatusCreated {
		t.Fatalf("PUT: %d %s", w.Code, w.Body)
	}
	f.token, other = other, f.token
	if w := f.do(http.MethodPut, "/v1/snapshots/"+sha(theirs), theirs); w.Code != http.StatusCreated {
		t.Fatalf("PUT: %d %s", w.Code, w.Body)
	}
	if w := f.do(http.MethodPut, "/v1/snapshots/"+sha(mine), mine); w.Code != http.StatusConflict {
		t.Fatalf("PUT of an existing snapshot by another host: %d %s", w.Code, w.Body)
	}
	f.token = other
	owners := func() map[string]string {
		t.Helper()
		w := f.do(http.MethodGet, "/v1/snapshots/", nil)
		got := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(w.Body.String()), "\n") {
			var e listEntry
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatal(err)
			}
			if !e.End {
				got[e.Name] = e.Host
			}
		}
		return got
	}
	want := map[string]string{sha(mine): "host-1", sha(theirs): "web-07"}
	if got := owners(); !equalMaps(got, want) {
		t.Fatalf("owners %v, want %v", got, want)
	}
	srv, err := New(f.opts)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	if got := owners(); !equalMaps(got, want) {
		t.Fatalf("owners after a restart %v, want %v", got, want)
	}
	if w := f.do(http.MethodGet, "/v1/index/", nil); bytes.Contains(w.Body.Bytes(), []byte(`"host"`)) {
		t.Errorf("an index listing names hosts: %s", w.Body)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestOwnersFileRefuses(t *testing.T) {
	id := blob.Hash([]byte("x")).String()
	tests := []struct {
		name, content string
		want          error
	}{
		{"other version", "kalaja owners v2\n", blob.ErrUnsupported},
		{"no header", id + " h\n", blob.ErrUnsupported},
		{"bad host", ownersHeader + "\n" + id + " -h\n", blob.ErrCorrupt},
		{"bad name", ownersHeader + "\n" + id[1:] + " h\n", blob.ErrCorrupt},
		{"no host", ownersHeader + "\n" + id + "\n", blob.ErrCorrupt},
		{"unterminated", ownersHeader + "\n" + id + " h", blob.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "owners")
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := loadOwners(p); !errors.Is(err, tt.want) {
				t.Fatalf("loadOwners = %v, want %v", err, tt.want)
			}
		})
	}
}

// FuzzOwners checks that parsing the owners file never panics and that
// every accepted line names a snapshot and a valid host.
func FuzzOwners(f *testing.F) {
	f.Add([]byte(ownersHeader + "\n" + blob.Hash([]byte("x")).String() + " host-1\n"))
	f.Add([]byte(ownersHeader + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		o := &owners{hosts: map[blob.ID]string{}}
		if err := o.parse(b); err != nil {
			return
		}
		for _, h := range o.hosts {
			if CheckHost(h) != nil {
				t.Fatalf("accepted host %q", h)
			}
		}
	})
}

package ledger

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/kalaja/kalaja/internal/blob"
)

func TestPinFileLoad(t *testing.T) {
	tests := []struct {
		name    string
		content string // "" for no file
		want    Pin
		ok      bool
		err     error
	}{
		{name: "none"},
		{name: "current", content: `{"version":1,"log_key":"k+1+x","checkpoint":"note"}`, want: Pin{LogKey: "k+1+x", Checkpoint: []byte("note")}, ok: true},
		{name: "key only", content: `{"version":1,"log_key":"k+1+x"}`, want: Pin{LogKey: "k+1+x"}, ok: true},
		// Files written before the version field existed.
		{name: "unversioned", content: `{"log_key":"k+1+x","checkpoint":"note"}`, want: Pin{LogKey: "k+1+x", Checkpoint: []byte("note")}, ok: true},
		{name: "future version", content: `{"version":3,"log_key":"k+1+x"}`, err: blob.ErrUnsupported},
		{name: "administrator's key", content: `{"version":2,"log_key":"k+1+x","admin_key":"a+1+y"}`, want: Pin{LogKey: "k+1+x", AdminKey: "a+1+y"}, ok: true},
		{name: "version 2 without administrator's key", content: `{"version":2,"log_key":"k+1+x"}`, err: blob.ErrCorrupt},
		{name: "version 1 with administrator's key", content: `{"version":1,"log_key":"k+1+x","admin_key":"a+1+y"}`, err: blob.ErrCorrupt},
		{name: "no key", content: `{"version":1}`, err: blob.ErrCorrupt},
		{name: "unknown field", content: `{"version":1,"log_key":"k","extra":1}`, err: blob.ErrCorrupt},
		{name: "not json", content: "log_key=k", err: blob.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := PinFile(filepath.Join(t.TempDir(), "ledger.json"))
			if tt.content != "" {
				if err := os.WriteFile(string(f), []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, ok, err := f.Load()
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Load = %v, want an error wrapping %v", err, tt.err)
				}
				return
			}
			if err != nil || ok != tt.ok || got.LogKey != tt.want.LogKey || string(got.Checkpoint) != string(tt.want.Checkpoint) {
				t.Fatalf("Load = %+v, %v, %v; want %+v, %v", got, ok, err, tt.want, tt.ok)
			}
		})
	}
}

func TestPinFileUpdate(t *testing.T) {
	f := PinFile(filepath.Join(t.TempDir(), "state", "ledger.json"))
	if _, err := f.Update(func(cur Pin, ok bool) (Pin, error) {
		if ok {
			t.Errorf("Update of a missing pin passed ok")
		}
		return Pin{LogKey: "k", Checkpoint: []byte("one")}, nil
	}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(string(f))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("pin file: %v, %v; want mode 0600", fi, err)
	}
	refused := errors.New("refused")
	if _, err := f.Update(func(Pin, bool) (Pin, error) { return Pin{LogKey: "other"}, refused }); !errors.Is(err, refused) {
		t.Fatalf("Update = %v, want the change's error", err)
	}
	if p, _, _ := f.Load(); p.LogKey != "k" || string(p.Checkpoint) != "one" {
		t.Fatalf("a refused change was written: %+v", p)
	}
	b, _ := os.ReadFile(string(f))
	if want := "{\n  \"version\": 1,\n  \"log_key\": \"k\",\n  \"checkpoint\": \"one\"\n}\n"; string(b) != want {
		t.Fatalf("pin file holds %q, want %q", b, want)
	}
	ents, _ := os.ReadDir(filepath.Dir(string(f)))
	for _, e := range ents {
		if e.Name() != "ledger.json" && e.Name() != "ledger.json.lock" {
			t.Errorf("Update left %s behind", e.Name())
		}
	}
}

// TestPinNeverBackwards is the attack the pin's compare-and-swap defends
// against: two clients on one host, one of which saw an older state of
// the log, each remembering what it checked. The pin must end at the
// newest, whatever the order.
func TestPinNeverBackwards(t *testing.T) {
	tl := newTestLog(t)
	dir := t.TempDir()
	open := func() *Client {
		_, lg := tl.host(t)
		c, err := OpenClient(lg, dir)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	old, ahead := open(), open()
	if err := ahead.Append(t.Context(), testRecords("a", 0, 3)); err != nil {
		t.Fatal(err)
	}
	if err := ahead.Append(t.Context(), testRecords("a", 3, 2)); err != nil {
		t.Fatal(err)
	}
	// old checked the log when it held 3 records and remembers that late.
	cp3, note3, err := tl.log.checkpoint(t.Context(), 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Remember(t.Context(), cp3, note3); err != nil {
		t.Fatal(err)
	}
	if got := open().Seen(); got.N != 5 {
		t.Fatalf("pin moved back to %d records, want 5", got.N)
	}
	if old.Seen().N != 5 {
		t.Errorf("the client that was behind sees %d records after Remember, want the pinned 5", old.Seen().N)
	}

	// Many clients appending at once: the pin ends at the log's size.
	var wg sync.WaitGroup
	clients := make([]*Client, 8)
	for i := range clients {
		clients[i] = open()
	}
	for i, c := range clients {
		wg.Go(func() {
			if err := c.Append(t.Context(), testRecords("c", 5+i, 1)); err != nil {
				t.Errorf("client %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	latest, _, err := tl.log.Latest(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := open().Seen(); got != latest || got.N != 5+int64(len(clients)) {
		t.Fatalf("pin after concurrent appends = %v, want the log's newest checkpoint %v", got, latest)
	}
}

// TestClientRefusesOtherKey: a repository whose log key is not the pinned
// one (replaced, or its key swapped) is refused as tampering.
func TestClientRefusesOtherKey(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenClient(newTestLog(t).log, dir); err != nil {
		t.Fatal(err)
	}
	_, err := OpenClient(newTestLog(t).log, dir)
	if !errors.Is(err, ErrSignature) || !errors.Is(err, blob.ErrTampered) {
		t.Fatalf("OpenClient of another log = %v, want ErrSignature (tampering)", err)
	}
}

func TestWitnessPin(t *testing.T) {
	tl := newTestLog(t)
	witness := mustSigner(t, testWitnessSkey)
	pin := PinFile(filepath.Join(t.TempDir(), "logs", "repo.json"))
	if _, err := Witness(t.Context(), tl.st, tl.id, witness, pin, "other+00000000+AQ"); err == nil {
		t.Fatal("a witness co-signed an empty log under a bad key")
	}
	cp := tl.append(t, testRecords("h", 0, 3), Checkpoint{})
	run, err := Witness(t.Context(), tl.st, tl.id, witness, pin, "")
	if err != nil {
		t.Fatal(err)
	}
	if run.Published != tl.log.VerifierKey() || run.Checkpoint != cp || run.Previous != 0 {
		t.Fatalf("first run = %+v; want the published key pinned and %v co-signed", run, cp)
	}
	cp = tl.append(t, testRecords("h", 3, 2), cp)
	if run, err = Witness(t.Context(), tl.st, tl.id, witness, pin, ""); err != nil || run.Published != "" || run.Previous != 3 || run.Checkpoint != cp {
		t.Fatalf("second run = %+v, %v; want %v co-signed after 3", run, err, cp)
	}
	if _, err := Witness(t.Context(), tl.st, tl.id, witness, pin, testLogVkey); err == nil {
		t.Fatal("a witness accepted a log key other than the pinned one")
	}
	// A log rolled back below what the witness co-signed is refused, and the
	// pin stays.
	other := newTestLogFor(t, tl.id)
	other.append(t, testRecords("x", 0, 2), Checkpoint{})
	if _, err := Witness(t.Context(), other.st, other.id, witness, pin, ""); err == nil {
		t.Fatal("a witness co-signed another history of the log")
	}
	p, _, err := pin.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := OpenCheckpoint(p.Checkpoint, tl.log.Origin(), tl.log.Verifier()); err != nil || got != cp {
		t.Fatalf("pin = %v, %v; want %v", got, err, cp)
	}
}

package ledger

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/local"
)

// eventRecords returns n event records of kind about host, numbered from,
// each with its own ID.
func eventRecords(kind, host string, from, n int) []Record {
	recs := testRecords(host, from, n)
	for i := range recs {
		recs[i].Kind = kind
		recs[i].ID = blob.Hash(fmt.Appendf(nil, "%s %s/%d", kind, host, from+i))
	}
	return recs
}

// vault opens tl's log as the server does: its own store handle, the
// log's public key, no signing key.
func (tl *testLog) vault(t testing.TB) *Log {
	t.Helper()
	st, err := local.Open(tl.dir)
	if err != nil {
		t.Fatal(err)
	}
	lg, err := OpenReadOnly(st, tl.id, tl.log.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	return lg
}

// Records the vault appends unsigned are checkpointed by the next append
// of a holder of the log key, whose client's consistency check passes, and
// verify covers them without looking for objects.
func TestAppendUnsigned(t *testing.T) {
	tl := newTestLog(t)
	c, err := OpenClient(tl.log, filepath.Join(t.TempDir(), "client"))
	if err != nil {
		t.Fatal(err)
	}
	all := testRecords("db-01", 0, 3)
	if err := c.Append(t.Context(), all); err != nil {
		t.Fatal(err)
	}
	v := tl.vault(t)
	batches := [][]Record{
		eventRecords(KindAlert, "db-01", 0, 1),
		append(eventRecords(KindSilent, "web-02", 0, 1), eventRecords(KindBack, "web-02", 1, 1)...),
		eventRecords(KindResolved, "db-01", 0, 1),
	}
	for _, b := range batches {
		start, err := v.AppendUnsigned(t.Context(), b)
		if err != nil {
			t.Fatalf("AppendUnsigned: %v", err)
		}
		if start != int64(len(all)) {
			t.Fatalf("AppendUnsigned started at %d, want %d", start, len(all))
		}
		all = append(all, b...)
	}
	rep := tl.verifyClean(t, VerifyOptions{})
	if rep.Records != int64(len(all)) || rep.SignedN != 3 || rep.Objects != 0 || len(rep.Notes) != 1 {
		t.Fatalf("Verify before a signed append = %+v, want %d records, 3 signed, no objects, one note", rep, len(all))
	}

	// The next backup checkpoints them.
	mine := testRecords("db-01", 3, 2)
	if err := c.Append(t.Context(), mine); err != nil {
		t.Fatalf("signed Append after unsigned ones: %v", err)
	}
	all = append(all, mine...)
	if c.Seen().N != int64(len(all)) {
		t.Fatalf("client saw %+v, want size %d", c.Seen(), len(all))
	}
	if _, _, err := c.Check(t.Context()); err != nil {
		t.Fatalf("client Check: %v", err)
	}
	tl.checkContents(t, all, c.Seen())
	rep = tl.verifyClean(t, VerifyOptions{Seen: []Seen{{Source: "client", Checkpoint: c.Seen()}}})
	if rep.SignedN != int64(len(all)) || len(rep.Notes) != 0 {
		t.Fatalf("Verify = %+v, want all %d records signed and no notes", rep, len(all))
	}
	// The vault's Log resumes where it stopped, past the signed batch.
	if start, err := v.AppendUnsigned(t.Context(), eventRecords(KindAlert, "db-01", 1, 1)); err != nil || start != int64(len(all)) {
		t.Fatalf("AppendUnsigned = %d, %v; want %d", start, err, len(all))
	}
}

func TestAppendUnsignedRefuses(t *testing.T) {
	tl := newTestLog(t)
	v := tl.vault(t)
	bad := eventRecords(KindAlert, "h", 0, 1)
	bad[0].Size = -1
	for name, recs := range map[string][]Record{"empty": nil, "invalid": bad} {
		if _, err := v.AppendUnsigned(t.Context(), recs); err == nil {
			t.Errorf("%s: AppendUnsigned stored it", name)
		}
	}
	// A batch after the checkpoint that does not parse cannot be appended past.
	h := store.Handle{Type: store.LedgerEntries, Name: entryName(0)}
	if err := tl.st.Save(t.Context(), h, []byte("garbage\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := v.AppendUnsigned(t.Context(), eventRecords(KindAlert, "h", 0, 1)); !errors.Is(err, blob.ErrCorrupt) {
		t.Fatalf("AppendUnsigned after a corrupt batch: %v, want ErrCorrupt", err)
	}
}

// squatStore creates, once, a batch of another writer under the name an
// entries Save is about to take, as a writer that won the race (or
// crashed after storing it) would have.
type squatStore struct {
	store.Store
	once  sync.Once
	squat []Record
}

func (s *squatStore) Save(ctx context.Context, h store.Handle, data []byte) error {
	if h.Type == store.LedgerEntries {
		var err error
		s.once.Do(func() {
			n, _ := parseIndexName(h.Name)
			err = s.Store.Save(ctx, h, batch{start: n, records: encodeAll(s.squat)}.encode())
		})
		if err != nil {
			return err
		}
	}
	return s.Store.Save(ctx, h, data)
}

func TestAppendUnsignedConflict(t *testing.T) {
	tl := newTestLog(t)
	first := testRecords("a", 0, 2)
	cp := tl.append(t, first, Checkpoint{})
	v := tl.vault(t)
	// A stale end: another host appended after the vault's last append.
	if _, err := v.AppendUnsigned(t.Context(), eventRecords(KindAlert, "a", 0, 1)); err != nil {
		t.Fatal(err)
	}
	between := testRecords("b", 3, 2)
	cp = tl.append(t, between, cp)

	squat := testRecords("c", 5, 3)
	st, err := local.Open(tl.dir)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := OpenReadOnly(&squatStore{Store: st, squat: squat}, tl.id, tl.log.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	// v goes past the other host's batch; v2 past v's and the squatter's.
	for _, lg := range []*Log{v, v2} {
		want := cp.N
		if lg == v2 {
			want = cp.N + 1 + int64(len(squat))
		}
		start, err := lg.AppendUnsigned(t.Context(), eventRecords(KindSilent, "c", 0, 1))
		if err != nil || start != want {
			t.Fatalf("AppendUnsigned = %d, %v; want %d", start, err, want)
		}
	}
	all := append(append(append(first, eventRecords(KindAlert, "a", 0, 1)...), between...), eventRecords(KindSilent, "c", 0, 1)...)
	all = append(append(all, squat...), eventRecords(KindSilent, "c", 0, 1)...)
	cp = tl.append(t, testRecords("a", 8, 1), cp)
	all = append(all, testRecords("a", 8, 1)...)
	tl.checkContents(t, all, cp)
	if rep := tl.verifyClean(t, VerifyOptions{}); rep.SignedN != int64(len(all)) {
		t.Fatalf("Verify: signed %d, want %d", rep.SignedN, len(all))
	}
}

// Vaults appending unsigned and hosts appending signed, all at once, lose
// no record, and the last signed append covers them all.
func TestConcurrentAppendUnsigned(t *testing.T) {
	const writers, appends = 4, 10
	tl := newTestLogFor(t, blob.Hash([]byte("concurrent unsigned")))
	var g errgroup.Group
	for w := range writers {
		g.Go(func() error {
			_, lg := tl.host(t)
			var seen Checkpoint
			for i := range appends {
				cp, _, err := lg.Append(t.Context(), testRecords(fmt.Sprint("host", w), i, 1), seen)
				if err != nil {
					return fmt.Errorf("host %d, append %d: %w", w, i, err)
				}
				seen = cp
			}
			return nil
		})
		g.Go(func() error {
			v := tl.vault(t)
			for i := range appends {
				if _, err := v.AppendUnsigned(t.Context(), eventRecords(KindAlert, fmt.Sprint("host", w), i, 1)); err != nil {
					return fmt.Errorf("vault %d, append %d: %w", w, i, err)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	cp := tl.append(t, testRecords("last", 0, 1), Checkpoint{})
	c, err := tl.log.ReadAll(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(2*writers*appends + 1); c.N() != want || cp.N != want {
		t.Fatalf("the log holds %d records, the checkpoint %d, want %d", c.N(), cp.N, want)
	}
	next := map[string]int64{} // next number expected of each writer
	for i, r := range c.Records {
		w := r.Kind + " " + r.Host
		if want := testRecordID(r.Kind, r.Host, next[w]); r.ID != want {
			t.Fatalf("record %d is %+v; want %s's record %d", i, r, w, next[w])
		}
		next[w]++
	}
	if rep := tl.verifyClean(t, VerifyOptions{}); rep.SignedN != c.N() || len(rep.Notes) != 0 {
		t.Fatalf("Verify: signed %d, notes %q; want all %d", rep.SignedN, rep.Notes, c.N())
	}
}

// testRecordID is the ID testRecords or eventRecords gives record i of
// kind for host.
func testRecordID(kind, host string, i int64) blob.ID {
	if strings.Contains(kind, "test") {
		return testRecords(host, int(i), 1)[0].ID
	}
	return eventRecords(kind, host, int(i), 1)[0].ID
}

// The server looks into a host's batch with ParseBatch and refuses one that
// holds a server-only record.
func TestParseBatchServerOnly(t *testing.T) {
	tests := []struct {
		name       string
		recs       []Record
		serverOnly bool
	}{
		{"backup", testRecords("h", 0, 3), false},
		{"resolution", eventRecords(KindResolved, "h", 0, 1), false},
		{"forged alert", append(testRecords("h", 0, 1), eventRecords(KindAlert, "h", 0, 1)...), true},
		{"forged silence", eventRecords(KindSilent, "h", 0, 1), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := ParseBatch(batch{start: 5, records: encodeAll(tt.recs)}.encode(), 5)
			if err != nil || len(recs) != len(tt.recs) {
				t.Fatalf("ParseBatch: %d records, %v; want %d", len(recs), err, len(tt.recs))
			}
			got := false
			for i, r := range recs {
				if r.ID != tt.recs[i].ID || r.Kind != tt.recs[i].Kind {
					t.Fatalf("record %d: %+v, want %+v", i, r, tt.recs[i])
				}
				got = got || ServerOnly(r.Kind)
			}
			if got != tt.serverOnly {
				t.Fatalf("server-only record found: %v, want %v", got, tt.serverOnly)
			}
		})
	}
	if _, err := ParseBatch(batch{start: 5, records: encodeAll(testRecords("h", 0, 1))}.encode(), 6); !errors.Is(err, blob.ErrCorrupt) {
		t.Fatalf("ParseBatch at the wrong start: %v, want ErrCorrupt", err)
	}
}

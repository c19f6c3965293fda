package fleet

import (
	"context"
	"errors"
	"github.com/kalaja/kalaja/internal/event"
	"path/filepath"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/local"
)

// TestStorage surveys a repository on several days and checks the growth,
// the free space's end, and that the samples survive a restart.
func TestStorage(t *testing.T) {
	dir := t.TempDir()
	st, err := local.Create(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	c := newClock()
	free := int64(10_000)
	src := &Source{Store: st, Free: func() int64 { return free }}
	s, err := Open(filepath.Join(dir, "fleet"), c.now, &fakeLog{}, WithSource(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Storage(); got.Free != -1 || got.Bytes != 0 || got.GrowthPerDay != 0 {
		t.Errorf("before a survey: %+v", got)
	}
	for day := range 3 {
		data := make([]byte, 1000)
		data[0] = byte(day)
		if err := st.Save(t.Context(), store.Handle{Type: store.Index, Name: blob.Hash(data).String()}, data); err != nil {
			t.Fatal(err)
		}
		if err := s.Survey(t.Context(), true); err != nil {
			t.Fatal(err)
		}
		c.add(24 * time.Hour)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, filepath.Join(dir, "fleet"), c, &fakeLog{})
	got := s.Storage()
	want := Storage{Bytes: 3000, GrowthPerDay: 1000, Free: -1}
	if got != want {
		t.Errorf("after a restart without a survey: %+v, want %+v", got, want)
	}
	if v := s.Ledger().LastVerify; !v.Time.IsZero() {
		t.Errorf("a verify without a ledger: %+v", v)
	}
	s, err = Open(filepath.Join(dir, "fleet"), c.now, &fakeLog{}, WithSource(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Survey(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	got = s.Storage()
	// A fourth day without growth: 2000 bytes over three days.
	want = Storage{Bytes: 3000, Objects: 3, GrowthPerDay: 666, Free: free, FullBy: c.now().UTC().Truncate(24 * time.Hour).Add(15 * 24 * time.Hour)}
	if got != want {
		t.Errorf("%+v, want %+v", got, want)
	}
}

// crashingLog appends to the ledger and then fails, as a server that
// crashed after the append, before it could forget the records.
type crashingLog struct {
	open func(context.Context) (*ledger.Log, error)
}

func (c crashingLog) Log(ctx context.Context, recs []ledger.Record) error {
	if err := LedgerLogger(c.open).Log(ctx, recs); err != nil {
		return err
	}
	return errors.New("crash")
}

// TestCrashAfterAppend: records appended to the ledger by a server that
// crashed before it forgot them are found there after the restart and not
// appended again.
func TestCrashAfterAppend(t *testing.T) {
	dir := t.TempDir()
	st, err := local.Create(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	_, vkey, err := ledger.GenerateKey(ledger.KeyName(blob.ID{1}))
	if err != nil {
		t.Fatal(err)
	}
	lg, err := ledger.OpenReadOnly(st, blob.ID{1}, vkey)
	if err != nil {
		t.Fatal(err)
	}
	open := func(context.Context) (*ledger.Log, error) { return lg, nil }
	src := WithSource(&Source{Store: st, OpenLog: open})
	c := newClock()
	s, err := Open(filepath.Join(dir, "fleet"), c.now, crashingLog{open}, src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(t.Context(), "h", []event.Event{alert(queue(1), 1, 7)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(filepath.Join(dir, "fleet"), c.now, LedgerLogger(open), src)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	for range 2 {
		if err := s.Tick(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	recs, _, err := lg.RecordsFrom(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Kind != ledger.KindAlert {
		t.Fatalf("ledger %+v, want one alert", recs)
	}
	if p := s.hostFile("h").Pending; len(p) != 0 {
		t.Errorf("still pending: %+v", p)
	}
}

// TestSnapshots reads snapshot records, with and without health, and a
// removal, from a real ledger, in two reads.
func TestSnapshots(t *testing.T) {
	dir := t.TempDir()
	st, err := local.Create(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	_, vkey, err := ledger.GenerateKey(ledger.KeyName(blob.ID{1}))
	if err != nil {
		t.Fatal(err)
	}
	lg, err := ledger.OpenReadOnly(st, blob.ID{1}, vkey)
	if err != nil {
		t.Fatal(err)
	}
	open := func(context.Context) (*ledger.Log, error) { return lg, nil }
	c := newClock()
	s, err := Open(filepath.Join(dir, "fleet"), c.now, LedgerLogger(open), WithSource(&Source{Store: st, OpenLog: open}),
		WithOverdue(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	suspect := &snapshot.Verdict{Status: snapshot.Suspect, Reasons: []snapshot.Reason{{Signal: "damaged_files", Value: 9, Threshold: 3}}}
	batches := [][]ledger.Record{
		{{Kind: ledger.KindSnapshot, ID: blob.ID{1}, Size: 10, Time: c.now().Add(-3 * time.Hour), Host: "a"},
			{Kind: ledger.KindPack, ID: blob.ID{9}, Size: 99, Time: c.now(), Host: "a"},
			{Kind: ledger.KindSnapshot, ID: blob.ID{2}, Size: 20, Time: c.now().Add(-2 * time.Hour), Host: "b"}},
		{{Kind: ledger.KindSnapshot, ID: blob.ID{3}, Size: 30, Time: c.now().Add(-time.Minute), Host: "a", Health: suspect},
			{Kind: ledger.KindSnapshotRemoved, ID: blob.ID{2}, Size: 20, Time: c.now(), Host: "b"}},
	}
	for _, b := range batches {
		if _, err := lg.AppendUnsigned(t.Context(), b); err != nil {
			t.Fatal(err)
		}
		if err := s.Tick(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	hs := s.Hosts()
	if len(hs) != 2 {
		t.Fatalf("hosts %+v", hs)
	}
	a, b := hs[0], hs[1]
	if len(a.Snapshots) != 2 || a.LastSnapshot == nil || a.LastSnapshot.Size != 30 || a.LastSnapshot.Health != "suspect" ||
		len(a.LastSnapshot.Reasons) != 1 || a.LastSnapshot.Reasons[0] != "damaged_files" || a.Overdue || a.Snapshots[1].Health != "" {
		t.Errorf("host a: %+v", a)
	}
	if len(b.Snapshots) != 0 || b.LastSnapshot != nil || !b.Overdue {
		t.Errorf("host b: %+v", b)
	}
	if got := s.Ledger().Size; got != 5 {
		t.Errorf("ledger size %d, want 5", got)
	}
}

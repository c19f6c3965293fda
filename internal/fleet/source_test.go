package fleet

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/blob"
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

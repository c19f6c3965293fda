package restorer

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/kalaja/kalaja/internal/blob"
)

// TestWriter writes files a caller created, through the pipeline Restore
// uses: done is called once per file, after it is closed, with whether it
// was written in full; a file whose blob is not indexed is reported.
func TestWriter(t *testing.T) {
	f := newFake()
	good := randomBytes(1, 3*jobBytes/2)
	lost := randomBytes(2, 1000)
	goodIDs := f.blobs(good[:jobBytes], good[jobBytes:])
	lostIDs := f.blobs(lost)
	f.forget(lostIDs[0])
	dir := t.TempDir()
	var mu sync.Mutex
	done := map[string][]bool{}
	var reports []report
	prog := &Progress{}
	w := NewWriter(t.Context(), f, prog, func(name string, err error) {
		mu.Lock()
		defer mu.Unlock()
		reports = append(reports, report{name, err})
	})
	for _, tc := range []struct {
		name string
		data []byte
		ids  []blob.ID
	}{{"good", good, goodIDs}, {"lost", lost, lostIDs}, {"empty", nil, nil}} {
		out, err := os.OpenFile(filepath.Join(dir, tc.name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if err := out.Truncate(int64(len(tc.data))); err != nil {
			t.Fatal(err)
		}
		n := fileNode(tc.name, 0o640, tc.ids, tc.data)
		err = w.Add(t.Context(), tc.name, n, out, func(ok bool) {
			if _, err := out.Stat(); !errors.Is(err, os.ErrClosed) {
				t.Errorf("%s: done called before the file was closed", tc.name)
			}
			mu.Lock()
			defer mu.Unlock()
			done[tc.name] = append(done[tc.name], ok)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	w.Wait()
	for name, want := range map[string]bool{"good": true, "lost": false, "empty": true} {
		if got := done[name]; len(got) != 1 || got[0] != want {
			t.Errorf("%s: done called with %v, want once with %v", name, got, want)
		}
	}
	if len(reports) != 1 || reports[0].path != "lost" || !errors.Is(reports[0].err, blob.ErrNotFound) {
		t.Errorf("reports %v, want lost's missing blob", reports)
	}
	wantContent(t, filepath.Join(dir, "good"), good)
	wantMeta(t, filepath.Join(dir, "good"), 0o640, mtime)
	if prog.Files.Load() != 2 || prog.Bytes.Load() != int64(len(good)) {
		t.Errorf("progress %d files, %d bytes", prog.Files.Load(), prog.Bytes.Load())
	}
}

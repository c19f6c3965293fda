package ledger

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/blob"
)

// FuzzParseRecord checks that ParseRecord accepts only canonical encodings:
// an accepted record re-encodes to the input, and is a record Append takes.
func FuzzParseRecord(f *testing.F) {
	f.Add([]byte(exampleEncoding()))
	f.Add([]byte(removalEncoding()))
	for _, r := range testRecords("seed", 0, 3) {
		f.Add(r.Marshal())
	}
	for _, k := range []string{KindAlert, KindSilent, KindBack, KindResolved} {
		f.Add(eventRecords(k, "seed", 0, 1)[0].Marshal())
	}
	for _, tt := range recordRejects() {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := ParseRecord(in)
		if err != nil {
			if !errors.Is(err, blob.ErrCorrupt) && !errors.Is(err, blob.ErrUnsupported) {
				t.Fatalf("ParseRecord(%q): %v wraps neither ErrCorrupt nor ErrUnsupported", in, err)
			}
			return
		}
		if out := r.Marshal(); !bytes.Equal(out, in) {
			t.Fatalf("ParseRecord(%q) accepted a non-canonical encoding of %s", in, out)
		}
		if (r.Version != RecordVersion && r.Version != RecordHealthVersion && r.Version != RecordRemovalVersion) || r.Kind == "" || r.Size < 0 || len(in) > maxRecord ||
			r.Time.Location() != time.UTC || bytes.ContainsRune(in, '\n') {
			t.Fatalf("ParseRecord(%q) accepted %+v", in, r)
		}
	})
}

// FuzzParseBatch checks that an accepted entries object starts where its
// name says, holds only valid records, and is the one encoding of them.
func FuzzParseBatch(f *testing.F) {
	f.Add(batch{start: 0, records: encodeAll(testRecords("seed", 0, 1))}.encode(), int64(0))
	f.Add(batch{start: 7, records: encodeAll(testRecords("seed", 7, 3))}.encode(), int64(7))
	f.Add(batch{start: 9, records: encodeAll(eventRecords(KindAlert, "seed", 0, 2))}.encode(), int64(9))
	for _, tt := range batchRejects() {
		f.Add([]byte(tt.data), int64(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, start int64) {
		b, err := parseBatch(data, start)
		recs, perr := ParseBatch(data, start)
		if (err == nil) != (perr == nil) || len(recs) != len(b.records) {
			t.Fatalf("parseBatch(%q, %d): %v; ParseBatch: %d records, %v", data, start, err, len(recs), perr)
		}
		if err != nil {
			if !errors.Is(err, blob.ErrCorrupt) && !errors.Is(err, blob.ErrUnsupported) {
				t.Fatalf("parseBatch: %v wraps neither ErrCorrupt nor ErrUnsupported", err)
			}
			return
		}
		for i, r := range recs {
			if !bytes.Equal(r.Marshal(), b.records[i]) {
				t.Fatalf("ParseBatch(%q) record %d is %+v, the batch holds %s", data, i, r, b.records[i])
			}
		}
		if b.start != start || len(b.records) == 0 || len(b.records) > maxBatch {
			t.Fatalf("parseBatch(%q, %d) = start %d, %d records", data, start, b.start, len(b.records))
		}
		for i, r := range b.records {
			if _, err := ParseRecord(r); err != nil {
				t.Fatalf("parseBatch(%q) accepted record %d: %v", data, i, err)
			}
		}
		if out := b.encode(); !bytes.Equal(out, data) {
			t.Fatalf("parseBatch(%q) accepted a non-canonical encoding of %q", data, out)
		}
	})
}

// FuzzBatchChecker checks that the streaming checker, fed a batch in three
// writes, accepts exactly what ParseBatch accepts and finds a server-only
// record exactly when ParseBatch returns one.
func FuzzBatchChecker(f *testing.F) {
	f.Add(batch{start: 0, records: encodeAll(testRecords("seed", 0, 1))}.encode(), uint16(3), uint16(40))
	f.Add(batch{start: 9, records: encodeAll(eventRecords(KindAlert, "seed", 0, 2))}.encode(), uint16(60), uint16(61))
	f.Add(batch{start: 9, records: encodeAll(eventRecords(KindResolved, "seed", 0, 2))}.encode(), uint16(0), uint16(500))
	for _, tt := range batchRejects() {
		f.Add([]byte(tt.data), uint16(1), uint16(2))
	}
	f.Fuzz(func(t *testing.T, data []byte, i, j uint16) {
		start := int64(0)
		if h, _, ok := bytes.Cut(data, []byte{'\n'}); ok {
			if f := bytes.Fields(h); len(f) == 6 {
				if n, err := strconv.ParseInt(string(f[4]), 10, 64); err == nil && n >= 0 {
					start = n
				}
			}
		}
		a, b := min(int(i), len(data)), min(int(j), len(data))
		if a > b {
			a, b = b, a
		}
		c := NewBatchChecker(entryName(start))
		for _, p := range [][]byte{data[:a], data[a:b], data[b:]} {
			if n, err := c.Write(p); n != len(p) || err != nil {
				t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(p))
			}
		}
		recs, err := ParseBatch(data, start)
		if (err == nil) != (c.Err() == nil) {
			t.Fatalf("batch %q: ParseBatch: %v; checker: %v", data, err, c.Err())
		}
		if err != nil {
			return
		}
		want := ""
		for _, r := range recs {
			if ServerOnly(r.Kind) {
				want = r.Kind
				break
			}
		}
		if c.ServerOnly() != want {
			t.Fatalf("batch %q: checker found server-only kind %q, want %q", data, c.ServerOnly(), want)
		}
	})
}

// FuzzParseCheckpoint checks that an accepted checkpoint text is the text
// of the checkpoint it decodes to.
func FuzzParseCheckpoint(f *testing.F) {
	f.Add(Checkpoint{Origin: testOrigin, N: 3, Hash: testHash("3")}.Text())
	f.Add(Checkpoint{Origin: Origin(blob.Hash(nil)), N: math.MaxInt64}.Text())
	for _, text := range checkpointRejects() {
		f.Add(text)
	}
	f.Fuzz(func(t *testing.T, text string) {
		c, err := ParseCheckpoint(text)
		if err != nil {
			if !errors.Is(err, blob.ErrCorrupt) {
				t.Fatalf("ParseCheckpoint(%q): %v does not wrap ErrCorrupt", text, err)
			}
			return
		}
		if c.N < 0 || c.Text() != text {
			t.Fatalf("ParseCheckpoint(%q) = %+v, whose text is %q", text, c, c.Text())
		}
	})
}

// FuzzOpenCheckpoint checks that OpenCheckpoint accepts only notes the log
// key signed, of the wanted origin, whose text is the checkpoint's, and that
// it rejects everything else as a bad signature or as corrupt.
func FuzzOpenCheckpoint(f *testing.F) {
	logV, witV, notes := checkpointNotes(f)
	for _, msg := range notes {
		f.Add(msg)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		c, n, err := OpenCheckpoint(msg, testOrigin, logV, witV)
		if err != nil {
			if !errors.Is(err, ErrSignature) && !errors.Is(err, blob.ErrCorrupt) {
				t.Fatalf("OpenCheckpoint(%q): %v wraps neither ErrSignature nor ErrCorrupt", msg, err)
			}
			return
		}
		if !signedBy(n, logV) || c.Origin != testOrigin || c.Text() != n.Text {
			t.Fatalf("OpenCheckpoint(%q) = %+v from note %+v", msg, c, n)
		}
		for _, s := range n.Sigs {
			if (s.Name != logV.Name() || s.Hash != logV.KeyHash()) && (s.Name != witV.Name() || s.Hash != witV.KeyHash()) {
				t.Fatalf("OpenCheckpoint(%q) verified a signature by unknown key %s+%08x", msg, s.Name, s.Hash)
			}
		}
	})
}

// FuzzParseTileName checks that an accepted tile name is the name of the
// tile it decodes to, a tile of height Height whose first record index fits
// in an int64.
func FuzzParseTileName(f *testing.F) {
	for _, name := range []string{"0-0", "0-1.p3", "1-2.p255", "7-0.p127", "8-0.p1", "0-36028797018963967"} {
		f.Add(name)
	}
	for _, name := range tileRejects {
		f.Add(name)
	}
	f.Fuzz(func(t *testing.T, name string) {
		tile, ok := parseTileName(name)
		if !ok {
			return
		}
		if got := tileName(tile); got != name {
			t.Fatalf("parseTileName(%q) = %+v, whose name is %q", name, tile, got)
		}
		if tile.H != Height || tile.L < 0 || tile.N < 0 || tile.W < 1 || tile.W > 1<<Height ||
			tile.N > math.MaxInt64>>(Height*(tile.L+1)) {
			t.Fatalf("parseTileName(%q) = %+v", name, tile)
		}
	})
}

// FuzzParseIndexName checks that an accepted entries or checkpoint name is
// the name of the index it decodes to.
func FuzzParseIndexName(f *testing.F) {
	for _, name := range []string{entryName(0), entryName(math.MaxInt64), "+0000000000000000001", "-0000000000000000000"} {
		f.Add(name)
	}
	f.Fuzz(func(t *testing.T, name string) {
		n, ok := parseIndexName(name)
		if ok && (n < 0 || entryName(n) != name) {
			t.Fatalf("parseIndexName(%q) = %d, whose name is %q", name, n, entryName(n))
		}
	})
}

// FuzzPinLoad: a pin file is local state an attacker on the host may
// rewrite; any bytes must load without a panic, and a loaded pin must
// survive an update unchanged.
func FuzzPinLoad(f *testing.F) {
	f.Add([]byte(`{"version":1,"log_key":"k+1+x","checkpoint":"note"}`))
	f.Add([]byte(`{"log_key":"k"}`))
	f.Add([]byte(`{"version":2,"log_key":"k"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		pf := PinFile(filepath.Join(t.TempDir(), "ledger.json"))
		if err := os.WriteFile(string(pf), data, 0o600); err != nil {
			t.Fatal(err)
		}
		p, ok, err := pf.Load()
		if err != nil || !ok {
			return
		}
		if _, err := pf.Update(func(cur Pin, ok bool) (Pin, error) { return cur, nil }); err != nil {
			t.Fatalf("Update of a pin that loaded: %v", err)
		}
		again, ok, err := pf.Load()
		if err != nil || !ok || again.LogKey != p.LogKey || string(again.Checkpoint) != string(p.Checkpoint) {
			t.Fatalf("pin %+v reloaded as %+v, %v, %v", p, again, ok, err)
		}
	})
}

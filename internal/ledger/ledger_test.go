package ledger

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sync/errgroup"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/local"
)

// Fixed note keys, so that signed seeds verify in every fuzzing worker.
// testOtherSkey has the same name as testLogSkey but another key.
const (
	testLogSkey     = "PRIVATE+KEY+kalaja-log-fuzz+6a7dae2c+ARMFUCt022ffsIJQ4OY0R/31M8tbkU2ZY+VfAVmZcIoV"
	testLogVkey     = "kalaja-log-fuzz+6a7dae2c+AYemlyqcp7T28bC4c2wS1WqHpnbneUYJ6p8Su1Kbcd7V"
	testOtherSkey   = "PRIVATE+KEY+kalaja-log-fuzz+7d744fe2+ASHVLdyUq6tHY7tuIWxKk/9cxRVME3k6LLioWfn5H8Xq"
	testWitnessSkey = "PRIVATE+KEY+witness-fuzz+15062ecc+AYNhbiWenjiVIVHrHj1eNqEwLncelx1j3WNTI/M5bP13"
	testWitnessVkey = "witness-fuzz+15062ecc+AfsH84AnmJIayM2RZibe1kOYORDtT34AiecrQ8FccDd4"
	testOrigin      = "kalaja.ledger/fuzz"
)

func mustSigner(t testing.TB, skey string) note.Signer {
	t.Helper()
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustVerifier(t testing.TB, vkey string) note.Verifier {
	t.Helper()
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// mustSign signs text with signers.
func mustSign(t testing.TB, text string, signers ...note.Signer) []byte {
	t.Helper()
	msg, err := note.Sign(&note.Note{Text: text}, signers...)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// testHash returns a hash derived from s.
func testHash(s string) tlog.Hash { return tlog.Hash(blob.Hash([]byte(s))) }

// exampleRecord is the record of docs/design.md 13.2 and its encoding.
var exampleRecord = Record{
	Kind: KindPack,
	ID:   blob.Hash([]byte("pack")),
	Size: 16777216,
	Time: time.Date(2026, 11, 23, 12, 5, 55, 986952540, time.UTC),
	Host: "db-01",
}

func exampleEncoding() string {
	return `{"v":1,"kind":"pack","id":"` + exampleRecord.ID.String() +
		`","size":16777216,"time":"2026-11-23T12:05:55.98695254Z","host":"db-01"}`
}

func TestRecordRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		rec  Record
		want string // the encoding, if checked
	}{
		{name: "design example", rec: exampleRecord, want: exampleEncoding()},
		{name: "version is always 1", rec: Record{Version: 7, Kind: KindIndex, Time: exampleRecord.Time}},
		{name: "zero size, no host", rec: Record{Kind: KindSnapshot, ID: blob.Hash(nil), Time: exampleRecord.Time}},
		{name: "zero time", rec: Record{Kind: "alert", Host: "h"}},
		{name: "whole seconds", rec: Record{Kind: KindPack, Size: 1, Time: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}},
		{name: "local time becomes UTC", rec: Record{Kind: KindPack, Time: time.Date(2026, 1, 1, 1, 0, 0, 0, time.FixedZone("IST", 5*3600+1800))}},
		{name: "largest size", rec: Record{Kind: KindPack, Size: math.MaxInt64, Time: exampleRecord.Time}},
		{name: "escaped host", rec: Record{Kind: KindPack, Host: "a\"b\\c<d>&e\u00e9\u2028\n", Time: exampleRecord.Time}},
		{name: "snapshot health", rec: healthRecord, want: healthEncoding()},
		{name: "clean snapshot", rec: Record{Kind: KindSnapshot, Time: exampleRecord.Time, Health: &snapshot.Verdict{Status: snapshot.Clean}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.rec.Marshal()
			if tt.want != "" && string(b) != tt.want {
				t.Fatalf("Marshal = %s, want %s", b, tt.want)
			}
			if bytes.ContainsRune(b, '\n') {
				t.Fatalf("Marshal = %q holds a newline", b)
			}
			got, err := ParseRecord(b)
			if err != nil {
				t.Fatalf("ParseRecord(%s): %v", b, err)
			}
			wantVersion := RecordVersion
			if tt.rec.Health != nil {
				wantVersion = RecordHealthVersion
			}
			if got.Version != wantVersion || got.Kind != tt.rec.Kind || got.ID != tt.rec.ID ||
				got.Size != tt.rec.Size || got.Host != tt.rec.Host ||
				!got.Time.Equal(tt.rec.Time) || got.Time.Location() != time.UTC ||
				!reflect.DeepEqual(got.Health, tt.rec.Health) {
				t.Fatalf("ParseRecord(Marshal(%+v)) = %+v", tt.rec, got)
			}
			if again := got.Marshal(); !bytes.Equal(again, b) {
				t.Fatalf("re-encoding gives %s, want %s", again, b)
			}
		})
	}
}

// healthRecord is the snapshot record of docs/design.md 13.2 with a health
// verdict, and healthEncoding its encoding.
var healthRecord = Record{
	Kind: KindSnapshot,
	ID:   blob.Hash([]byte("snapshot")),
	Size: 1043,
	Time: exampleRecord.Time,
	Host: "db-01",
	Health: &snapshot.Verdict{Status: snapshot.Suspect, Reasons: []snapshot.Reason{
		{Signal: snapshot.DamagedFiles, Value: 412, Threshold: 3}, {Signal: snapshot.RansomNotes, Value: 14, Threshold: 3}}},
}

func healthEncoding() string {
	return `{"v":2,"kind":"snapshot","id":"` + healthRecord.ID.String() +
		`","size":1043,"time":"2026-11-23T12:05:55.98695254Z","host":"db-01","health":{"status":"suspect","reasons":[` +
		`{"signal":"damaged_files","value":412,"threshold":3},{"signal":"ransom_notes","value":14,"threshold":3}]}}`
}

// recordRejects are encodings ParseRecord must refuse, and the error each
// must wrap.
func recordRejects() []struct {
	name string
	in   string
	want error
} {
	ex := exampleEncoding()
	rep := func(old, new string) string {
		if !strings.Contains(ex, old) {
			panic("test encoding lacks " + old)
		}
		return strings.Replace(ex, old, new, 1)
	}
	return []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", blob.ErrCorrupt},
		{"array", "[]", blob.ErrCorrupt},
		{"space after colon", rep(`"v":1`, `"v": 1`), blob.ErrCorrupt},
		{"space between fields", rep(`,"kind"`, `, "kind"`), blob.ErrCorrupt},
		{"leading space", " " + ex, blob.ErrCorrupt},
		{"trailing newline", ex + "\n", blob.ErrCorrupt},
		{"trailing value", ex + "{}", blob.ErrCorrupt},
		{"reordered fields", rep(`"v":1,"kind":"pack"`, `"kind":"pack","v":1`), blob.ErrCorrupt},
		{"unknown field", rep(`"host"`, `"extra":1,"host"`), blob.ErrCorrupt},
		{"duplicate field", rep(`"host":"db-01"`, `"host":"db-01","host":"db-01"`), blob.ErrCorrupt},
		{"field name case", rep(`"kind"`, `"Kind"`), blob.ErrCorrupt},
		{"version 2 without health", rep(`"v":1`, `"v":2`), blob.ErrCorrupt},
		{"version 4", rep(`"v":1`, `"v":4`), blob.ErrUnsupported},
		{"version 3 without auth", rep(`"v":1`, `"v":3`), blob.ErrCorrupt},
		{"auth on a pack record", strings.Replace(removalEncoding(), `"kind":"pack-removed"`, `"kind":"pack"`, 1), blob.ErrCorrupt},
		{"version 1 with auth", strings.Replace(removalEncoding(), `"v":3`, `"v":1`, 1), blob.ErrCorrupt},
		{"auth of zeros", strings.Replace(removalEncoding(), exampleAuth.String(), strings.Repeat("0", 64), 1), blob.ErrCorrupt},
		{"version 1 with health", strings.Replace(healthEncoding(), `"v":2`, `"v":1`, 1), blob.ErrCorrupt},
		{"health of a pack", strings.Replace(healthEncoding(), `"kind":"snapshot"`, `"kind":"pack"`, 1), blob.ErrCorrupt},
		{"health of unknown status", strings.Replace(healthEncoding(), `"suspect"`, `"fine"`, 1), blob.ErrCorrupt},
		{"suspect without reason", strings.Replace(healthEncoding(), `,"reasons":[{"signal":"damaged_files","value":412,"threshold":3},{"signal":"ransom_notes","value":14,"threshold":3}]`, ``, 1), blob.ErrCorrupt},
		{"health of unknown signal", strings.Replace(healthEncoding(), `"ransom_notes"`, `"file_names"`, 1), blob.ErrCorrupt},
		{"health with a name", strings.Replace(healthEncoding(), `"status"`, `"notes":["README.txt"],"status"`, 1), blob.ErrCorrupt},
		{"version 0", rep(`"v":1`, `"v":0`), blob.ErrUnsupported},
		{"no version", rep(`"v":1,`, ``), blob.ErrUnsupported},
		{"negative size", rep(`16777216`, `-1`), blob.ErrCorrupt},
		{"size as float", rep(`16777216`, `16777216.0`), blob.ErrCorrupt},
		{"size as string", rep(`16777216`, `"16777216"`), blob.ErrCorrupt},
		{"empty kind", rep(`"kind":"pack"`, `"kind":""`), blob.ErrCorrupt},
		{"no kind", rep(`"kind":"pack",`, ``), blob.ErrCorrupt},
		{"uppercase id", rep(exampleRecord.ID.String(), strings.ToUpper(exampleRecord.ID.String())), blob.ErrCorrupt},
		{"short id", rep(exampleRecord.ID.String(), exampleRecord.ID.String()[2:]), blob.ErrCorrupt},
		{"time with offset", rep(`12:05:55.98695254Z`, `13:05:55.98695254+01:00`), blob.ErrCorrupt},
		{"time with trailing zero", rep(`.98695254Z`, `.986952540Z`), blob.ErrCorrupt},
		{"time before year 0 in UTC", rep(`2026-11-23T12:05:55.98695254Z`, `0000-01-01T00:30:00+01:00`), blob.ErrCorrupt},
		{"time after year 9999 in UTC", rep(`2026-11-23T12:05:55.98695254Z`, `9999-12-31T23:30:00-01:00`), blob.ErrCorrupt},
		{"escaped ASCII", rep(`db-01`, `db\u002d01`), blob.ErrCorrupt},
		{"unescaped HTML", rep(`db-01`, `db<01`), blob.ErrCorrupt},
		{"invalid UTF-8", rep(`db-01`, "db\xff01"), blob.ErrCorrupt},
		{"too long", rep(`db-01`, strings.Repeat("h", maxRecord)), blob.ErrCorrupt},
	}
}

func TestParseRecordRejects(t *testing.T) {
	for _, enc := range []string{exampleEncoding(), healthEncoding(), removalEncoding()} {
		if _, err := ParseRecord([]byte(enc)); err != nil {
			t.Fatalf("the unaltered encoding %s is refused: %v", enc, err)
		}
	}
	for _, tt := range recordRejects() {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRecord([]byte(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseRecord(%.100q) = %+v, %v; want an error wrapping %v", tt.in, r, err, tt.want)
			}
		})
	}
}

// testRecords returns n records of a kind Verify does not check against
// objects, numbered from, each with its own ID.
func testRecords(host string, from, n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{
			Kind: "test",
			ID:   blob.Hash(fmt.Appendf(nil, "%s/%d", host, from+i)),
			Size: int64(from + i),
			Time: exampleRecord.Time.Add(time.Duration(from+i) * time.Second),
			Host: host,
		}
	}
	return recs
}

func encodeAll(recs []Record) [][]byte {
	out := make([][]byte, len(recs))
	for i, r := range recs {
		out[i] = r.Marshal()
	}
	return out
}

func TestBatchRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		start  int64
		n      int
		header string
	}{
		{"first", 0, 1, "kalaja ledger batch v1 0 1\n"},
		{"later", 42, 3, "kalaja ledger batch v1 42 3\n"},
		{"far", 1 << 40, 2, "kalaja ledger batch v1 1099511627776 2\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := batch{start: tt.start, records: encodeAll(testRecords("h", 0, tt.n))}
			data := b.encode()
			if !bytes.HasPrefix(data, []byte(tt.header)) {
				t.Fatalf("encode = %q, want header %q", data, tt.header)
			}
			got, err := parseBatch(data, tt.start)
			if err != nil {
				t.Fatalf("parseBatch: %v", err)
			}
			if got.start != b.start || !slices.EqualFunc(got.records, b.records, bytes.Equal) {
				t.Fatalf("parseBatch(encode(%v)) = %v", b, got)
			}
		})
	}
}

// batchRejects are entries objects parseBatch must refuse at start 0.
func batchRejects() []struct {
	name string
	data string
} {
	rec := string(exampleRecord.Marshal()) + "\n"
	hdr := func(start, n string) string { return batchMagic + " " + start + " " + n + "\n" }
	return []struct {
		name string
		data string
	}{
		{"empty", ""},
		{"no header line", batchMagic + " 0 1"},
		{"wrong start", hdr("1", "1") + rec},
		{"count too large", hdr("0", "2") + rec},
		{"count too small", hdr("0", "1") + rec + rec},
		{"zero count", hdr("0", "0")},
		{"negative count", hdr("0", "-1") + rec},
		{"count over the limit", hdr("0", fmt.Sprint(maxBatch+1)) + rec},
		{"unterminated record", strings.TrimSuffix(hdr("0", "1")+rec, "\n")},
		{"blank record line", hdr("0", "2") + rec + "\n"},
		{"bad record", hdr("0", "1") + strings.Replace(rec, `"v":1`, `"v": 1`, 1)},
		{"other version", strings.Replace(hdr("0", "1"), "v1", "v2", 1) + rec},
		{"other magic", "kalaja ledger batches v1 0 1\n" + rec},
		{"missing field", batchMagic + " 1\n" + rec},
		{"extra field", hdr("0", "1 1") + rec},
		{"non-numeric start", hdr("zero", "1") + rec},
		{"signed start", hdr("+0", "1") + rec},
		{"padded count", hdr("0", "01") + rec},
		{"double space", strings.Replace(hdr("0", "1"), " 0", "  0", 1) + rec},
		{"tab", strings.Replace(hdr("0", "1"), " 0", "\t0", 1) + rec},
		{"trailing space", strings.Replace(hdr("0", "1"), "\n", " \n", 1) + rec},
		{"CRLF header", strings.Replace(hdr("0", "1"), "\n", "\r\n", 1) + rec},
	}
}

func TestParseBatchRejects(t *testing.T) {
	for _, tt := range batchRejects() {
		t.Run(tt.name, func(t *testing.T) {
			b, err := parseBatch([]byte(tt.data), 0)
			if !errors.Is(err, blob.ErrCorrupt) {
				t.Fatalf("parseBatch(%.100q) = %v, %v; want an error wrapping ErrCorrupt", tt.data, b, err)
			}
		})
	}
}

func TestIndexName(t *testing.T) {
	ns := []int64{0, 1, 9, 10, 255, 256, 1 << 32, math.MaxInt64}
	var names []string
	for _, n := range ns {
		name := entryName(n)
		if len(name) != 20 {
			t.Errorf("entryName(%d) = %q, want 20 digits", n, name)
		}
		if got, ok := parseIndexName(name); !ok || got != n {
			t.Errorf("parseIndexName(%q) = %d, %v; want %d", name, got, ok, n)
		}
		names = append(names, name)
	}
	if !slices.IsSorted(names) {
		t.Errorf("names %q do not sort in log order", names)
	}
	for _, name := range []string{
		"",
		"0",
		"0000000000000000000",   // 19 digits
		"000000000000000000000", // 21 digits
		"+0000000000000000001",
		"-0000000000000000000",
		"-0000000000000000001",
		" 000000000000000001 ",
		"0000000000000000000a",
		"0x000000000000000001",
		"99999999999999999999", // past MaxInt64
	} {
		if n, ok := parseIndexName(name); ok {
			t.Errorf("parseIndexName(%q) = %d, accepted", name, n)
		}
	}
}

func TestTileName(t *testing.T) {
	var tiles []tlog.Tile
	for _, r := range [][2]int64{{0, 1}, {0, 256}, {0, 257}, {255, 513}, {1000, 70000}, {65535, 65537}} {
		tiles = append(tiles, tlog.NewTiles(Height, r[0], r[1])...)
	}
	tiles = append(tiles,
		tlog.Tile{H: Height, L: 0, N: math.MaxInt64 >> Height, W: 1 << Height}, // the last level-0 tile
		tlog.Tile{H: Height, L: 7, N: 0, W: 127},                               // the top of a full log
	)
	for _, tile := range tiles {
		name := tileName(tile)
		got, ok := parseTileName(name)
		if !ok || got != tile {
			t.Errorf("parseTileName(tileName(%+v) = %q) = %+v, %v", tile, name, got, ok)
		}
	}
	for tile, want := range map[tlog.Tile]string{
		{H: Height, L: 0, N: 0, W: 256}: "0-0",
		{H: Height, L: 1, N: 2, W: 5}:   "1-2.p5",
	} {
		if got := tileName(tile); got != want {
			t.Errorf("tileName(%+v) = %q, want %q", tile, got, want)
		}
	}
}

// tileRejects are names parseTileName must refuse.
var tileRejects = []string{
	"", "0", "0-", "-0", "0--1", "-1-0", "9-0", "10-0", "0-01", "00-1", "+0-1", "0-+1",
	"0-1.p", "0-1.p0", "0-1.p256", "0-1.p01", "0-1.p+1", "0-1.q3", "0-1.p3.p3", "0-1-2", "a-b",
	"0-72057594037927936",       // 2^56: the tile's first record index overflows int64
	"1-281474976710656",         // 2^48 at level 1: likewise
	"7-1",                       // likewise
	"0-99999999999999999999.p3", // past MaxInt64
}

func TestParseTileNameRejects(t *testing.T) {
	for _, name := range tileRejects {
		if tile, ok := parseTileName(name); ok {
			t.Errorf("parseTileName(%q) = %+v, accepted", name, tile)
		}
	}
}

func TestCheckpointText(t *testing.T) {
	id := blob.Hash([]byte("repo"))
	tests := []struct {
		name string
		cp   Checkpoint
		want string
	}{
		{"empty log", Checkpoint{Origin: Origin(id), N: 0}, Origin(id) + "\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"},
		{"one record", Checkpoint{Origin: Origin(id), N: 1, Hash: testHash("1")}, ""},
		{"largest", Checkpoint{Origin: "o", N: math.MaxInt64, Hash: testHash("max")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := tt.cp.Text()
			if tt.want != "" && text != tt.want {
				t.Fatalf("Text = %q, want %q", text, tt.want)
			}
			got, err := ParseCheckpoint(text)
			if err != nil || got != tt.cp {
				t.Fatalf("ParseCheckpoint(%q) = %+v, %v; want %+v", text, got, err, tt.cp)
			}
		})
	}
	if !strings.HasPrefix(Origin(id), "kalaja.ledger/"+id.String()) || KeyName(id) != "kalaja-log-"+id.String()[:16] {
		t.Errorf("Origin = %q, KeyName = %q", Origin(id), KeyName(id))
	}
}

// checkpointRejects are checkpoint texts ParseCheckpoint must refuse.
func checkpointRejects() []string {
	h := base64.StdEncoding.EncodeToString(make([]byte, tlog.HashSize))
	return []string{
		"",
		"o\n1\n" + h,             // no final newline
		"o\n1\n" + h + "\n\n",    // four lines
		"o\n1\n" + h + "\next\n", // an extension line
		"o\n" + h + "\n",         // no size
		"o\n+1\n" + h + "\n",     // signed size
		"o\n01\n" + h + "\n",     // padded size
		"o\n-1\n" + h + "\n",     // negative size
		"o\n 1\n" + h + "\n",     // space
		"o\n1\r\n" + h + "\r\n",  // CRLF
		"o\n99999999999999999999\n" + h + "\n",
		"o\n1\n" + strings.TrimSuffix(h, "=") + "\n",                          // unpadded
		"o\n1\n" + h + "\r\n",                                                 // CR in the hash, which base64 skips
		"o\n1\n" + h[:42] + "B=\n",                                            // non-zero padding bits
		"o\n1\n" + base64.StdEncoding.EncodeToString(make([]byte, 31)) + "\n", // short hash
		"o\n1\n" + base64.StdEncoding.EncodeToString(make([]byte, 33)) + "\n", // long hash
		"o\n1\n" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 32)) + "\n",
	}
}

func TestParseCheckpointRejects(t *testing.T) {
	for _, text := range checkpointRejects() {
		if c, err := ParseCheckpoint(text); !errors.Is(err, blob.ErrCorrupt) {
			t.Errorf("ParseCheckpoint(%q) = %+v, %v; want an error wrapping ErrCorrupt", text, c, err)
		}
	}
}

// checkpointNotes returns signed and unsigned notes for OpenCheckpoint
// tests and seeds, with the verifiers of the log and witness keys.
func checkpointNotes(t testing.TB) (log, witness note.Verifier, notes map[string][]byte) {
	logS, otherS, witS := mustSigner(t, testLogSkey), mustSigner(t, testOtherSkey), mustSigner(t, testWitnessSkey)
	cp := Checkpoint{Origin: testOrigin, N: 3, Hash: testHash("3")}
	other := Checkpoint{Origin: "kalaja.ledger/other", N: 3, Hash: cp.Hash}
	signed := mustSign(t, cp.Text(), logS)
	return mustVerifier(t, testLogVkey), mustVerifier(t, testWitnessVkey), map[string][]byte{
		"log key":                 signed,
		"log and witness":         mustSign(t, cp.Text(), logS, witS),
		"same name, other key":    mustSign(t, cp.Text(), otherS),
		"witness only":            mustSign(t, cp.Text(), witS),
		"altered text":            bytes.Replace(signed, []byte("\n3\n"), []byte("\n4\n"), 1),
		"unsigned text":           []byte(cp.Text()),
		"unsigned note":           []byte(cp.Text() + "\n"),
		"garbage":                 []byte("hello"),
		"other origin":            mustSign(t, other.Text(), logS),
		"signed, not checkpoint":  mustSign(t, "hello\n", logS),
		"signed, empty size line": mustSign(t, testOrigin+"\n\n"+base64.StdEncoding.EncodeToString(cp.Hash[:])+"\n", logS),
	}
}

func TestOpenCheckpoint(t *testing.T) {
	logV, witV, notes := checkpointNotes(t)
	want := Checkpoint{Origin: testOrigin, N: 3, Hash: testHash("3")}
	tests := []struct {
		note   string
		others []note.Verifier
		err    error // nil: accepted
		sigs   int   // verified signatures when accepted
	}{
		{note: "log key", sigs: 1},
		{note: "log and witness", others: []note.Verifier{witV}, sigs: 2},
		{note: "log and witness", sigs: 1}, // an unknown witness is ignored
		{note: "same name, other key", err: ErrSignature},
		{note: "witness only", err: ErrSignature},
		{note: "witness only", others: []note.Verifier{witV}, err: ErrSignature},
		{note: "altered text", err: ErrSignature},
		{note: "unsigned text", err: blob.ErrCorrupt},
		{note: "unsigned note", err: blob.ErrCorrupt},
		{note: "garbage", err: blob.ErrCorrupt},
		{note: "other origin", err: blob.ErrCorrupt},
		{note: "signed, not checkpoint", err: blob.ErrCorrupt},
		{note: "signed, empty size line", err: blob.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s with %d others", tt.note, len(tt.others)), func(t *testing.T) {
			c, n, err := OpenCheckpoint(notes[tt.note], testOrigin, logV, tt.others...)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("OpenCheckpoint = %+v, %v; want an error wrapping %v", c, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c != want || len(n.Sigs) != tt.sigs || !signedBy(n, logV) {
				t.Fatalf("OpenCheckpoint = %+v with %d signatures, want %+v with %d", c, len(n.Sigs), want, tt.sigs)
			}
		})
	}
}

// testLog is a repository directory with a ledger, as seen by one host.
type testLog struct {
	dir  string
	id   blob.ID
	keys *crypto.Keys
	st   *local.Local
	log  *Log
}

// newTestLog makes a repository in a temporary directory and opens its log.
func newTestLog(t *testing.T) *testLog {
	t.Helper()
	var id blob.ID
	rand.Read(id[:])
	return newTestLogFor(t, id)
}

// newTestLogFor is newTestLog for a given repository ID, e.g. to make a
// second history of one log.
func newTestLogFor(t *testing.T, id blob.ID) *testLog {
	t.Helper()
	keys, err := crypto.NewKeys(id)
	if err != nil {
		t.Fatal(err)
	}
	tl := &testLog{dir: t.TempDir(), id: id, keys: keys}
	st, err := local.Create(tl.dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Save(t.Context(), store.Handle{Type: store.Config}, []byte("test")); err != nil {
		t.Fatal(err)
	}
	tl.st, tl.log = tl.host(t)
	return tl
}

// host opens the repository and its log as another host would: its own
// store handle, its own copy of the keys, its own Log.
func (tl *testLog) host(t testing.TB) (*local.Local, *Log) {
	t.Helper()
	st, err := local.Open(tl.dir)
	if err != nil {
		t.Fatal(err)
	}
	keys := *tl.keys
	lg, err := Open(t.Context(), st, tl.id, &keys)
	if err != nil {
		t.Fatal(err)
	}
	return st, lg
}

// append appends recs and checks the returned checkpoint's signature.
func (tl *testLog) append(t testing.TB, recs []Record, seen Checkpoint) Checkpoint {
	t.Helper()
	cp, msg, err := tl.log.Append(t.Context(), recs, seen)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if got, _, err := OpenCheckpoint(msg, tl.log.Origin(), tl.log.Verifier()); err != nil || got != cp {
		t.Fatalf("Append returned %+v and a note of %+v, %v", cp, got, err)
	}
	return cp
}

// checkContents checks that the log holds exactly want, in order, and that
// its first cp.N records hash to cp.
func (tl *testLog) checkContents(t testing.TB, want []Record, cp Checkpoint) {
	t.Helper()
	c, err := tl.log.ReadAll(t.Context())
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if !slices.EqualFunc(c.Raw, encodeAll(want), bytes.Equal) {
		t.Fatalf("ReadAll holds %d records, want %d (or they differ)", c.N(), len(want))
	}
	for i, r := range c.Records {
		if !bytes.Equal(r.Marshal(), c.Raw[i]) {
			t.Fatalf("record %d: parsed %+v does not encode to %s", i, r, c.Raw[i])
		}
	}
	if root, err := c.Root(cp.N); err != nil || root != cp.Hash {
		t.Fatalf("Root(%d) = %v, %v; the checkpoint says %v", cp.N, root, err, cp.Hash)
	}
}

// verifyClean runs Verify and fails on any problem. It returns the report.
func (tl *testLog) verifyClean(t testing.TB, opts VerifyOptions) *Report {
	t.Helper()
	rep, err := tl.log.Verify(t.Context(), opts)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if len(rep.Problems) > 0 {
		t.Fatalf("Verify found problems: %+v", rep.Problems)
	}
	return rep
}

func TestOpen(t *testing.T) {
	tl := newTestLog(t)
	_, again := tl.host(t)
	if again.VerifierKey() != tl.log.VerifierKey() {
		t.Fatalf("second Open has key %q, the first %q", again.VerifierKey(), tl.log.VerifierKey())
	}
	if name := tl.log.Verifier().Name(); name != KeyName(tl.id) {
		t.Errorf("key name %q, want %q", name, KeyName(tl.id))
	}
	if pub, err := PublishedKey(t.Context(), tl.st); err != nil || pub != tl.log.VerifierKey() {
		t.Errorf("PublishedKey = %q, %v; want %q", pub, err, tl.log.VerifierKey())
	}
	if tl.log.Origin() != Origin(tl.id) {
		t.Errorf("Origin = %q, want %q", tl.log.Origin(), Origin(tl.id))
	}
	stranger, err := crypto.NewKeys(tl.id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(t.Context(), tl.st, tl.id, stranger); err == nil {
		t.Error("Open with other repository keys succeeded")
	}

	cp := tl.append(t, testRecords("h", 0, 2), Checkpoint{})
	ro, err := OpenReadOnly(tl.st, tl.id, tl.log.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := ro.Latest(t.Context()); err != nil || got != cp {
		t.Errorf("read-only Latest = %+v, %v; want %+v", got, err, cp)
	}
	if _, _, err := ro.Append(t.Context(), testRecords("h", 2, 1), cp); err == nil {
		t.Error("read-only Append succeeded")
	}
	impostor, err := OpenReadOnly(tl.st, tl.id, testLogVkey)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := impostor.Latest(t.Context()); !errors.Is(err, ErrSignature) {
		t.Errorf("Latest with another log key: %v, want ErrSignature", err)
	}
}

// TestAppendPastForgedCheckpoints: checkpoints planted under the sizes the
// next appends will reach, signed by another key, stop neither appends nor
// a client's check; verify names each one.
func TestAppendPastForgedCheckpoints(t *testing.T) {
	tl := newTestLog(t)
	cp := tl.append(t, testRecords("h", 0, 2), Checkpoint{})
	thief := mustSigner(t, testOtherSkey)
	for n := int64(3); n <= 6; n++ {
		msg, err := signText(Checkpoint{Origin: tl.log.Origin(), N: n, Hash: cp.Hash}, thief)
		if err != nil {
			t.Fatal(err)
		}
		if err := tl.st.Save(t.Context(), store.Handle{Type: store.LedgerCheckpoints, Name: entryName(n)}, msg); err != nil {
			t.Fatal(err)
		}
	}
	if got, _, err := tl.log.Latest(t.Context()); err != nil || got != cp {
		t.Fatalf("Latest = %+v, %v; want the newest valid checkpoint %+v", got, err, cp)
	}
	for i, n := range []int64{1, 2, 3} { // the log reaches 3, 5 (both squatted), then 8
		next := tl.append(t, testRecords("h", int(cp.N), int(n)), cp)
		if _, _, err := tl.log.Check(t.Context(), next); err != nil {
			t.Fatalf("append %d: Check of the checkpoint it signed: %v", i, err)
		}
		cp = next
	}
	if got, _, err := tl.log.Latest(t.Context()); err != nil || got != cp || cp.N != 8 {
		t.Errorf("Latest = %+v, %v; want the stored checkpoint of size 8, %+v", got, err, cp)
	}
	rep, err := tl.log.Verify(t.Context(), VerifyOptions{Seen: []Seen{{Source: "test", Checkpoint: cp}}})
	if err != nil {
		t.Fatal(err)
	}
	var forged []string
	for _, p := range rep.Problems {
		if p.Kind != ProblemSignature {
			t.Errorf("verify: %+v", p)
		}
		forged = append(forged, p.Object)
	}
	if len(forged) != 4 {
		t.Errorf("verify named %q, want the 4 forged checkpoints", forged)
	}
}

func TestAppend(t *testing.T) {
	tl := newTestLog(t)
	if cp, msg, err := tl.log.Latest(t.Context()); err != nil || cp.N != 0 || msg != nil {
		t.Fatalf("Latest of an empty log = %+v, %q, %v", cp, msg, err)
	}
	// Two hosts take turns; the batches cross tile boundaries at 256 and 512.
	_, other := tl.host(t)
	hosts := []*Log{tl.log, other}
	var all []Record
	var seen Checkpoint
	for i, n := range []int{1, 254, 2, 300, 1} {
		recs := testRecords(fmt.Sprint("host", i%2), len(all), n)
		tl.log = hosts[i%2]
		cp := tl.append(t, recs, seen)
		all = append(all, recs...)
		if cp.N != int64(len(all)) || cp.Origin != Origin(tl.id) {
			t.Fatalf("append %d: checkpoint %+v, want size %d", i, cp, len(all))
		}
		if latest, _, err := other.Latest(t.Context()); err != nil || latest != cp {
			t.Fatalf("append %d: Latest = %+v, %v; want %+v", i, latest, err, cp)
		}
		if got, _, err := other.Check(t.Context(), seen); err != nil || got != cp {
			t.Fatalf("append %d: Check(%+v) = %+v, %v", i, seen, got, err)
		}
		tl.checkContents(t, all, cp)
		seen = cp
	}
	rep := tl.verifyClean(t, VerifyOptions{Seen: []Seen{{Source: "test", Checkpoint: seen}}})
	if rep.Records != seen.N || rep.SignedN != seen.N || rep.Signed != seen || len(rep.Notes) != 0 {
		t.Errorf("Verify = %+v, want %d records all signed, no notes", rep, seen.N)
	}
}

func TestAppendRefusesSeen(t *testing.T) {
	id := blob.Hash([]byte("repository"))
	otherHistory := newTestLogFor(t, id)
	other4 := otherHistory.append(t, testRecords("other", 0, 4), Checkpoint{})
	tests := []struct {
		name string
		seen func(ours Checkpoint) Checkpoint // from our checkpoint of 10 records
		want error
	}{
		{"rollback", func(c Checkpoint) Checkpoint { c.N += 100; return c }, ErrRollback},
		{"fork, smaller", func(Checkpoint) Checkpoint { return other4 }, ErrFork},
		{"fork, same size", func(c Checkpoint) Checkpoint { c.N += 2; return c }, ErrFork},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tl := newTestLogFor(t, id)
			all := testRecords("h", 0, 10)
			cp := tl.append(t, all[:4], Checkpoint{})
			cp = tl.append(t, all[4:], cp)
			more := testRecords("h", 10, 2)
			_, _, err := tl.log.Append(t.Context(), more, tt.seen(cp))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Append = %v, want an error wrapping %v", err, tt.want)
			}
			if latest, _, err := tl.log.Latest(t.Context()); err != nil || latest != cp {
				t.Fatalf("after a refused append, Latest = %+v, %v; want %+v", latest, err, cp)
			}
			// The refused batch is stored but unsigned; the next append signs it.
			last := testRecords("h", 12, 1)
			cp = tl.append(t, last, cp)
			tl.checkContents(t, slices.Concat(all, more, last), cp)
		})
	}
}

func TestAppendInvalidRecords(t *testing.T) {
	tests := []struct {
		name string
		recs []Record
	}{
		{"no records", nil},
		{"no kind", []Record{{ID: blob.Hash(nil)}}},
		{"negative size", []Record{{Kind: "test", Size: -1}}},
		{"too long", []Record{{Kind: "test", Host: strings.Repeat("h", maxRecord)}}},
		{"time past year 9999", []Record{{Kind: "test", Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}},
		{"one bad among good", append(testRecords("h", 0, 2), Record{})},
	}
	tl := newTestLog(t)
	all := testRecords("h", 0, 1)
	cp := tl.append(t, all, Checkpoint{})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := tl.log.Append(t.Context(), tt.recs, cp); err == nil {
				t.Fatal("Append succeeded")
			}
			// Nothing was stored: the log still reads and grows.
			recs := testRecords("h", 1+i, 1)
			cp = tl.append(t, recs, cp)
			all = append(all, recs...)
			tl.checkContents(t, all, cp)
		})
	}
}

func TestConcurrentAppend(t *testing.T) {
	const hosts, appends, per = 8, 20, 2
	tl := newTestLogFor(t, blob.Hash([]byte("concurrent")))
	keys := make([]string, hosts)
	var g errgroup.Group
	for h := range hosts {
		g.Go(func() error {
			// Each host opens the log itself, racing to create the signer.
			st, err := local.Open(tl.dir)
			if err != nil {
				return err
			}
			k := *tl.keys
			lg, err := Open(t.Context(), st, tl.id, &k)
			if err != nil {
				return fmt.Errorf("host %d: %w", h, err)
			}
			keys[h] = lg.VerifierKey()
			var seen Checkpoint
			for i := range appends {
				cp, _, err := lg.Append(t.Context(), testRecords(fmt.Sprint("host", h), i*per, per), seen)
				if err != nil {
					return fmt.Errorf("host %d, append %d: %w", h, i, err)
				}
				if cp.N < seen.N+per {
					return fmt.Errorf("host %d, append %d: checkpoint %v after %v", h, i, cp, seen)
				}
				seen = cp
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	for h, k := range keys {
		if k != tl.log.VerifierKey() {
			t.Fatalf("host %d uses log key %q, host 0 %q", h, k, keys[0])
		}
	}

	c, err := tl.log.ReadAll(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if c.N() != hosts*appends*per {
		t.Fatalf("the log holds %d records, want %d", c.N(), hosts*appends*per)
	}
	next := map[string]int64{} // next Size expected from each host
	for i, r := range c.Records {
		if r.Size != next[r.Host] || r.ID != testRecords(r.Host, int(r.Size), 1)[0].ID {
			t.Fatalf("record %d is %+v; want host %s's record %d", i, r, r.Host, next[r.Host])
		}
		next[r.Host]++
	}
	if len(next) != hosts {
		t.Fatalf("records from %d hosts, want %d", len(next), hosts)
	}
	rep := tl.verifyClean(t, VerifyOptions{})
	if rep.SignedN != c.N() || len(rep.Notes) != 0 {
		t.Fatalf("Verify: newest checkpoint of size %d, notes %q; want all %d records signed", rep.SignedN, rep.Notes, c.N())
	}
}

func TestInterruptedAppend(t *testing.T) {
	tl := newTestLog(t)
	all := testRecords("h", 0, 10)
	cp := tl.append(t, all[:5], Checkpoint{})
	// An append that stored its batch and stopped before tiles and checkpoint.
	b := batch{start: 5, records: encodeAll(all[5:8])}
	if err := tl.st.Save(t.Context(), store.Handle{Type: store.LedgerEntries, Name: entryName(5)}, b.encode()); err != nil {
		t.Fatal(err)
	}
	rep := tl.verifyClean(t, VerifyOptions{Seen: []Seen{{Source: "test", Checkpoint: cp}}})
	if rep.Records != 8 || rep.SignedN != 5 || len(rep.Notes) != 1 || !strings.HasPrefix(rep.Notes[0], "3 records after") {
		t.Fatalf("Verify = %+v, want 8 records, 5 signed and a note of the 3 after", rep)
	}

	cp = tl.append(t, all[8:], cp)
	if cp.N != 10 {
		t.Fatalf("checkpoint %+v, want size 10", cp)
	}
	tl.checkContents(t, all, cp)
	if rep = tl.verifyClean(t, VerifyOptions{}); rep.SignedN != 10 || len(rep.Notes) != 0 {
		t.Fatalf("Verify = %+v, want all 10 records signed", rep)
	}
}

func TestVerifyObjects(t *testing.T) {
	tl := newTestLog(t)
	var recs []Record
	for _, o := range []struct {
		typ  store.FileType
		kind string
	}{{store.Snapshots, KindSnapshot}, {store.Index, KindIndex}, {store.Packs, KindPack}} {
		data := []byte(rand.Text())
		id := blob.Hash(data)
		if err := tl.st.Save(t.Context(), store.Handle{Type: o.typ, Name: id.String()}, data); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, Record{Kind: o.kind, ID: id, Size: int64(len(data)), Time: exampleRecord.Time, Host: "h"})
	}
	cp := tl.append(t, recs, Checkpoint{})
	rep := tl.verifyClean(t, VerifyOptions{ReadData: true})
	if rep.Objects != 3 || rep.Snapshots != 1 {
		t.Fatalf("Verify checked %d objects, %d snapshots; want 3, 1", rep.Objects, rep.Snapshots)
	}

	missing := Record{Kind: KindIndex, ID: blob.Hash([]byte("gone")), Size: 4, Time: exampleRecord.Time}
	tl.append(t, []Record{missing}, cp)
	rep, err := tl.log.Verify(t.Context(), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Problem{{Kind: ProblemMissing, Object: "index/" + missing.ID.String()}}
	if !slices.EqualFunc(rep.Problems, want, func(a, b Problem) bool { return a.Kind == b.Kind && a.Object == b.Object }) {
		t.Fatalf("Verify with a missing index file: %+v, want %+v", rep.Problems, want)
	}
}

// TestVerifyRemoved: an object logged and then logged as removed may be
// gone; one removed before it was logged (a removal record cannot excuse a
// later object) is still missing.
// TestVerifyStrayNames plants copies of ledger objects under names that
// parse to a real object's index. Names outside the store's rule
// (store.Handle.Check) are refused by the store and, planted in its
// directory anyway, are no object of the repository; verify must name
// each one the store accepts as malformed.
func TestVerifyStrayNames(t *testing.T) {
	tests := []struct {
		typ        store.FileType
		from, name string
		stored     bool // the store's rule accepts the name
	}{
		{store.LedgerCheckpoints, entryName(3), "+0000000000000000003", false},
		{store.LedgerEntries, entryName(0), "+0000000000000000000", false},
		{store.LedgerEntries, entryName(0), "-0000000000000000000", false},
		{store.LedgerTiles, "0-0.p3", "0-72057594037927936.p3", true}, // N<<8 wraps to 0
	}
	for _, tt := range tests {
		t.Run(string(tt.typ)+"/"+tt.name, func(t *testing.T) {
			tl := newTestLog(t)
			tl.append(t, testRecords("h", 0, 3), Checkpoint{})
			data, err := tl.st.Load(t.Context(), store.Handle{Type: tt.typ, Name: tt.from})
			if err != nil {
				t.Fatal(err)
			}
			err = tl.st.Save(t.Context(), store.Handle{Type: tt.typ, Name: tt.name}, data)
			if !tt.stored {
				if !errors.Is(err, store.ErrInvalidHandle) {
					t.Fatalf("Save under %q = %v, want store.ErrInvalidHandle", tt.name, err)
				}
				if err := os.WriteFile(filepath.Join(tl.dir, string(tt.typ), tt.name), data, 0o600); err != nil {
					t.Fatal(err)
				}
				tl.verifyClean(t, VerifyOptions{})
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			rep, err := tl.log.Verify(t.Context(), VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want := []Problem{{Kind: ProblemLog, Object: string(tt.typ) + "/" + tt.name}}
			if !slices.EqualFunc(rep.Problems, want, func(a, b Problem) bool { return a.Kind == b.Kind && a.Object == b.Object }) {
				t.Fatalf("Verify: %+v, want %+v", rep.Problems, want)
			}
		})
	}
}

func TestCosign(t *testing.T) {
	id := blob.Hash([]byte("witnessed"))
	tl := newTestLogFor(t, id)
	witS, witV := mustSigner(t, testWitnessSkey), mustVerifier(t, testWitnessVkey)
	if _, _, err := tl.log.Cosign(t.Context(), witS, Checkpoint{}); err == nil {
		t.Fatal("Cosign of an empty log succeeded")
	}
	// The witness needs only the public key.
	ro, err := OpenReadOnly(tl.st, tl.id, tl.log.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	var prev Checkpoint
	for i, n := range []int{3, 4, 300} {
		cp := tl.append(t, testRecords("h", int(prev.N), n), prev)
		got, msg, err := ro.Cosign(t.Context(), witS, prev)
		if err != nil {
			t.Fatalf("Cosign %d: %v", i, err)
		}
		c, nt, err := OpenCheckpoint(msg, tl.log.Origin(), tl.log.Verifier(), witV)
		if err != nil || got != cp || c != cp || !signedBy(nt, witV) || len(nt.Sigs) != 2 {
			t.Fatalf("Cosign %d = %+v, %+v, %v; want %+v signed by log and witness", i, got, c, err, cp)
		}
		prev = cp
	}
	tl.verifyClean(t, VerifyOptions{Witnesses: []note.Verifier{witV}})

	otherHistory := newTestLogFor(t, id)
	other := otherHistory.append(t, testRecords("other", 0, 5), Checkpoint{})
	countWitness := func() int {
		n := 0
		tl.st.List(t.Context(), store.LedgerWitness, func(store.FileInfo) error { n++; return nil })
		return n
	}
	stored := countWitness()
	tests := []struct {
		name string
		prev Checkpoint
		want error // nil: any error
	}{
		{"rollback", Checkpoint{Origin: prev.Origin, N: prev.N + 1, Hash: prev.Hash}, ErrRollback},
		{"fork, other history", other, ErrFork},
		{"fork, same size", Checkpoint{Origin: prev.Origin, N: prev.N, Hash: other.Hash}, ErrFork},
		{"other log", Checkpoint{Origin: "kalaja.ledger/other", N: 1}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, msg, err := ro.Cosign(t.Context(), witS, tt.prev)
			if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Cosign = %q, %v; want an error wrapping %v", msg, err, tt.want)
			}
			if n := countWitness(); n != stored {
				t.Fatalf("a refused Cosign stored a co-signature (%d, was %d)", n, stored)
			}
		})
	}
}

func TestExport(t *testing.T) {
	tl := newTestLog(t)
	if _, err := tl.log.Export(t.Context(), nil); err == nil {
		t.Fatal("Export of an empty log succeeded")
	}
	var cp Checkpoint
	for _, n := range []int{1, 200, 99} {
		cp = tl.append(t, testRecords("h", int(cp.N), n), cp)
	}
	witS, witV := mustSigner(t, testWitnessSkey), mustVerifier(t, testWitnessVkey)
	if _, _, err := tl.log.Cosign(t.Context(), witS, Checkpoint{}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		keep func(Record) bool
		want []int64
	}{
		{"all", nil, nil},
		{"every 50th", func(r Record) bool { return r.Size%50 == 0 }, []int64{0, 50, 100, 150, 200, 250}},
		{"none", func(Record) bool { return false }, []int64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex, err := tl.log.Export(t.Context(), tt.keep)
			if err != nil {
				t.Fatal(err)
			}
			// Check the export as an outsider would, from its own contents.
			if ex.Format != ExportFormat || ex.LogKey != tl.log.VerifierKey() {
				t.Fatalf("export format %q, key %q", ex.Format, ex.LogKey)
			}
			v, err := note.NewVerifier(ex.LogKey)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := OpenCheckpoint([]byte(ex.Checkpoint), Origin(tl.id), v)
			if err != nil || got != cp {
				t.Fatalf("export checkpoint %+v, %v; want %+v", got, err, cp)
			}
			if len(ex.Cosigned) != 1 {
				t.Fatalf("%d co-signed checkpoints, want 1", len(ex.Cosigned))
			}
			if _, n, err := OpenCheckpoint([]byte(ex.Cosigned[0]), Origin(tl.id), v, witV); err != nil || !signedBy(n, witV) {
				t.Fatalf("co-signed checkpoint: %v", err)
			}
			var indexes []int64
			for _, er := range ex.Records {
				indexes = append(indexes, er.Index)
				checkExported(t, got, er)
			}
			if tt.want == nil && int64(len(indexes)) != cp.N || tt.want != nil && !slices.Equal(indexes, tt.want) {
				t.Fatalf("exported records %v, want %v (nil: all %d)", indexes, tt.want, cp.N)
			}
		})
	}
}

// checkExported checks an exported record's proof against cp, and that the
// proof does not also prove another record or position.
func checkExported(t *testing.T, cp Checkpoint, er ExportedRecord) {
	t.Helper()
	if _, err := ParseRecord([]byte(er.Record)); err != nil {
		t.Fatalf("exported record %d: %v", er.Index, err)
	}
	proof := make(tlog.RecordProof, len(er.Proof))
	for i, s := range er.Proof {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != tlog.HashSize {
			t.Fatalf("record %d: proof hash %q: %v", er.Index, s, err)
		}
		copy(proof[i][:], b)
	}
	leaf := tlog.RecordHash([]byte(er.Record))
	if err := tlog.CheckRecord(proof, cp.N, cp.Hash, er.Index, leaf); err != nil {
		t.Fatalf("record %d: %v", er.Index, err)
	}
	if tlog.CheckRecord(proof, cp.N, cp.Hash, er.Index, tlog.RecordHash([]byte(er.Record+" "))) == nil {
		t.Fatalf("record %d: the proof also proves an altered record", er.Index)
	}
	if tlog.CheckRecord(proof, cp.N, cp.Hash, (er.Index+1)%cp.N, leaf) == nil {
		t.Fatalf("record %d: the proof also proves it at index %d", er.Index, (er.Index+1)%cp.N)
	}
}

// TestCheckExtends checks the test Append and Check share: a tree extends
// every smaller tree of its history, and no altered or larger one.
func TestCheckExtends(t *testing.T) {
	tl := newTestLog(t)
	var cps []Checkpoint
	var cp Checkpoint
	for _, n := range []int{1, 1, 5, 300} {
		cp = tl.append(t, testRecords("h", int(cp.N), n), cp)
		cps = append(cps, cp)
	}
	c, err := tl.log.ReadAll(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, seen := range cps {
		if err := CheckExtends(seen, cp.N, cp.Hash, c); err != nil {
			t.Errorf("CheckExtends(%v, %v): %v", seen, cp, err)
		}
		bad := seen
		bad.Hash[0] ^= 1
		if err := CheckExtends(bad, cp.N, cp.Hash, c); !errors.Is(err, ErrFork) {
			t.Errorf("CheckExtends(altered %v, %v) = %v, want ErrFork", seen, cp, err)
		}
	}
	if err := CheckExtends(Checkpoint{N: cp.N + 1}, cp.N, cp.Hash, c); !errors.Is(err, ErrRollback) {
		t.Errorf("CheckExtends of a larger tree = %v, want ErrRollback", err)
	}
}

// countingStore counts a store's List calls by file type.
type countingStore struct {
	store.Store
	lists map[store.FileType]int
}

func (c *countingStore) List(ctx context.Context, t store.FileType, fn func(store.FileInfo) error) error {
	c.lists[t]++
	return c.Store.List(ctx, t, fn)
}

// A backup checks the log before it starts and appends when it ends. The
// append resumes from what the check read (it does not list and verify the
// checkpoints again) and still takes in what other hosts appended between.
func TestAppendResumesCheck(t *testing.T) {
	tl := newTestLog(t)
	all := testRecords("a", 0, 3)
	seen := tl.append(t, all, Checkpoint{})

	st, _ := tl.host(t)
	cs := &countingStore{Store: st, lists: map[store.FileType]int{}}
	keys := *tl.keys
	lg, err := Open(t.Context(), cs, tl.id, &keys)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := lg.Check(t.Context(), seen); err != nil {
		t.Fatal(err)
	}
	if cs.lists[store.LedgerCheckpoints] != 1 {
		t.Fatalf("Check listed the checkpoints %d times, want 1", cs.lists[store.LedgerCheckpoints])
	}
	between := testRecords("b", 3, 2) // another host, while the backup runs
	seen = tl.append(t, between, seen)
	all = append(all, between...)

	mine := testRecords("a", 5, 4)
	cp, _, err := lg.Append(t.Context(), mine, seen)
	if err != nil {
		t.Fatalf("Append after Check: %v", err)
	}
	all = append(all, mine...)
	if n := cs.lists[store.LedgerCheckpoints]; n != 1 {
		t.Errorf("Append after Check listed the checkpoints again (%d lists in all)", n)
	}
	if cp.N != int64(len(all)) {
		t.Fatalf("checkpoint %+v, want size %d", cp, len(all))
	}
	tl.checkContents(t, all, cp)
	// A second append resumes from the first.
	more := testRecords("a", 9, 1)
	if cp, _, err = lg.Append(t.Context(), more, cp); err != nil {
		t.Fatal(err)
	}
	tl.checkContents(t, append(all, more...), cp)
	if rep := tl.verifyClean(t, VerifyOptions{}); rep.SignedN != cp.N {
		t.Fatalf("Verify: newest checkpoint of size %d, want %d", rep.SignedN, cp.N)
	}
}

// TestWriteOnlySigner: a write-only keyring appends with the signer it
// carries, and the log it signs verifies under the repository's key; a
// carried signer of another key is refused.
func TestWriteOnlySigner(t *testing.T) {
	ctx := t.Context()
	tl := newTestLog(t)
	plain, err := SignerKey(ctx, tl.st, tl.id, tl.keys)
	if err != nil {
		t.Fatal(err)
	}
	wo := tl.keys.WriteOnly(plain)
	if _, err := SignerKey(ctx, tl.st, tl.id, wo); !errors.Is(err, crypto.ErrWriteOnly) {
		t.Fatalf("SignerKey with a write-only key: %v", err)
	}
	lg, err := Open(ctx, tl.st, tl.id, wo)
	if err != nil {
		t.Fatal(err)
	}
	if lg.VerifierKey() != tl.log.VerifierKey() {
		t.Fatalf("write-only log key %q, want %q", lg.VerifierKey(), tl.log.VerifierKey())
	}
	cp, _, err := lg.Append(ctx, testRecords("h", 0, 2), Checkpoint{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := tl.log.Latest(ctx); err != nil || got != cp {
		t.Fatalf("the full key's log reads %+v, %v; want %+v", got, err, cp)
	}
	skey, vkey, err := GenerateKey(KeyName(tl.id))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, tl.st, tl.id, tl.keys.WriteOnly([]byte(skey+"\n"+vkey+"\n"))); !errors.Is(err, blob.ErrCorrupt) {
		t.Fatalf("a carried signer of another key: %v, want ErrCorrupt", err)
	}
}

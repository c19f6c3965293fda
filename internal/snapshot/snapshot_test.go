package snapshot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kalaja/kalaja/internal/blob"
)

func TestTreeRoundTrip(t *testing.T) {
	sub := blob.Hash([]byte("sub"))
	tr := &Tree{Nodes: []Node{
		{Name: "zeta", Kind: File, Mode: 0o4755, Content: []blob.ID{blob.Hash([]byte("a"))}, MTime: Time{Sec: -5, Nsec: 7}},
		{Name: "d", Kind: Dir, Subtree: &sub},
		{Name: "bad\xff\xfename", Kind: Symlink, Target: "\xfftarget"},
		{Name: "ë ç 😀", Kind: FIFO, Xattrs: []Xattr{{Name: "user.x", Value: []byte{0, 1, 2}}}},
	}}
	tr.Sort()
	b, err := tr.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeTree(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Nodes) != 4 || got.Find("bad\xff\xfename") == nil || got.Find("bad\xff\xfename").Target != "\xfftarget" {
		t.Fatalf("invalid UTF-8 lost: %+v", got.Nodes)
	}
	if got.Find("zeta").MTime != (Time{-5, 7}) {
		t.Fatalf("mtime: %+v", got.Find("zeta").MTime)
	}
	if got.Find("zeta").Mode != 0o4755 || got.Find("d").Subtree == nil || *got.Find("d").Subtree != sub {
		t.Fatal("fields lost")
	}
	if got.Find("nope") != nil {
		t.Fatal("found a missing name")
	}
}

func TestDecodeTreeRejects(t *testing.T) {
	tests := []struct{ name, in string }{
		{"garbage", "{"},
		{"version", `{"v":3,"nodes":[]}`},
		{"fingerprint in version 1", `{"v":1,"nodes":[{"name":"a","type":"file","mode":0,"uid":0,"gid":0,"mtime":[0,0],"format":"text"}]}`},
		{"high in version 1", `{"v":1,"nodes":[{"name":"a","type":"file","mode":0,"uid":0,"gid":0,"mtime":[0,0],"high":true}]}`},
		{"format on a symlink", `{"v":2,"nodes":[{"name":"a","type":"symlink","mode":0,"uid":0,"gid":0,"mtime":[0,0],"format":"text"}]}`},
		{"high without format", `{"v":2,"nodes":[{"name":"a","type":"file","mode":0,"uid":0,"gid":0,"mtime":[0,0],"high":true}]}`},
		{"format not a token", `{"v":2,"nodes":[{"name":"a","type":"file","mode":0,"uid":0,"gid":0,"mtime":[0,0],"format":"Te xt"}]}`},
		{"format too long", `{"v":2,"nodes":[{"name":"a","type":"file","mode":0,"uid":0,"gid":0,"mtime":[0,0],"format":"` + strings.Repeat("a", 33) + `"}]}`},
		{"dotdot", `{"v":1,"nodes":[{"name":"..","type":"file","mode":0,"uid":0,"gid":0,"mtime":[0,0]}]}`},
		{"slash", `{"v":1,"nodes":[{"name":"a/b","type":"file","mode":0,"uid":0,"gid":0,"mtime":[0,0]}]}`},
		{"unsorted", `{"v":1,"nodes":[{"name":"b","type":"file","mode":0,"uid":0,"gid":0,"mtime":[0,0]},{"name":"a","type":"file","mode":0,"uid":0,"gid":0,"mtime":[0,0]}]}`},
		{"duplicate", `{"v":1,"nodes":[{"name":"a","type":"file","mode":0,"uid":0,"gid":0,"mtime":[0,0]},{"name":"a","type":"file","mode":0,"uid":0,"gid":0,"mtime":[0,0]}]}`},
		{"dir without subtree", `{"v":1,"nodes":[{"name":"a","type":"dir","mode":0,"uid":0,"gid":0,"mtime":[0,0]}]}`},
		{"mode", `{"v":1,"nodes":[{"name":"a","type":"file","mode":65535,"uid":0,"gid":0,"mtime":[0,0]}]}`},
		{"kind", `{"v":1,"nodes":[{"name":"a","type":"door","mode":0,"uid":0,"gid":0,"mtime":[0,0]}]}`},
		{"nanoseconds", `{"v":1,"nodes":[{"name":"a","type":"file","mode":0,"uid":0,"gid":0,"mtime":[0,1000000000]}]}`},
		{"time not a pair", `{"v":1,"nodes":[{"name":"a","type":"file","mode":0,"uid":0,"gid":0,"mtime":5}]}`},
		{"unknown field", `{"v":1,"nodes":[],"x":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeTree([]byte(tt.in)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestTreeVersions: version 1 trees still decode; fingerprints survive a
// round trip in version 2.
func TestTreeVersions(t *testing.T) {
	v1 := `{"v":1,"nodes":[{"name":"a","type":"file","mode":420,"uid":0,"gid":0,"mtime":[0,0],"size":3}]}`
	tr, err := DecodeTree([]byte(v1))
	if err != nil || tr.Nodes[0].Format != "" || tr.Nodes[0].High {
		t.Fatalf("version 1 tree: %+v, %v", tr, err)
	}
	tr.Nodes[0].Format, tr.Nodes[0].High = "unknown", true
	b, err := tr.Encode()
	if err != nil || !bytes.Contains(b, []byte(`"v":2`)) || !bytes.Contains(b, []byte(`"format":"unknown","high":true`)) {
		t.Fatalf("encoded %s, %v", b, err)
	}
	got, err := DecodeTree(b)
	if err != nil || got.Nodes[0].Format != "unknown" || !got.Nodes[0].High {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
}

// exampleHealth is a suspect health record with every list filled.
func exampleHealth() *Health {
	return &Health{Status: Suspect, Reasons: []Reason{{DamagedFiles, 40, 3}, {RansomNotes, 7, 3}}, Stats: Stats{
		Files: Counts{Added: 9, Changed: 40, Renamed: 40, Unchanged: 3}, Bytes: Counts{Changed: 1 << 20},
		Kinds:       map[string]KindStats{"document": {Files: Counts{Changed: 40}, Damaged: 40}},
		ParentFiles: 83, LostFormat: 40, HighEntropy: 12, Damaged: 40, DamagedBytes: 1 << 20,
		NewExtensions: []Extension{{"xyz123", 40, 7}}, Notes: []Note{{"HOW_TO.txt", 400, 7}},
		Baseline: Baseline{Snapshots: 2, Thresholds: Thresholds{3, 16 << 20, 20, 10, 3}},
	}}
}

func TestSnapshotHealth(t *testing.T) {
	s := &Snapshot{Time: time.Unix(1, 0).UTC(), Tree: blob.Hash(nil), Paths: []string{"/x"}, Health: exampleHealth()}
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 || got.Health == nil || got.Health.Version != 1 || got.Health.Stats.Notes[0].Name != "HOW_TO.txt" ||
		got.Health.Stats.Kinds["document"].Damaged != 40 {
		t.Fatalf("round trip: %+v", got.Health)
	}
	v := got.Health.Verdict()
	if v.Status != Suspect || len(v.Reasons) != 2 || !strings.HasPrefix(v.String(), "SUSPECT: 40 files lost their format") {
		t.Fatalf("verdict %q", v)
	}
	if vb, _ := json.Marshal(v); bytes.Contains(vb, []byte("HOW_TO")) || bytes.Contains(vb, []byte("xyz123")) {
		t.Fatalf("the verdict holds a name: %s", vb)
	}
	v1 := `{"version":1,"time":"2024-01-01T00:00:00Z","tree":"` + blob.Hash(nil).String() + `","paths":["/x"],"hostname":"h","uid":0,"gid":0}`
	if s, err := Decode([]byte(v1)); err != nil || s.Health != nil {
		t.Fatalf("version 1 snapshot: %v", err)
	}
	edit := func(f func(h *Health)) string {
		s := &Snapshot{Time: time.Unix(1, 0).UTC(), Tree: blob.Hash(nil), Paths: []string{"/x"}, Health: exampleHealth()}
		f(s.Health)
		b, _ := json.Marshal(s) // not Encode: keep the versions as edited
		return strings.Replace(string(b), `"version":0,`, `"version":2,`, 1)
	}
	tests := []struct {
		name, in string
		err      error
	}{
		{"health in version 1", strings.Replace(edit(func(h *Health) { h.Version = 1 }), `"version":2,`, `"version":1,`, 1), blob.ErrCorrupt},
		{"health version 2", edit(func(h *Health) { h.Version = 2 }), blob.ErrUnsupported},
		{"health version 0", edit(func(h *Health) {}), blob.ErrUnsupported},
		{"unknown field", strings.Replace(edit(func(h *Health) { h.Version = 1 }), `"zeroed":0`, `"zeroed":0,"x":1`, 1), blob.ErrCorrupt},
		{"status", edit(func(h *Health) { h.Version, h.Status = 1, "fine" }), blob.ErrCorrupt},
		{"clean with reasons", edit(func(h *Health) { h.Version, h.Status = 1, Clean }), blob.ErrCorrupt},
		{"suspect without", edit(func(h *Health) { h.Version, h.Reasons = 1, nil }), blob.ErrCorrupt},
		{"unknown signal", edit(func(h *Health) { h.Version, h.Reasons[0].Signal = 1, "mood" }), blob.ErrCorrupt},
		{"negative", edit(func(h *Health) { h.Version, h.Stats.Files.Added = 1, -1 }), blob.ErrCorrupt},
		{"negative kind", edit(func(h *Health) {
			h.Version = 1
			h.Stats.Kinds["image"] = KindStats{Bytes: Counts{Deleted: -5}}
		}), blob.ErrCorrupt},
		{"kind name", edit(func(h *Health) { h.Version, h.Stats.Kinds["Doc s"] = 1, KindStats{} }), blob.ErrCorrupt},
		{"too many extensions", edit(func(h *Health) {
			h.Version = 1
			for range MaxNewExtensions {
				h.Stats.NewExtensions = append(h.Stats.NewExtensions, Extension{"abc", 1, 1})
			}
		}), blob.ErrCorrupt},
		{"note name", edit(func(h *Health) { h.Version, h.Stats.Notes[0].Name = 1, "a/b" }), blob.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode([]byte(tt.in)); !errors.Is(err, tt.err) {
				t.Fatalf("Decode = %v, want %v", err, tt.err)
			}
		})
	}
}

func TestFind(t *testing.T) {
	mk := func(s string, ago time.Duration) *Snapshot {
		id, err := blob.ParseID(s + strings.Repeat("0", 64-len(s)))
		if err != nil {
			t.Fatal(err)
		}
		return &Snapshot{ID: id, Time: time.Unix(1e9, 0).Add(-ago)}
	}
	list := []*Snapshot{mk("abcd1", 3*time.Hour), mk("abcd2", time.Hour), mk("ffff0", 2*time.Hour)}
	tests := []struct {
		name, want string
		err        error
	}{
		{"latest", "abcd2", nil},
		{"ffff", "ffff0", nil},
		{"abcd1", "abcd1", nil},
		{"abcd", "", errors.New("ambiguous")},
		{"1234", "", blob.ErrNotFound},
		{"ab", "", errors.New("short")},
		{"xyz!", "", errors.New("bad")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Find(list, tt.name, nil)
			if tt.err != nil {
				if err == nil {
					t.Fatalf("found %v", s.ID)
				}
				if errors.Is(tt.err, blob.ErrNotFound) && !errors.Is(err, blob.ErrNotFound) {
					t.Fatalf("error %v does not wrap ErrNotFound", err)
				}
				return
			}
			if err != nil || s.ID.String()[:5] != tt.want {
				t.Fatalf("got %v %v", s, err)
			}
		})
	}
}

func FuzzDecodeTree(f *testing.F) {
	sub := blob.Hash(nil)
	tr := &Tree{Nodes: []Node{{Name: "a", Kind: Dir, Subtree: &sub}, {Name: "b\xff", Kind: File, Content: []blob.ID{sub}, Format: "zip", High: true}}}
	b, _ := tr.Encode()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := DecodeTree(b)
		if err != nil {
			return
		}
		again, err := tr.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeTree(again); err != nil {
			t.Fatalf("re-encoded tree does not decode: %v", err)
		}
	})
}

func FuzzDecodeSnapshot(f *testing.F) {
	s := &Snapshot{Time: time.Unix(1, 0), Tree: blob.Hash(nil), Paths: []string{"/x"}}
	b, _ := s.Encode()
	f.Add(b)
	s.Health = exampleHealth()
	b, _ = s.Encode()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Decode(b)
		if err != nil {
			return
		}
		again, err := s.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(again); err != nil {
			t.Fatalf("re-encoded snapshot does not decode: %v", err)
		}
	})
}

// checkNameJSON requires Name's encoding of s to be json.Marshal's where s
// is valid UTF-8, and to decode back to s; and the decoding of any JSON
// string json.Marshal writes to equal what json.Unmarshal reads from it.
func checkNameJSON(t *testing.T, s string) {
	t.Helper()
	got, err := Name(s).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if utf8.ValidString(s) {
		if want, _ := json.Marshal(s); !bytes.Equal(got, want) {
			t.Fatalf("Name(%q) encodes as %s, json.Marshal as %s", s, got, want)
		}
	}
	var back Name
	if err := back.UnmarshalJSON(got); err != nil || string(back) != s {
		t.Fatalf("Name(%q) round trip: %q, %v", s, back, err)
	}
	// A string as another encoder might write it: \u escapes, raw
	// non-ASCII, invalid UTF-8 (which json.Unmarshal replaces).
	raw := []byte(`"` + s + `"`)
	var want string
	if json.Unmarshal(raw, &want) == nil {
		var n Name
		if err := n.UnmarshalJSON(raw); err != nil || string(n) != want {
			t.Fatalf("Name decodes %s as %q, %v; json.Unmarshal as %q", raw, n, err, want)
		}
	}
}

func TestNameJSON(t *testing.T) {
	for _, s := range []string{"", "plain.go", "a b", `q"uote`, `back\slash`, "<a>&b", "tab\there", "\x7f", "é", "日本", "\u2028", "b\xff", "\xff\xfe", `\u0041`, "nul\x00"} {
		checkNameJSON(t, s)
	}
}

func FuzzNameJSON(f *testing.F) {
	for _, s := range []string{"plain", "<&>", "é", "b\xff", `\"`} {
		f.Add(s)
	}
	f.Fuzz(checkNameJSON)
}

func TestTimeJSON(t *testing.T) {
	for _, tm := range []Time{{}, {1, 2}, {-1, 999999999}, {math.MaxInt64, 0}, {math.MinInt64, 5}} {
		got, err := tm.MarshalJSON()
		want, _ := json.Marshal([2]int64{tm.Sec, tm.Nsec})
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%v encodes as %s, want %s", tm, got, want)
		}
		var back Time
		if err := back.UnmarshalJSON(got); err != nil || back != tm {
			t.Fatalf("%s decodes as %v, %v", got, back, err)
		}
	}
	for _, tt := range []struct {
		in   string
		want Time
		ok   bool
	}{
		{"[ 3 , 4 ]", Time{3, 4}, true},
		{"[-0,0]", Time{0, 0}, true},
		{"[1,1000000000]", Time{}, false},
		{"[1,-1]", Time{}, false},
		{"[1.5,0]", Time{}, false},
		{"[1e3,0]", Time{}, false},
		{"[1]", Time{}, false},
		{"[1,2,3]", Time{}, false},
		{"[9223372036854775808,0]", Time{}, false},
	} {
		var got Time
		err := got.UnmarshalJSON([]byte(tt.in))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("%s decodes as %v, %v", tt.in, got, err)
		}
	}
}

// BenchmarkTreeCodec encodes and decodes a folder of 100 source files.
func BenchmarkTreeCodec(b *testing.B) {
	tr := &Tree{}
	for i := range 100 {
		id := blob.Hash([]byte{byte(i)})
		ct := Time{1700000000 + int64(i), 123456789}
		tr.Nodes = append(tr.Nodes, Node{Name: Name(fmt.Sprintf("file_%03d.go", i)), Kind: File, Mode: 0o644, UID: 1000, GID: 1000,
			Size: 4096, MTime: Time{1700000000, int64(i)}, CTime: &ct, Inode: uint64(1e6 + i), Device: 2049, Links: 1, Content: []blob.ID{id}})
	}
	enc, _ := tr.Encode()
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		for b.Loop() {
			tr.Encode()
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		for b.Loop() {
			DecodeTree(enc)
		}
	})
}

package snapshot

import (
	"errors"
	"strings"
	"testing"
	"time"

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
		{"version", `{"v":2,"nodes":[]}`},
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
	tr := &Tree{Nodes: []Node{{Name: "a", Kind: Dir, Subtree: &sub}, {Name: "b\xff", Kind: File, Content: []blob.ID{sub}}}}
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
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Decode(b)
	})
}

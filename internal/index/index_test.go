package index

import (
	"bytes"
	"errors"
	"testing"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/pack"
)

func samplePacks() []Pack {
	var packs []Pack
	for i := range 3 {
		p := Pack{ID: blob.Hash([]byte{byte(i)}), Ephemeral: [32]byte{byte(i)}}
		var off uint32
		for j := range i + 1 {
			l := uint32(100 + j)
			p.Entries = append(p.Entries, pack.Entry{Type: blob.Data, ID: blob.Hash([]byte{byte(i), byte(j)}), Offset: off, Length: l, RawLength: uint32(j)})
			off += l
		}
		packs = append(packs, p)
	}
	return packs
}

func TestFileRoundTrip(t *testing.T) {
	packs := samplePacks()
	got, err := Decode(Encode(packs))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(packs) || got[2].Entries[2] != packs[2].Entries[2] || got[1].Ephemeral != packs[1].Ephemeral {
		t.Fatalf("round trip lost data: %+v", got)
	}
	if _, err := Decode(Encode(nil)); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeRejects(t *testing.T) {
	good := Encode(samplePacks())
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, blob.ErrCorrupt},
		{"magic", append([]byte("XXXX"), good[4:]...), blob.ErrCorrupt},
		{"version", append(append([]byte("KLJI"), 9), good[5:]...), blob.ErrUnsupported},
		{"truncated", good[:len(good)-1], blob.ErrCorrupt},
		{"trailing", append(bytes.Clone(good), 0), blob.ErrCorrupt},
		{"huge count", append(append([]byte("KLJI"), 1, 0xff, 0xff, 0xff, 0xff), good[9:]...), blob.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(tt.b); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestIndex(t *testing.T) {
	x := New()
	packs := samplePacks()
	for _, p := range packs {
		x.Add(p)
	}
	x.Add(packs[0])
	if x.Len() != 6 || len(x.ByPack()) != 3 {
		t.Fatalf("len %d packs %d", x.Len(), len(x.ByPack()))
	}
	e := packs[2].Entries[1]
	loc, ok := x.Lookup(e.Handle())
	if !ok || loc.Pack != packs[2].ID || loc.Entry != e || loc.Ephemeral != packs[2].Ephemeral {
		t.Fatalf("lookup: %+v %v", loc, ok)
	}
	if x.Has(blob.Handle{Type: blob.Tree, ID: e.ID}) {
		t.Fatal("type ignored")
	}
	if !x.HasPack(packs[1].ID) || x.HasPack(blob.ID{}) {
		t.Fatal("HasPack wrong")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(samplePacks()))
	f.Fuzz(func(t *testing.T, b []byte) {
		packs, err := Decode(b)
		if err != nil {
			return
		}
		if !bytes.Equal(Encode(packs), b) {
			t.Fatal("decode/encode not inverse")
		}
	})
}

func TestByPackKeepsDuplicates(t *testing.T) {
	x := New()
	packs := samplePacks()
	dup := packs[1]
	dup.ID = blob.Hash([]byte("other pack"))
	x.Add(packs[1])
	x.Add(dup)
	by := x.ByPack()
	if len(by[dup.ID].Entries) != len(dup.Entries) || len(by[packs[1].ID].Entries) != len(packs[1].Entries) {
		t.Fatalf("ByPack lost duplicate entries: %+v", by)
	}
	if loc, _ := x.Lookup(dup.Entries[0].Handle()); loc.Pack != packs[1].ID {
		t.Fatal("first location not kept")
	}
}

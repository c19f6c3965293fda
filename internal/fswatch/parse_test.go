package fswatch

import (
	"encoding/binary"
	"fmt"
	"testing"
)

// fanEventBytes encodes one fanotify event with one DFID_NAME record.
func fanEventBytes(mask uint64, pid int32, typ uint8, handle []byte, name string) []byte {
	rec := make([]byte, 20+len(handle)+len(name)+1)
	rec[0] = typ
	binary.LittleEndian.PutUint16(rec[2:], uint16(len(rec)))
	copy(rec[4:12], "fsid1234")
	binary.LittleEndian.PutUint32(rec[12:], uint32(len(handle)))
	binary.LittleEndian.PutUint32(rec[16:], 1)
	copy(rec[20:], handle)
	copy(rec[20+len(handle):], name)
	ev := make([]byte, fanMetadataLen, fanMetadataLen+len(rec))
	binary.LittleEndian.PutUint32(ev, uint32(fanMetadataLen+len(rec)))
	ev[4] = 3
	binary.LittleEndian.PutUint16(ev[6:], fanMetadataLen)
	binary.LittleEndian.PutUint64(ev[8:], mask)
	binary.LittleEndian.PutUint32(ev[16:], 0xffffffff)
	binary.LittleEndian.PutUint32(ev[20:], uint32(pid))
	return append(ev, rec...)
}

func TestParseFanotify(t *testing.T) {
	buf := append(fanEventBytes(0x8, 42, infoDFIDName, []byte{1, 2, 3, 4, 5, 6, 7, 8}, "a.txt"),
		fanEventBytes(0x200, 43, infoDFIDName, []byte{9, 9}, "b")...)
	evs, err := parseFanotify(buf)
	if err != nil || len(evs) != 2 {
		t.Fatalf("parse: %v, %d events", err, len(evs))
	}
	if e := evs[0]; e.mask != 0x8 || e.pid != 42 || e.fd != -1 || len(e.recs) != 1 || e.recs[0].name != "a.txt" || string(e.recs[0].fsid[:]) != "fsid1234" {
		t.Errorf("first event %+v", e)
	}
	if e := evs[1]; e.pid != 43 || e.recs[0].name != "b" || len(e.recs[0].handle) != 2 {
		t.Errorf("second event %+v", e)
	}
	for _, bad := range [][]byte{buf[:10], buf[:30], append([]byte{}, buf[:len(buf)-1]...)} {
		if _, err := parseFanotify(bad); err == nil {
			t.Errorf("parse of %d truncated bytes succeeded", len(bad))
		}
	}
}

func FuzzParseFanotify(f *testing.F) {
	f.Add(fanEventBytes(0x8, 42, infoDFIDName, []byte{1, 2, 3, 4}, "a.txt"))
	f.Add(fanEventBytes(0x10000000, 1, infoOldDFIDName, []byte{1}, "x"))
	f.Add(fanEventBytes(0x4000, 0, 4, nil, ""))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, _ := parseFanotify(b)
		for _, e := range evs {
			for _, r := range e.recs {
				if len(r.handle) > len(b) || len(r.name) > len(b) {
					t.Fatal("record larger than the buffer")
				}
			}
		}
	})
}

func inoEventBytes(wd int32, mask, cookie uint32, name string) []byte {
	n := (len(name) + 1 + 15) &^ 15
	b := make([]byte, 16+n)
	binary.LittleEndian.PutUint32(b, uint32(wd))
	binary.LittleEndian.PutUint32(b[4:], mask)
	binary.LittleEndian.PutUint32(b[8:], cookie)
	binary.LittleEndian.PutUint32(b[12:], uint32(n))
	copy(b[16:], name)
	return b
}

func TestParseInotify(t *testing.T) {
	buf := append(inoEventBytes(1, 0x40, 7, "old.txt"), inoEventBytes(1, 0x80, 7, "new.txt")...)
	evs, err := parseInotify(buf)
	if err != nil || len(evs) != 2 || evs[0].name != "old.txt" || evs[1].cookie != 7 || evs[1].mask != 0x80 {
		t.Fatalf("parse: %v %+v", err, evs)
	}
	if _, err := parseInotify(buf[:20]); err == nil {
		t.Error("parse of a truncated event succeeded")
	}
}

func FuzzParseInotify(f *testing.F) {
	f.Add(inoEventBytes(1, 0x100, 0, "a"))
	f.Add(inoEventBytes(3, 0x2, 0, ""))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, _ := parseInotify(b)
		if len(evs) > len(b)/16 {
			t.Fatalf("%d events from %d bytes", len(evs), len(b))
		}
	})
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		"/srv/data":                "/srv/data",
		`/srv/my\040files`:         "/srv/my files",
		`/srv/tab\011and\134slash`: "/srv/tab\tand\\slash",
		`/srv/short\04`:            `/srv/short\04`,
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestFanotifyPath: a cached folder's record resolves to the folder, and
// its entries to their paths, also in the root folder.
func TestFanotifyPath(t *testing.T) {
	id := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	h := []byte{0x81, 0x2a, 0, 0, 0x11, 0xc7, 0x9b, 0x3d}
	root := []byte{2, 0, 0, 0, 0, 0, 0, 0}
	s := &fanotify{dirs: map[string]string{
		handleKey(id, 1, h):    "/srv/data/Documents",
		handleKey(id, 1, root): "/",
	}}
	for _, tc := range []struct {
		r    fanRecord
		want string
	}{
		{fanRecord{fsid: id, handleType: 1, handle: h, name: "report.docx"}, "/srv/data/Documents/report.docx"},
		{fanRecord{fsid: id, handleType: 1, handle: h, name: "."}, "/srv/data/Documents"},
		{fanRecord{fsid: id, handleType: 1, handle: h}, "/srv/data/Documents"},
		{fanRecord{fsid: id, handleType: 1, handle: root, name: "etc"}, "/etc"},
		{fanRecord{fsid: id, handleType: 2, handle: h, name: "x"}, ""}, // another handle type, and no mount to open it
	} {
		if got := s.path(tc.r); got != tc.want {
			t.Errorf("path(%+v) = %q, want %q", tc.r, got, tc.want)
		}
	}
}

// BenchmarkFanotifyPath is the folder lookup every event on a marked file
// system costs.
func BenchmarkFanotifyPath(b *testing.B) {
	id := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	h := []byte{0x81, 0x2a, 0, 0, 0x11, 0xc7, 0x9b, 0x3d}
	s := &fanotify{dirs: map[string]string{handleKey(id, 1, h): "/srv/data/Documents/Projects/2024"}}
	for i := range 5000 { // a cache of a few thousand folders
		s.dirs[handleKey(id, 1, []byte{byte(i), byte(i >> 8), 0, 0, 1, 2, 3, 4})] = fmt.Sprint("/srv/data/d", i)
	}
	r := fanRecord{fsid: id, handleType: 1, handle: h, name: "minutes-2024-03.docx"}
	b.ReportAllocs()
	for b.Loop() {
		if s.path(r) == "" {
			b.Fatal("not resolved")
		}
	}
}

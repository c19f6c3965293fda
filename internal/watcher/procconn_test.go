package watcher

import (
	"encoding/binary"
	"testing"
)

// procMsg encodes one proc connector message with event what and data words.
func procMsg(what uint32, data ...uint32) []byte {
	b := make([]byte, procDataOff+4*len(data))
	binary.LittleEndian.PutUint32(b, uint32(len(b)))
	binary.LittleEndian.PutUint32(b[procWhatOff:], what)
	for i, d := range data {
		binary.LittleEndian.PutUint32(b[procDataOff+4*i:], d)
	}
	return b
}

func TestParseProcEvents(t *testing.T) {
	buf := append(procMsg(procFork, 10, 10, 11, 11), procMsg(procExit, 11, 11, 0, 0, 10, 10)...)
	buf = append(buf, procMsg(0x40, 1, 1)...) // unknown kind: skipped
	evs, err := parseProcEvents(buf)
	if err != nil || len(evs) != 2 {
		t.Fatalf("parse: %v, %+v", err, evs)
	}
	if f := evs[0]; f.what != procFork || f.pid != 11 || f.tgid != 11 || f.parentTGID != 10 {
		t.Errorf("fork %+v", f)
	}
	if e := evs[1]; e.what != procExit || e.pid != 11 {
		t.Errorf("exit %+v", e)
	}
	if _, err := parseProcEvents(buf[:10]); err == nil {
		t.Error("parse of a truncated message succeeded")
	}
}

func FuzzParseProcEvents(f *testing.F) {
	f.Add(procMsg(procFork, 1, 1, 2, 2))
	f.Add(procMsg(procUID, 5, 5, 1000, 1000))
	f.Add(procMsg(procSID, 5, 5))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := &procs{table: map[int]*proc{}, protected: map[int]bool{}}
		evs, _ := parseProcEvents(b)
		for _, ev := range evs {
			p.apply(ev)
		}
	})
}

package fswatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// fanRecord is one file-identifier info record of a fanotify event: the
// filesystem, a file handle and, for directory-entry records, a name.
type fanRecord struct {
	typ        uint8
	fsid       [8]byte
	handleType int32
	handle     []byte
	name       string
}

// fanEvent is one decoded fanotify event.
type fanEvent struct {
	mask uint64
	fd   int32
	pid  int32
	recs []fanRecord
}

// Fanotify record types (linux/fanotify.h) the parser keeps.
const (
	infoFID         = 1
	infoDFIDName    = 2
	infoDFID        = 3
	infoOldDFIDName = 10
	infoNewDFIDName = 12
)

const fanMetadataLen = 24

var errShort = errors.New("short record")

// parseFanotify decodes a buffer read from a fanotify descriptor
// (struct fanotify_event_metadata followed by info records, repeated).
// Records of types it does not know are skipped. It fails on any length
// that does not fit, never reading past buf.
func parseFanotify(buf []byte) ([]fanEvent, error) {
	var out []fanEvent
	le := binary.LittleEndian
	for len(buf) > 0 {
		if len(buf) < fanMetadataLen {
			return out, fmt.Errorf("fanotify event: %w (%d bytes)", errShort, len(buf))
		}
		evLen, metaLen := int(le.Uint32(buf)), int(le.Uint16(buf[6:]))
		if vers := buf[4]; vers != 3 {
			return out, fmt.Errorf("fanotify event: metadata version %d, want 3", vers)
		}
		if metaLen < fanMetadataLen || evLen < metaLen || evLen > len(buf) {
			return out, fmt.Errorf("fanotify event: lengths %d/%d in %d bytes", evLen, metaLen, len(buf))
		}
		ev := fanEvent{mask: le.Uint64(buf[8:]), fd: int32(le.Uint32(buf[16:])), pid: int32(le.Uint32(buf[20:]))}
		info := buf[metaLen:evLen]
		for len(info) > 0 {
			if len(info) < 4 {
				return out, fmt.Errorf("fanotify info: %w", errShort)
			}
			typ, n := info[0], int(le.Uint16(info[2:]))
			if n < 4 || n > len(info) {
				return out, fmt.Errorf("fanotify info: length %d in %d bytes", n, len(info))
			}
			rec := info[:n]
			info = info[n:]
			switch typ {
			case infoFID, infoDFIDName, infoDFID, infoOldDFIDName, infoNewDFIDName:
			default:
				continue
			}
			if len(rec) < 20 {
				return out, fmt.Errorf("fanotify fid record: %w", errShort)
			}
			hb := int(le.Uint32(rec[12:]))
			if hb > len(rec)-20 {
				return out, fmt.Errorf("fanotify fid record: handle of %d bytes in %d", hb, len(rec))
			}
			r := fanRecord{typ: typ, handleType: int32(le.Uint32(rec[16:])), handle: rec[20 : 20+hb]}
			copy(r.fsid[:], rec[4:12])
			if typ == infoDFIDName || typ == infoOldDFIDName || typ == infoNewDFIDName {
				name := rec[20+hb:]
				if i := bytes.IndexByte(name, 0); i >= 0 {
					name = name[:i]
				}
				r.name = string(name)
			}
			ev.recs = append(ev.recs, r)
		}
		out = append(out, ev)
		buf = buf[evLen:]
	}
	return out, nil
}

// inoEvent is one decoded inotify event.
type inoEvent struct {
	wd     int32
	mask   uint32
	cookie uint32
	name   string
}

// parseInotify decodes a buffer read from an inotify descriptor
// (struct inotify_event with its padded name, repeated).
func parseInotify(buf []byte) ([]inoEvent, error) {
	var out []inoEvent
	le := binary.LittleEndian
	for len(buf) > 0 {
		if len(buf) < 16 {
			return out, fmt.Errorf("inotify event: %w (%d bytes)", errShort, len(buf))
		}
		n := int(le.Uint32(buf[12:]))
		if n > len(buf)-16 {
			return out, fmt.Errorf("inotify event: name of %d bytes in %d", n, len(buf)-16)
		}
		name := buf[16 : 16+n]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		out = append(out, inoEvent{wd: int32(le.Uint32(buf)), mask: le.Uint32(buf[4:]), cookie: le.Uint32(buf[8:]), name: string(name)})
		buf = buf[16+n:]
	}
	return out, nil
}

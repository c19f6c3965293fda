package index

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/kalaja/kalaja/internal/blob"
)

// manifestVersion is the version of the manifest encoding:
//
//	magic "KLJM" | version u32 | run count u32 |
//	per run: name length u8 | name | header CRC u32 |
//	index file count u32 |
//	per file: name length u16 | name | run number u32 |
//	CRC-32C u32 of everything before it
//
// Runs are listed oldest first; every index file belongs to one run.
const manifestVersion = 1

var manifestMagic = []byte("KLJM")

// manifest names the runs of a cache and the index files each covers.
type manifest struct {
	runs  []manifestRun
	files map[string]int // index file name -> run number
}

type manifestRun struct {
	name      string
	headerCRC uint32 // of the run, to tell a run file replaced under its name
}

func (m *manifest) encode() []byte {
	b := append([]byte{}, manifestMagic...)
	b = binary.LittleEndian.AppendUint32(b, manifestVersion)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.runs)))
	for _, r := range m.runs {
		b = append(b, byte(len(r.name)))
		b = append(b, r.name...)
		b = binary.LittleEndian.AppendUint32(b, r.headerCRC)
	}
	n := 0
	for name := range m.files {
		if len(name) <= 0xffff {
			n++
		}
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	for name, run := range m.files {
		if len(name) > 0xffff {
			continue // not recorded: read again at every open
		}
		b = binary.LittleEndian.AppendUint16(b, uint16(len(name)))
		b = append(b, name...)
		b = binary.LittleEndian.AppendUint32(b, uint32(run))
	}
	return binary.LittleEndian.AppendUint32(b, crc(b))
}

// decodeManifest parses a manifest. Malformed input is an error wrapping
// blob.ErrCorrupt, another version blob.ErrUnsupported.
func decodeManifest(b []byte) (*manifest, error) {
	if len(b) < 16 || !bytes.Equal(b[:4], manifestMagic) {
		return nil, fmt.Errorf("manifest: bad magic: %w", blob.ErrCorrupt)
	}
	if binary.LittleEndian.Uint32(b[len(b)-4:]) != crc(b[:len(b)-4]) {
		return nil, fmt.Errorf("manifest: checksum: %w", blob.ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint32(b[4:]); v != manifestVersion {
		return nil, fmt.Errorf("manifest version %d: %w", v, blob.ErrUnsupported)
	}
	d := decoder{b: b[8 : len(b)-4]}
	n := d.u32()
	if uint64(n)*5 > uint64(len(d.b)) {
		return nil, fmt.Errorf("manifest: %d runs: %w", n, blob.ErrCorrupt)
	}
	m := &manifest{files: map[string]int{}}
	seen := map[string]bool{}
	for range n {
		r := manifestRun{name: string(d.bytes(int(d.u8()))), headerCRC: d.u32()}
		if d.bad || !validRunName(r.name) || seen[r.name] {
			return nil, fmt.Errorf("manifest: bad run entry: %w", blob.ErrCorrupt)
		}
		seen[r.name] = true
		m.runs = append(m.runs, r)
	}
	files := d.u32()
	if uint64(files)*6 > uint64(len(d.b)) {
		return nil, fmt.Errorf("manifest: %d index files: %w", files, blob.ErrCorrupt)
	}
	for range files {
		name := string(d.bytes(int(d.u16())))
		run := d.u32()
		if d.bad || run >= uint32(len(m.runs)) {
			return nil, fmt.Errorf("manifest: bad index file entry: %w", blob.ErrCorrupt)
		}
		m.files[name] = int(run)
	}
	if d.bad || len(d.b) != 0 {
		return nil, fmt.Errorf("manifest: truncated or trailing bytes: %w", blob.ErrCorrupt)
	}
	return m, nil
}

// validRunName reports whether name is one newRunName makes.
func validRunName(name string) bool {
	if len(name) != 20 || name[:4] != "run-" {
		return false
	}
	for _, c := range name[4:] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// decoder reads little-endian fields; a read past the end sets bad.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) bytes(n int) []byte {
	if d.bad || n > len(d.b) {
		d.bad = true
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() uint8 {
	if b := d.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) u16() uint16 {
	if b := d.bytes(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if b := d.bytes(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

package index

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/pack"
)

// A run is one immutable file of the index cache (docs/design.md, section
// 7, "Runs"):
//
//	header   64 bytes: magic "KLJR" | version u32 | main u64 | extra u64 |
//	         packs u64 | filter blocks u64 | fan-out CRC u32 |
//	         filter CRC u32 | reserved (zero) | header CRC u32 (of bytes 0..59)
//	fan-out  2 × 65,536 u32: per (type, first two ID bytes), the number of
//	         main records up to and including that bucket
//	filter   blocks × 64 bytes (blocked Bloom filter of the main records)
//	packs    packs × 72 bytes, sorted by pack ID: ID (32) | ephemeral key
//	         (32) | flags u32 (bit 0: holds data) | CRC u32 (of bytes 0..67)
//	main     main × 56 bytes, sorted by (type, blob ID), each handle once:
//	         blob ID (32) | type u8 | zero (3) | pack number u32 | offset u32 |
//	         length u32 | raw length u32 | CRC u32 (of bytes 0..51)
//	extra    extra × 56 bytes, same encoding, in no order: further locations
//	         of handles in main
//
// Integers are little endian, CRCs are CRC-32C (Castagnoli).
const (
	runVersion      = 1
	runHeaderSize   = 64
	recordSize      = 56
	packRecordSize  = 72
	fanoutLen       = 2 << 16
	fanoutSize      = fanoutLen * 4
	filterBlockSize = 64
)

var (
	runMagic   = []byte("KLJR")
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// runHeader is a run's header, decoded.
type runHeader struct {
	main, extra, packs, blocks uint64
	fanoutCRC, filterCRC       uint32
}

func (h runHeader) encode() []byte {
	b := make([]byte, runHeaderSize)
	copy(b, runMagic)
	binary.LittleEndian.PutUint32(b[4:], runVersion)
	binary.LittleEndian.PutUint64(b[8:], h.main)
	binary.LittleEndian.PutUint64(b[16:], h.extra)
	binary.LittleEndian.PutUint64(b[24:], h.packs)
	binary.LittleEndian.PutUint64(b[32:], h.blocks)
	binary.LittleEndian.PutUint32(b[40:], h.fanoutCRC)
	binary.LittleEndian.PutUint32(b[44:], h.filterCRC)
	binary.LittleEndian.PutUint32(b[60:], crc(b[:60]))
	return b
}

// packsOffset is where the pack table starts in a run of this header.
func (h runHeader) packsOffset() uint64 {
	return runHeaderSize + fanoutSize + h.blocks*filterBlockSize
}

// run is an open run: b is the whole file, memory-mapped read-only (or, in
// tests and fuzzing, any byte slice). Reading a record or a pack checks its
// CRC: a bad one is an error, never a wrong answer.
type run struct {
	b                   []byte
	mapped              bool // b is a mapping (openRun)
	main, extra, npacks int
	fanout, filter      []byte
	packs, records      []byte // records: main then extra
}

// parseRun checks b's header, size, fan-out and filter and returns the run
// they describe. Errors wrap blob.ErrCorrupt, or blob.ErrUnsupported for
// another version.
func parseRun(b []byte) (*run, error) {
	if len(b) < runHeaderSize+fanoutSize || !bytes.Equal(b[:4], runMagic) {
		return nil, fmt.Errorf("run: bad magic or size %d: %w", len(b), blob.ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint32(b[4:]); v != runVersion {
		return nil, fmt.Errorf("run version %d: %w", v, blob.ErrUnsupported)
	}
	if binary.LittleEndian.Uint32(b[60:]) != crc(b[:60]) {
		return nil, fmt.Errorf("run: header checksum: %w", blob.ErrCorrupt)
	}
	h := runHeader{
		main: binary.LittleEndian.Uint64(b[8:]), extra: binary.LittleEndian.Uint64(b[16:]),
		packs: binary.LittleEndian.Uint64(b[24:]), blocks: binary.LittleEndian.Uint64(b[32:]),
		fanoutCRC: binary.LittleEndian.Uint32(b[40:]), filterCRC: binary.LittleEndian.Uint32(b[44:]),
	}
	n := uint64(len(b))
	if h.blocks == 0 || h.blocks > n/filterBlockSize || h.packs > n/packRecordSize ||
		h.main > n/recordSize || h.extra > n/recordSize || h.main > 1<<40 || h.extra > 1<<40 ||
		h.packsOffset()+h.packs*packRecordSize+(h.main+h.extra)*recordSize != n {
		return nil, fmt.Errorf("run: counts do not match size %d: %w", n, blob.ErrCorrupt)
	}
	r := &run{b: b, main: int(h.main), extra: int(h.extra), npacks: int(h.packs)}
	r.fanout = b[runHeaderSize : runHeaderSize+fanoutSize]
	r.filter = b[runHeaderSize+fanoutSize : h.packsOffset()]
	r.packs = b[h.packsOffset() : h.packsOffset()+h.packs*packRecordSize]
	r.records = b[h.packsOffset()+h.packs*packRecordSize:]
	if crc(r.fanout) != h.fanoutCRC {
		return nil, fmt.Errorf("run: fan-out checksum: %w", blob.ErrCorrupt)
	}
	if crc(r.filter) != h.filterCRC {
		return nil, fmt.Errorf("run: filter checksum: %w", blob.ErrCorrupt)
	}
	prev := uint32(0)
	for i := range fanoutLen {
		v := binary.LittleEndian.Uint32(r.fanout[i*4:])
		if v < prev {
			return nil, fmt.Errorf("run: fan-out decreases at %d: %w", i, blob.ErrCorrupt)
		}
		prev = v
	}
	if uint64(prev) != h.main {
		return nil, fmt.Errorf("run: fan-out counts %d records, header %d: %w", prev, h.main, blob.ErrCorrupt)
	}
	return r, nil
}

// typeSlot maps a blob type to its half of the fan-out table.
func typeSlot(t blob.Type) (int, bool) {
	switch t {
	case blob.Data:
		return 0, true
	case blob.Tree:
		return 1, true
	}
	return 0, false
}

// bucket returns the range of main records that may hold h.
func (r *run) bucket(h blob.Handle) (lo, hi int, ok bool) {
	s, ok := typeSlot(h.Type)
	if !ok {
		return 0, 0, false
	}
	i := s<<16 | int(h.ID[0])<<8 | int(h.ID[1])
	if i > 0 {
		lo = int(binary.LittleEndian.Uint32(r.fanout[(i-1)*4:]))
	}
	hi = int(binary.LittleEndian.Uint32(r.fanout[i*4:]))
	return lo, hi, true
}

// find returns the main record of h and its position. A record whose ID
// matches but whose CRC or type does not is an error.
func (r *run) find(h blob.Handle) (record, int, bool, error) {
	if !filterHas(r.filter, h) {
		return record{}, 0, false, nil
	}
	first, last, ok := r.bucket(h)
	if !ok {
		return record{}, 0, false, nil
	}
	lo, hi := r.narrow(h, first, last)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		switch r.compareID(mid, h) {
		case 0:
			rec, err := r.record(mid)
			if err != nil {
				return record{}, 0, false, err
			}
			if rec.h != h {
				return record{}, 0, false, fmt.Errorf("run: record %d has type %v in the %v bucket: %w", mid, rec.h.Type, h.Type, blob.ErrCorrupt)
			}
			return rec, mid, true, nil
		case -1:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	// A record of h whose ID was damaged would sit beside where h belongs:
	// check those, so that damage is an error and not a silent miss.
	for _, i := range []int{lo - 1, lo} {
		if i >= first && i < last {
			if _, err := r.record(i); err != nil {
				return record{}, 0, false, err
			}
		}
	}
	return record{}, 0, false, nil
}

// compareID compares the blob ID of main record i with h's.
func (r *run) compareID(i int, h blob.Handle) int {
	return bytes.Compare(r.records[i*recordSize:i*recordSize+blob.IDSize], h.ID[:])
}

// narrow returns a part [lo, hi) of the bucket [first, last) where h would
// be. Blob IDs are uniform, so the third and fourth bytes of h's ID tell
// about where in its bucket it sits; a window around that guess, widened
// in doubling steps until it brackets h, is most often within one page,
// where a binary search of the bucket would touch several.
func (r *run) narrow(h blob.Handle, first, last int) (int, int) {
	n := last - first
	if n <= 16 {
		return first, last
	}
	g := first + int(uint64(n)*(uint64(h.ID[2])<<8|uint64(h.ID[3]))>>16)
	lo, hi := g, g
	for step := 4; lo > first && r.compareID(lo, h) > 0; step *= 2 {
		lo = max(first, lo-step)
	}
	for step := 4; hi < last-1 && r.compareID(hi, h) < 0; step *= 2 {
		hi = min(last-1, hi+step)
	}
	return lo, hi + 1
}

// record is one decoded record.
type record struct {
	h    blob.Handle
	pack uint32
	e    entry // e.pack is unused
}

// record decodes record i (main, then extra), checking its CRC and its pack
// number.
func (r *run) record(i int) (record, error) {
	if i < 0 || i >= r.main+r.extra {
		return record{}, fmt.Errorf("run: record %d of %d: %w", i, r.main+r.extra, blob.ErrCorrupt)
	}
	b := r.records[i*recordSize : (i+1)*recordSize]
	if binary.LittleEndian.Uint32(b[52:]) != crc(b[:52]) {
		return record{}, fmt.Errorf("run: record %d checksum: %w", i, blob.ErrCorrupt)
	}
	var rec record
	copy(rec.h.ID[:], b)
	rec.h.Type = blob.Type(b[32])
	rec.pack = binary.LittleEndian.Uint32(b[36:])
	rec.e = entry{offset: binary.LittleEndian.Uint32(b[40:]), length: binary.LittleEndian.Uint32(b[44:]), rawLength: binary.LittleEndian.Uint32(b[48:])}
	if int(rec.pack) >= r.npacks {
		return record{}, fmt.Errorf("run: record %d names pack %d of %d: %w", i, rec.pack, r.npacks, blob.ErrCorrupt)
	}
	return rec, nil
}

func encodeRecord(b []byte, rec record) {
	copy(b, rec.h.ID[:])
	b[32], b[33], b[34], b[35] = byte(rec.h.Type), 0, 0, 0
	binary.LittleEndian.PutUint32(b[36:], rec.pack)
	binary.LittleEndian.PutUint32(b[40:], rec.e.offset)
	binary.LittleEndian.PutUint32(b[44:], rec.e.length)
	binary.LittleEndian.PutUint32(b[48:], rec.e.rawLength)
	binary.LittleEndian.PutUint32(b[52:], crc(b[:52]))
}

// pack decodes pack n, checking its CRC.
func (r *run) pack(n int) (packInfo, error) {
	if n < 0 || n >= r.npacks {
		return packInfo{}, fmt.Errorf("run: pack %d of %d: %w", n, r.npacks, blob.ErrCorrupt)
	}
	b := r.packs[n*packRecordSize : (n+1)*packRecordSize]
	if binary.LittleEndian.Uint32(b[68:]) != crc(b[:68]) {
		return packInfo{}, fmt.Errorf("run: pack %d checksum: %w", n, blob.ErrCorrupt)
	}
	var p packInfo
	copy(p.id[:], b)
	copy(p.eph[:], b[32:])
	p.data = binary.LittleEndian.Uint32(b[64:])&1 != 0
	return p, nil
}

func encodePack(b []byte, p packInfo) {
	copy(b, p.id[:])
	copy(b[32:], p.eph[:])
	flags := uint32(0)
	if p.data {
		flags = 1
	}
	binary.LittleEndian.PutUint32(b[64:], flags)
	binary.LittleEndian.PutUint32(b[68:], crc(b[:68]))
}

// findPack returns the number of pack id in the run.
func (r *run) findPack(id blob.ID) (int, bool, error) {
	lo, hi := 0, r.npacks
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		switch bytes.Compare(r.packs[mid*packRecordSize:mid*packRecordSize+blob.IDSize], id[:]) {
		case 0:
			if _, err := r.pack(mid); err != nil {
				return 0, false, err
			}
			return mid, true, nil
		case -1:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	for _, i := range []int{lo - 1, lo} {
		if i >= 0 && i < r.npacks {
			if _, err := r.pack(i); err != nil {
				return 0, false, err
			}
		}
	}
	return 0, false, nil
}

// location returns the Location of record rec.
func (r *run) location(rec record) (Location, error) {
	p, err := r.pack(int(rec.pack))
	if err != nil {
		return Location{}, err
	}
	return Location{p.id, p.eph, pack.Entry{Type: rec.h.Type, ID: rec.h.ID, Offset: rec.e.offset, Length: rec.e.length, RawLength: rec.e.rawLength}}, nil
}

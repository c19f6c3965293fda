package index

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"sort"
	"sync"
	"sync/atomic"

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
//
// Scans (merges, ByPack) read records and packs through b, and so do
// lookups (find, findPack, location), but that a direct run's lookups
// (readDirect) read its records from its file, with pread, a window of
// records at a time. Random lookups through the mappings of runs larger
// than the resident bound would fault pages in, with the pages around
// them, each counting in the process's resident set; a direct run's
// lookups touch only its fan-out, filter and pack table through the
// mapping.
type run struct {
	b                   []byte
	file                *os.File    // for direct reads (openRun); nil: none
	direct              atomic.Bool // lookups read file, not b
	mapped              bool        // b is a mapping (openRun)
	main, extra, npacks int
	fanout, filter      []byte
	packs, records      []byte // records: main then extra
	packsAt, recordsAt  int    // their offsets in the file
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
	r.packsAt = int(h.packsOffset())
	r.recordsAt = r.packsAt + r.npacks*packRecordSize
	r.fanout = b[runHeaderSize : runHeaderSize+fanoutSize]
	r.filter = b[runHeaderSize+fanoutSize : h.packsOffset()]
	r.packs = b[r.packsAt:r.recordsAt]
	r.records = b[r.recordsAt:]
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
	if !ok || first == last {
		return record{}, 0, false, nil
	}
	// Blob IDs are uniform, so the third and fourth bytes of h's ID tell
	// about where in its bucket it sits: the first window read is most
	// often the last.
	guess := first + int(uint64(last-first)*(uint64(h.ID[2])<<8|uint64(h.ID[3]))>>16)
	var table []byte // nil: read from the file
	if r.file == nil || !r.direct.Load() {
		table = r.records
	}
	buf := windows.Get().(*[window * recordSize]byte)
	defer windows.Put(buf)
	// A record of h whose ID was damaged would sit beside where h belongs:
	// search checks those, so that damage is an error and not a silent miss.
	check := func(b []byte, i int) error { _, err := decodeRecord(b, i, r.npacks); return err }
	win, start, pos, found, err := r.search(table, r.recordsAt, recordSize, first, last, guess, h.ID[:], buf[:], check)
	if err != nil || !found {
		return record{}, 0, false, err
	}
	rec, err := decodeRecord(win[(pos-start)*recordSize:], pos, r.npacks)
	if err != nil {
		return record{}, 0, false, err
	}
	if rec.h != h {
		return record{}, 0, false, fmt.Errorf("run: record %d has type %v in the %v bucket: %w", pos, rec.h.Type, h.Type, blob.ErrCorrupt)
	}
	return rec, pos, true, nil
}

// residentBound is the size of runs whose lookups read through the
// mapping: up to it, every page of the runs may stay resident, as a warm
// mapping answers a lookup several times faster than pread does. A
// variable for tests.
var residentBound = 256 << 20

// readDirect makes the lookups of runs read from their files if together
// they are larger than residentBound. A run once direct stays so.
func readDirect(runs []*run) {
	size := 0
	for _, r := range runs {
		size += len(r.b)
	}
	if size > residentBound {
		for _, r := range runs {
			r.direct.Store(true)
		}
	}
}

// window is how many records or packs a lookup reads at a time.
const window = 64

// windows holds buffers for the windows of records lookups read (a CRC
// check makes a buffer on the stack escape).
var windows = sync.Pool{New: func() any { return new([window * recordSize]byte) }}

// search looks for the ID key among the items [first, last) of a table of
// items of size bytes sorted by the ID they start with, a window of them
// at a time, the first around guess. The table is table, or if that is
// nil the run's file from offset at, read into buf. It returns the last
// window, the number of its first item, the position where key is or
// would be, and whether it is there. When key is not there, it calls check
// with each item on either side of that position that lies in [first,
// last), and returns the first error check returns.
//
// What the search knows is kept as: item lo is before key (or lo is
// first), item hi-1 after it (or hi is last). A window that does not
// bracket key narrows [lo, hi) past itself, and the next is read at its
// middle; a range of at most a window is read whole.
func (r *run) search(table []byte, at, size, first, last, guess int, key, buf []byte, check func(item []byte, i int) error) (win []byte, start, pos int, found bool, err error) {
	lo, hi := first, last
	// The guess's error is about half the square root of the items: the
	// first window spans four times that, so that one read most often
	// does, and reads no more than it needs to.
	w := min(window, max(8, 2*int(math.Sqrt(float64(last-first)))))
	for {
		n := min(w, hi-lo)
		start = min(max(lo, guess-n/2), hi-n)
		if table != nil {
			win = table[start*size : (start+n)*size]
		} else if win, err = r.readAt(at+start*size, n*size, buf); err != nil {
			return nil, 0, 0, false, err
		}
		id := func(i int) []byte { return win[i*size : i*size+blob.IDSize] }
		switch {
		case start > lo && bytes.Compare(id(0), key) > 0:
			hi = start + 1
		case start+n < hi && bytes.Compare(id(n-1), key) < 0:
			lo = start + n - 1
		default:
			i, found := sort.Find(n, func(i int) int { return bytes.Compare(key, id(i)) })
			if !found {
				// The window holds them: item start is before key unless
				// it is lo, and item start+n-1 after it unless it is hi-1.
				for _, j := range []int{i - 1, i} {
					if j >= 0 && j < n && start+j >= first && start+j < last {
						if err := check(win[j*size:(j+1)*size], start+j); err != nil {
							return nil, 0, 0, false, err
						}
					}
				}
			}
			return win, start, start + i, found, nil
		}
		guess, w = lo+(hi-lo)/2, window
	}
}

// readAt reads the n bytes at offset off of the run's file, into buf when
// it is big enough.
func (r *run) readAt(off, n int, buf []byte) ([]byte, error) {
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := r.file.ReadAt(buf, int64(off)); err != nil {
		return nil, fmt.Errorf("run: read %d bytes at %d: %w", n, off, err)
	}
	return buf, nil
}

// record is one decoded record.
type record struct {
	h    blob.Handle
	pack uint32
	e    entry // e.pack is unused
}

// record decodes record i (main, then extra) of the mapping.
func (r *run) record(i int) (record, error) {
	if i < 0 || i >= r.main+r.extra {
		return record{}, fmt.Errorf("run: record %d of %d: %w", i, r.main+r.extra, blob.ErrCorrupt)
	}
	return decodeRecord(r.records[i*recordSize:], i, r.npacks)
}

// decodeRecord decodes record i from b, checking its CRC and that its pack
// number is below npacks.
func decodeRecord(b []byte, i, npacks int) (record, error) {
	b = b[:recordSize]
	if binary.LittleEndian.Uint32(b[52:]) != crc(b[:52]) {
		return record{}, fmt.Errorf("run: record %d checksum: %w", i, blob.ErrCorrupt)
	}
	var rec record
	copy(rec.h.ID[:], b)
	rec.h.Type = blob.Type(b[32])
	rec.pack = binary.LittleEndian.Uint32(b[36:])
	rec.e = entry{offset: binary.LittleEndian.Uint32(b[40:]), length: binary.LittleEndian.Uint32(b[44:]), rawLength: binary.LittleEndian.Uint32(b[48:])}
	if int(rec.pack) >= npacks {
		return record{}, fmt.Errorf("run: record %d names pack %d of %d: %w", i, rec.pack, npacks, blob.ErrCorrupt)
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

// pack decodes pack n of the mapping.
func (r *run) pack(n int) (packInfo, error) {
	if n < 0 || n >= r.npacks {
		return packInfo{}, fmt.Errorf("run: pack %d of %d: %w", n, r.npacks, blob.ErrCorrupt)
	}
	return decodePack(r.packs[n*packRecordSize:], n)
}

// decodePack decodes pack n from b, checking its CRC.
func decodePack(b []byte, n int) (packInfo, error) {
	b = b[:packRecordSize]
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

// findPack returns pack id if the run holds it.
func (r *run) findPack(id blob.ID) (packInfo, bool, error) {
	if r.npacks == 0 {
		return packInfo{}, false, nil
	}
	guess := int(uint64(r.npacks) * (uint64(id[0])<<8 | uint64(id[1])) >> 16)
	// Through the mapping, so search reads no file: only check fails.
	check := func(b []byte, i int) error { _, err := decodePack(b, i); return err }
	win, start, pos, found, err := r.search(r.packs, 0, packRecordSize, 0, r.npacks, guess, id[:], nil, check)
	if err != nil || !found {
		return packInfo{}, false, err
	}
	p, err := decodePack(win[(pos-start)*packRecordSize:], pos)
	return p, err == nil, err
}

// location returns the Location of record rec.
func (r *run) location(rec record) (Location, error) {
	p, err := r.pack(int(rec.pack))
	if err != nil {
		return Location{}, err
	}
	return Location{p.id, p.eph, pack.Entry{Type: rec.h.Type, ID: rec.h.ID, Offset: rec.e.offset, Length: rec.e.length, RawLength: rec.e.rawLength}}, nil
}

package index

import (
	"bufio"
	"bytes"
	"cmp"
	"container/heap"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/blob"
)

// builder writes one run file: first its packs in ascending ID order, then
// its records in ascending (type, ID) order. A record whose handle equals
// the previous one's goes to the extra section (kept in an unlinked side
// file until finish), unless it repeats that location exactly. The filter
// is written through a shared mapping and the fan-out counted in memory
// (512 KiB), so memory does not grow with the run.
type builder struct {
	f       *os.File
	path    string
	w       *bufio.Writer
	hdr     runHeader
	mapping []byte // header, fan-out and filter regions, read-write
	filter  []byte
	fan     []uint32
	extraF  *os.File
	extraW  *bufio.Writer
	last    record
	hasLast bool
	inPacks bool
	buf     [packRecordSize]byte
}

// newRunName returns a fresh run file name.
func newRunName() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "run-" + hex.EncodeToString(b[:])
}

// newBuilder creates a run file in dir for at most maxRecords records.
func newBuilder(dir string, maxRecords uint64) (*builder, error) {
	name := newRunName()
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create run: %w", err)
	}
	b := &builder{f: f, path: path, hdr: runHeader{blocks: filterBlocks(maxRecords)}, fan: make([]uint32, fanoutLen), inPacks: true}
	fail := func(err error) (*builder, error) {
		b.abort()
		return nil, fmt.Errorf("create run %s: %w", name, err)
	}
	prefix := int64(b.hdr.packsOffset())
	// Reserve the blocks, so that a full disk is an error here and not a
	// SIGBUS when the mapping is written.
	if err := unix.Fallocate(int(f.Fd()), 0, 0, prefix); err != nil {
		if !errors.Is(err, unix.EOPNOTSUPP) {
			return fail(err)
		}
		if err := f.Truncate(prefix); err != nil {
			return fail(err)
		}
	}
	b.mapping, err = unix.Mmap(int(f.Fd()), 0, int(prefix), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail(err)
	}
	b.filter = b.mapping[runHeaderSize+fanoutSize:]
	b.extraF, err = os.CreateTemp(dir, "extra-*.tmp")
	if err != nil {
		return fail(err)
	}
	_ = os.Remove(b.extraF.Name()) // unlinked: gone with the process
	b.extraW = bufio.NewWriterSize(b.extraF, 1<<16)
	b.w = bufio.NewWriterSize(io.NewOffsetWriter(f, prefix), 1<<20)
	return b, nil
}

// name returns the run's file name.
func (b *builder) name() string { return filepath.Base(b.path) }

// addPack appends pack p and returns its number. Packs must come in
// ascending ID order, all before the first record.
func (b *builder) addPack(p packInfo) (uint32, error) {
	if !b.inPacks {
		return 0, errors.New("run: pack after records")
	}
	encodePack(b.buf[:], p)
	if _, err := b.w.Write(b.buf[:]); err != nil {
		return 0, err
	}
	b.hdr.packs++
	return uint32(b.hdr.packs - 1), nil
}

func compareHandles(a, b blob.Handle) int {
	if c := cmp.Compare(a.Type, b.Type); c != 0 {
		return c
	}
	return bytes.Compare(a.ID[:], b.ID[:])
}

// add appends rec, in ascending (type, ID) order.
func (b *builder) add(rec record) error {
	b.inPacks = false
	s, ok := typeSlot(rec.h.Type)
	if !ok {
		return fmt.Errorf("run: blob %v: bad type: %w", rec.h, blob.ErrCorrupt)
	}
	if uint64(rec.pack) >= b.hdr.packs {
		return fmt.Errorf("run: blob %v: pack %d of %d", rec.h, rec.pack, b.hdr.packs)
	}
	if b.hasLast {
		switch c := compareHandles(rec.h, b.last.h); {
		case c < 0:
			return fmt.Errorf("run: blob %v after %v: out of order", rec.h, b.last.h)
		case c == 0:
			if rec.pack == b.last.pack && rec.e == b.last.e {
				return nil
			}
			return b.addExtra(rec)
		}
	}
	encodeRecord(b.buf[:recordSize], rec)
	if _, err := b.w.Write(b.buf[:recordSize]); err != nil {
		return err
	}
	b.fan[s<<16|int(rec.h.ID[0])<<8|int(rec.h.ID[1])]++
	filterAdd(b.filter, rec.h)
	b.last, b.hasLast = rec, true
	b.hdr.main++
	return nil
}

// addExtra appends a further location of a handle added with add.
func (b *builder) addExtra(rec record) error {
	var buf [recordSize]byte
	encodeRecord(buf[:], rec)
	if _, err := b.extraW.Write(buf[:]); err != nil {
		return err
	}
	b.hdr.extra++
	return nil
}

// finish completes the run and syncs it to disk; it returns the file name.
func (b *builder) finish() (string, error) {
	err := b.complete()
	if err != nil {
		b.abort()
		return "", fmt.Errorf("write run %s: %w", b.name(), err)
	}
	return b.name(), nil
}

func (b *builder) complete() error {
	if err := b.extraW.Flush(); err != nil {
		return err
	}
	if _, err := b.extraF.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := io.Copy(b.w, b.extraF); err != nil {
		return err
	}
	if err := b.w.Flush(); err != nil {
		return err
	}
	sum := uint32(0)
	fan := b.mapping[runHeaderSize : runHeaderSize+fanoutSize]
	for i, n := range b.fan {
		sum += n
		binary.LittleEndian.PutUint32(fan[i*4:], sum)
	}
	b.hdr.fanoutCRC = crc(fan)
	b.hdr.filterCRC = crc(b.filter)
	copy(b.mapping, b.hdr.encode())
	if err := unix.Msync(b.mapping, unix.MS_SYNC); err != nil {
		return err
	}
	if err := b.f.Sync(); err != nil {
		return err
	}
	b.release()
	return nil
}

// release unmaps and closes what the builder holds.
func (b *builder) release() {
	if b.mapping != nil {
		_ = unix.Munmap(b.mapping)
		b.mapping = nil
	}
	if b.extraF != nil {
		_ = b.extraF.Close()
		b.extraF = nil
	}
	if b.f != nil {
		_ = b.f.Close()
		b.f = nil
	}
}

// abort removes the unfinished run.
func (b *builder) abort() {
	b.release()
	_ = os.Remove(b.path)
}

// batch collects packs in memory until written as one run.
type batch struct {
	packs []packInfo
	recs  []record // pack: index in packs
}

func (bt *batch) add(p Pack) {
	n := uint32(len(bt.packs))
	bt.packs = append(bt.packs, packInfo{p.ID, p.Ephemeral, hasData(p)})
	for _, e := range p.Entries {
		bt.recs = append(bt.recs, record{h: e.Handle(), pack: n, e: entry{offset: e.Offset, length: e.Length, rawLength: e.RawLength}})
	}
}

// write sorts the batch and writes it as a run in dir; it returns the file
// name. A handle that the main records of older hold goes to the extra
// section, so that a handle is in the main records of one run only.
func (bt *batch) write(dir string, older []*run) (string, error) {
	readDirect(older)
	order := make([]uint32, len(bt.packs))
	for i := range order {
		order[i] = uint32(i)
	}
	slices.SortStableFunc(order, func(a, b uint32) int { return bytes.Compare(bt.packs[a].id[:], bt.packs[b].id[:]) })
	b, err := newBuilder(dir, uint64(len(bt.recs)))
	if err != nil {
		return "", err
	}
	// A pack older runs hold keeps the entries they list (as Add ignores a
	// pack already indexed): an index file and a later one that lists the
	// same pack again (an orphan adopted twice) must not list its blobs
	// twice.
	known := make([]bool, len(bt.packs))
	for k, p := range bt.packs {
		for _, r := range older {
			if _, ok, err := r.findPack(p.id); ok && err == nil {
				known[k] = true
			}
		}
	}
	remap := make([]uint32, len(bt.packs))
	for i := 0; i < len(order); {
		p := bt.packs[order[i]]
		j := i + 1
		for ; j < len(order) && bt.packs[order[j]].id == p.id; j++ {
			p.data = p.data || bt.packs[order[j]].data
		}
		n, err := b.addPack(p)
		if err != nil {
			b.abort()
			return "", err
		}
		for _, k := range order[i:j] {
			remap[k] = n
		}
		for _, k := range order[i+1 : j] {
			known[k] = true // listed again: the first listing's entries stay
		}
		i = j
	}
	// By handle, then in the order read (packs are numbered as read), so
	// that the first location read stays in the main records.
	slices.SortFunc(bt.recs, func(a, b record) int {
		if c := compareHandles(a.h, b.h); c != 0 {
			return c
		}
		if c := cmp.Compare(a.pack, b.pack); c != 0 {
			return c
		}
		return cmp.Compare(a.e.offset, b.e.offset)
	})
	for _, rec := range bt.recs {
		if known[rec.pack] {
			continue
		}
		rec.pack = remap[rec.pack]
		add := b.add
		if inRuns(older, rec.h) {
			add = b.addExtra
		}
		if err := add(rec); err != nil {
			b.abort()
			return "", err
		}
	}
	return b.finish()
}

// inRuns reports whether the main records of runs hold h; a damaged record
// counts as not held.
func inRuns(runs []*run, h blob.Handle) bool {
	for _, r := range runs {
		if _, _, ok, err := r.find(h); ok && err == nil {
			return true
		}
	}
	return false
}

// mergeRuns writes one run in dir holding every record of in, which lists
// runs oldest first: a handle in several keeps the oldest's location in
// the main section. It returns the file name.
func mergeRuns(dir string, in []*run) (string, error) {
	total := uint64(0)
	for _, r := range in {
		total += uint64(r.main + r.extra)
	}
	b, err := newBuilder(dir, total)
	if err != nil {
		return "", err
	}
	if err := merge(b, in); err != nil {
		b.abort()
		return "", fmt.Errorf("merge runs: %w", err)
	}
	return b.finish()
}

func merge(b *builder, in []*run) error {
	remap := make([][]uint32, len(in))
	next := make([]int, len(in))
	for i, r := range in {
		remap[i] = make([]uint32, r.npacks)
	}
	// owner is, per pack of the output, the oldest input that holds it:
	// only its records of the pack are kept (see batch.write).
	var owner []int
	var pending packInfo
	var pendingFrom [][2]int
	flush := func() error {
		if len(pendingFrom) == 0 {
			return nil
		}
		n, err := b.addPack(pending)
		owner = append(owner, pendingFrom[0][0])
		for _, f := range pendingFrom {
			remap[f[0]][f[1]] = n
			owner[n] = min(owner[n], f[0])
		}
		pendingFrom = pendingFrom[:0]
		return err
	}
	for {
		m := -1
		for i, r := range in {
			if next[i] < r.npacks && (m < 0 || bytes.Compare(r.packs[next[i]*packRecordSize:next[i]*packRecordSize+blob.IDSize],
				in[m].packs[next[m]*packRecordSize:next[m]*packRecordSize+blob.IDSize]) < 0) {
				m = i
			}
		}
		if m < 0 {
			break
		}
		p, err := in[m].pack(next[m])
		if err != nil {
			return err
		}
		if len(pendingFrom) > 0 && p.id == pending.id {
			pending.data = pending.data || p.data
		} else {
			if err := flush(); err != nil {
				return err
			}
			pending = p
		}
		pendingFrom = append(pendingFrom, [2]int{m, next[m]})
		next[m]++
	}
	if err := flush(); err != nil {
		return err
	}
	h := &cursors{}
	for i, r := range in {
		if r.main > 0 {
			h.c = append(h.c, cursor{r: r, src: i})
		}
	}
	heap.Init(h)
	done := 0
	for h.Len() > 0 {
		c := &h.c[0]
		rec, err := c.r.record(c.pos)
		if err != nil {
			return err
		}
		rec.pack = remap[c.src][rec.pack]
		if owner[rec.pack] == c.src {
			if err := b.add(rec); err != nil {
				return err
			}
		}
		c.pos++
		if c.pos == c.r.main {
			heap.Pop(h)
		} else {
			heap.Fix(h, 0)
		}
		if done++; done%(1<<20) == 0 {
			for _, r := range in {
				r.dropPages()
			}
		}
	}
	for i, r := range in {
		for j := r.main; j < r.main+r.extra; j++ {
			rec, err := r.record(j)
			if err != nil {
				return err
			}
			rec.pack = remap[i][rec.pack]
			if owner[rec.pack] != i {
				continue
			}
			if err := b.addExtra(rec); err != nil {
				return err
			}
		}
	}
	return nil
}

// cursor is a position in one merge input's main records.
type cursor struct {
	r        *run
	src, pos int
}

// cursors is a heap of cursors ordered by (type, ID) of their records, then
// by input, so that the oldest run's record comes first.
type cursors struct{ c []cursor }

func (h *cursors) Len() int { return len(h.c) }
func (h *cursors) Less(i, j int) bool {
	a, b := h.c[i].r.records[h.c[i].pos*recordSize:], h.c[j].r.records[h.c[j].pos*recordSize:]
	if a[32] != b[32] {
		return a[32] < b[32]
	}
	if c := bytes.Compare(a[:blob.IDSize], b[:blob.IDSize]); c != 0 {
		return c < 0
	}
	return h.c[i].src < h.c[j].src
}
func (h *cursors) Swap(i, j int) { h.c[i], h.c[j] = h.c[j], h.c[i] }
func (h *cursors) Push(x any)    { h.c = append(h.c, x.(cursor)) }
func (h *cursors) Pop() any {
	x := h.c[len(h.c)-1]
	h.c = h.c[:len(h.c)-1]
	return x
}

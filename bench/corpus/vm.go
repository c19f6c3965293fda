package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// blockSize is the alignment of every region in the VM image.
const blockSize = 4096

// vmPath is where the VM image lives inside the corpus.
var vmPath = filepath.Join("vm", "disk.img")

// zeroBlock is one block of zero bytes.
var zeroBlock = make([]byte, blockSize)

// vmImage writes the VM-like image of exactly size bytes (rounded down to
// whole blocks). Regions are 4 KiB to 8 MiB long and by share of bytes about
// 25% zero, 37% random, 20% copies of a small pool of templates (so the same
// content appears at several offsets, sometimes with a few blocks changed),
// 13% compressible text and 5% repeated filler blocks.
type vmImage struct {
	r    *rand.Rand
	rnd  *rand.ChaCha8
	pool [][]byte
	w    *bufio.Writer
}

func writeVM(root string, seed uint64, size int64) (stats, error) {
	size -= size % blockSize
	path := filepath.Join(root, vmPath)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return stats{}, err
	}
	f, err := os.Create(path)
	if err != nil {
		return stats{}, err
	}
	defer func() { _ = f.Close() }() // for the error returns: the success path closes and checks below
	m := &vmImage{
		r:   newRand(key(seed, "vm")),
		rnd: newBytes(key(seed, "vm-bytes")),
		w:   bufio.NewWriterSize(f, 4<<20),
	}
	m.makePool(min(size/20, 32<<20))
	for off := int64(0); off < size; {
		n := min(logUniform(m.r, 1, 2048)*blockSize, size-off)
		if err := m.region(n); err != nil {
			return stats{}, fmt.Errorf("write %s: %w", path, err)
		}
		off += n
	}
	if err := m.w.Flush(); err != nil {
		return stats{}, err
	}
	if err := f.Close(); err != nil {
		return stats{}, err
	}
	t := pastTime(m.r)
	return stats{files: 1, bytes: size}, os.Chtimes(path, t, t)
}

// makePool fills the template pool with about total bytes.
func (m *vmImage) makePool(total int64) {
	total = max(total, 2*blockSize)
	for have := int64(0); have < total; {
		n := logUniform(m.r, 16, 1024) * blockSize
		n = min(n, max(total/2, blockSize))
		n -= n % blockSize
		var t []byte
		if m.r.IntN(10) < 7 {
			t = make([]byte, n)
			m.rnd.Read(t)
		} else {
			t = m.text(int(n))
		}
		m.pool = append(m.pool, t)
		have += n
	}
}

// text returns exactly n bytes of generated source text.
func (m *vmImage) text(n int) []byte {
	g := textGen{r: m.r, v: newVocab(m.r, "guest"), buf: make([]byte, 0, n+64<<10)}
	for len(g.buf) < n {
		g.unit(langs[langNames[m.r.IntN(len(langNames))]], 0)
	}
	return g.buf[:n]
}

// region writes one region of n bytes, a whole number of blocks.
func (m *vmImage) region(n int64) error {
	switch k := m.r.IntN(100); {
	case k < 25:
		return m.repeat(zeroBlock, n)
	case k < 62:
		_, err := io.CopyN(m.w, m.rnd, n)
		return err
	case k < 82:
		for left := n; left > 0; {
			t := m.pool[m.r.IntN(len(m.pool))]
			if int64(len(t)) > left {
				start := m.r.Int64N(int64(len(t))/blockSize-left/blockSize+1) * blockSize
				t = t[start : start+left]
			}
			if m.r.IntN(10) < 3 {
				t = bytes.Clone(t)
				for range 1 + m.r.IntN(3) {
					b := m.r.IntN(len(t) / blockSize)
					m.rnd.Read(t[b*blockSize : (b+1)*blockSize])
				}
			}
			if _, err := m.w.Write(t); err != nil {
				return err
			}
			left -= int64(len(t))
		}
		return nil
	case k < 95:
		_, err := m.w.Write(m.text(int(n)))
		return err
	default:
		fill := bytes.Repeat([]byte{0xff}, blockSize)
		if m.r.IntN(2) == 0 {
			rec := make([]byte, 64)
			m.rnd.Read(rec)
			fill = bytes.Repeat(rec, blockSize/64)
		}
		return m.repeat(fill, n)
	}
}

// repeat writes block b over and over, n bytes in all.
func (m *vmImage) repeat(b []byte, n int64) error {
	for ; n > 0; n -= int64(len(b)) {
		if _, err := m.w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

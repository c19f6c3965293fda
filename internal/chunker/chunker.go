package chunker

import (
	"errors"
	"fmt"
	"io"
)

// maxEmptyReads is how many consecutive (0, nil) reads Next tolerates before
// failing with io.ErrNoProgress, as bufio does.
const maxEmptyReads = 100

// readSize is the least a Chunker's buffer holds beyond the longest chunk,
// so that each read is at least that large. A larger buffer (2·Max) is no
// faster and costs memory in every file reader (docs/measurements.md,
// "Chunker").
const readSize = 1 << 20

// Chunker splits a stream into chunks as the package documentation specifies.
// It reads the stream into an internal buffer of Max + readSize bytes, 3 MiB
// for DefaultParams. Not safe for concurrent use.
type Chunker struct {
	tab          [256]uint64
	p            Params
	maskS, maskL uint64

	r   io.Reader
	buf []byte
	// buf[start:end] holds input not yet returned; the current chunk
	// starts at start.
	start, end int
	// pos is the offset from start of the next byte to hash and h the
	// hash of the bytes of the current chunk before it.
	pos int
	h   uint64
	// err is io.EOF once r is exhausted, or the wrapped read error.
	err error
}

// New returns a chunker reading r, with a gear table derived from key (any 32
// secret bytes, e.g. the repository's chunker key) by GearTable. It panics
// only if p is invalid; callers Validate Params that come from outside.
func New(r io.Reader, key [32]byte, p Params) *Chunker {
	if err := p.Validate(); err != nil {
		panic(err)
	}
	c := &Chunker{tab: *GearTable(key), p: p, buf: make([]byte, p.Max+readSize)}
	c.maskS, c.maskL = p.masks()
	c.Reset(r)
	return c
}

// Reset makes c read r from the start, keeping its table and buffers, so one
// Chunker can serve many streams without allocating. Input buffered from the
// previous reader, and any error it returned, are discarded.
func (c *Chunker) Reset(r io.Reader) {
	c.r = r
	c.start, c.end = 0, 0
	c.err = nil
	c.newChunk()
}

// Next copies the next chunk into buf[:0] (growing it if needed) and returns
// it; the result never aliases c's internal buffer. At the end of the stream it
// returns nil, io.EOF, and keeps doing so; an empty stream yields io.EOF at
// once.
//
// If r fails with an error other than io.EOF, Next first returns the chunks
// whose ends are already determined by the bytes read before the failure, then
// returns nil and the error wrapped (test it with errors.Is), and keeps
// returning that error until Reset. The bytes after the last returned chunk
// are discarded. A reader that returns no bytes and no error 100 times in a
// row fails with io.ErrNoProgress.
func (c *Chunker) Next(buf []byte) ([]byte, error) {
	for {
		if n, ok := c.cut(); ok {
			return c.emit(buf, n), nil
		}
		if c.err == io.EOF {
			if c.end > c.start {
				return c.emit(buf, c.end-c.start), nil
			}
			return nil, io.EOF
		}
		if c.err != nil {
			return nil, c.err
		}
		c.fill()
	}
}

// cut continues the cut-point search over the buffered input and reports the
// length of the current chunk if the bytes seen so far determine it.
func (c *Chunker) cut() (int, bool) {
	limit := min(c.end-c.start, c.p.Max)
	// Lengths L < Avg, i.e. byte offsets below Avg−1, use MaskS.
	if strict := min(limit, c.p.Avg-1); c.pos < strict {
		i, h := find(&c.tab, c.buf[c.start+c.pos:c.start+strict], c.h, c.maskS)
		if i >= 0 {
			return c.pos + i + 1, true
		}
		c.pos, c.h = strict, h
	}
	if c.pos < limit {
		i, h := find(&c.tab, c.buf[c.start+c.pos:c.start+limit], c.h, c.maskL)
		if i >= 0 {
			return c.pos + i + 1, true
		}
		c.pos, c.h = limit, h
	}
	return limit, limit == c.p.Max
}

// emit returns the next n bytes as a chunk in buf and starts a new chunk.
func (c *Chunker) emit(buf []byte, n int) []byte {
	buf = append(buf[:0], c.buf[c.start:c.start+n]...)
	c.start += n
	c.newChunk()
	return buf
}

// newChunk resets the search state at a chunk start: the first Min−1 bytes
// are skipped without hashing.
func (c *Chunker) newChunk() {
	c.pos = c.p.Min - 1
	c.h = 0
}

// fill reads once more from r into the free end of the buffer, first moving
// the current chunk to the front if the buffer is full. The current chunk is
// shorter than Max, so at least readSize bytes are then free. It records
// io.EOF or the wrapped read error in c.err.
func (c *Chunker) fill() {
	if c.start == c.end {
		c.start, c.end = 0, 0
	} else if c.end == len(c.buf) {
		c.end = copy(c.buf, c.buf[c.start:c.end])
		c.start = 0
	}
	for range maxEmptyReads {
		n, err := c.r.Read(c.buf[c.end:])
		c.end += n
		switch {
		case errors.Is(err, io.EOF):
			c.err = io.EOF
			return
		case err != nil:
			c.err = fmt.Errorf("read input: %w", err)
			return
		case n > 0:
			return
		}
	}
	c.err = fmt.Errorf("read input: %w", io.ErrNoProgress)
}

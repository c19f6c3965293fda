package ledger

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/kalaja/kalaja/internal/blob"
)

// Contents is the whole log as stored, read record by record, with every
// hash recomputed from the records rather than taken from stored tiles.
type Contents struct {
	Records []Record // in log order
	Raw     [][]byte // the records' encodings, as hashed
	hashes  hashStore
}

// ReadAll reads every batch of the log from the first. If a batch cannot be
// read or parsed, it returns the records before it with the error.
func (l *Log) ReadAll(ctx context.Context) (*Contents, error) {
	c := &Contents{}
	var n int64
	for {
		b, err := loadBatch(ctx, l.st, n)
		if errors.Is(err, blob.ErrNotFound) {
			return c, nil
		}
		if err != nil {
			return c, err
		}
		for _, raw := range b.records {
			r, err := ParseRecord(raw) // parseBatch checked it
			if err != nil {
				return c, err
			}
			c.Records = append(c.Records, r)
			c.Raw = append(c.Raw, raw)
		}
		if err := c.hashes.add(n, b.records); err != nil {
			return c, err
		}
		n += int64(len(b.records))
	}
}

// N returns the number of records.
func (c *Contents) N() int64 { return int64(len(c.Records)) }

// ReadHashes implements tlog.HashReader over the recomputed hashes.
func (c *Contents) ReadHashes(idx []int64) ([]tlog.Hash, error) { return c.hashes.ReadHashes(idx) }

// Root returns the root hash of the log's first n records.
func (c *Contents) Root(n int64) (tlog.Hash, error) {
	if n > c.N() {
		return tlog.Hash{}, fmt.Errorf("root of %d records: the log holds %d", n, c.N())
	}
	return tlog.TreeHash(n, c)
}

// RecordsFrom reads the batches from log index start, which must be where
// a batch starts (the end of the log is one), to the end of the log. It
// returns their records and the log's end. Clients use it to catch up from
// a point they remember without reading the whole log.
func (l *Log) RecordsFrom(ctx context.Context, start int64) ([]Record, int64, error) {
	var out []Record
	n := start
	for {
		b, err := loadBatch(ctx, l.st, n)
		if errors.Is(err, blob.ErrNotFound) {
			return out, n, nil
		}
		if err != nil {
			return nil, 0, err
		}
		for _, raw := range b.records {
			r, err := ParseRecord(raw)
			if err != nil {
				return nil, 0, err
			}
			out = append(out, r)
		}
		n += int64(len(b.records))
	}
}

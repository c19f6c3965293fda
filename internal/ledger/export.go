package ledger

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/kalaja/kalaja/internal/store"
)

// ExportFormat names the version of the export encoding.
const ExportFormat = "kalaja-ledger-export/v1"

// Export is a self-contained bundle of records with inclusion proofs, for
// checking offline without the repository or its password
// (docs/design.md, "Checking an export by hand").
type Export struct {
	Format     string           `json:"format"`
	LogKey     string           `json:"log_key"`    // note verifier key of the log
	Checkpoint string           `json:"checkpoint"` // signed note the proofs lead to
	Cosigned   []string         `json:"cosigned,omitempty"`
	Records    []ExportedRecord `json:"records"`
}

// ExportedRecord is one record with its proof of inclusion.
type ExportedRecord struct {
	Index  int64    `json:"index"`
	Record string   `json:"record"` // the record's encoding, the leaf's data
	Proof  []string `json:"proof"`  // base64 hashes of the RFC 6962 audit path
}

// Export builds an export of the records keep accepts (all if keep is nil),
// proved against the newest signed checkpoint, with the witness
// co-signatures of that checkpoint.
func (l *Log) Export(ctx context.Context, keep func(Record) bool) (*Export, error) {
	cp, msg, err := l.Latest(ctx)
	if err != nil {
		return nil, err
	}
	if cp.N == 0 {
		return nil, errors.New("the log has no signed checkpoint yet")
	}
	c, err := l.ReadAll(ctx)
	if c.N() < cp.N {
		if err == nil {
			err = fmt.Errorf("%w: the log holds %d records, its checkpoint says %d", ErrRollback, c.N(), cp.N)
		}
		return nil, err
	}
	if root, _ := c.Root(cp.N); root != cp.Hash {
		return nil, fmt.Errorf("%w: the log's records do not match its newest checkpoint", ErrFork)
	}
	ex := &Export{Format: ExportFormat, LogKey: l.vkey, Checkpoint: string(msg), Records: []ExportedRecord{}}
	suffix := entryName(cp.N) + "."
	if err := l.st.List(ctx, store.LedgerWitness, func(fi store.FileInfo) error {
		if !strings.HasPrefix(fi.Name, suffix) {
			return nil
		}
		b, err := l.st.Load(ctx, store.Handle{Type: store.LedgerWitness, Name: fi.Name})
		if err != nil {
			return err
		}
		ex.Cosigned = append(ex.Cosigned, string(b))
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list witness checkpoints: %w", err)
	}
	for i := range cp.N {
		if keep != nil && !keep(c.Records[i]) {
			continue
		}
		proof, err := tlog.ProveRecord(cp.N, i, c)
		if err != nil {
			return nil, fmt.Errorf("proof of record %d: %w", i, err)
		}
		er := ExportedRecord{Index: i, Record: string(c.Raw[i]), Proof: make([]string, len(proof))}
		for j, h := range proof {
			er.Proof[j] = base64.StdEncoding.EncodeToString(h[:])
		}
		ex.Records = append(ex.Records, er)
	}
	return ex, nil
}

package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/kalaja/kalaja/internal/store"
)

// Vault record kinds, written only by the server (kalaja serve): an alert
// a host sent, a host gone silent, a host back.
const (
	KindAlert  = "alert"
	KindSilent = "silent"
	KindBack   = "back"
)

// ServerOnly reports whether records of kind may be written only by the
// server, never by a host.
func ServerOnly(kind string) bool {
	return kind == KindAlert || kind == KindSilent || kind == KindBack
}

// AppendUnsigned appends recs as one batch at the end of the log, without
// signing a checkpoint (the next signed append covers them). It returns the
// log index of the batch's first record.
func (l *Log) AppendUnsigned(ctx context.Context, recs []Record) (int64, error) {
	if len(recs) == 0 {
		return 0, errors.New("append: no records")
	}
	raw := make([][]byte, len(recs))
	for i, r := range recs {
		b, err := r.encode()
		if err != nil {
			return 0, err
		}
		raw[i] = b
	}
	for {
		_, end, err := l.RecordsFrom(ctx, 0)
		if err != nil {
			return 0, err
		}
		b := batch{start: end, records: raw}
		err = l.st.Save(ctx, store.Handle{Type: store.LedgerEntries, Name: entryName(end)}, b.encode())
		if errors.Is(err, store.ErrExists) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("append unsigned: %w", err)
		}
		return end, nil
	}
}

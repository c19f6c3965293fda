package ledger

import (
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/local"
)

// BenchmarkAppend measures what one backup of about 1 GiB adds to its run
// time: appending a batch of 70 records (64 packs, 5 index files, the
// snapshot) to a log that 1,000 such backups made, on a local store with
// its fsyncs. bench/ledger.sh measures the same cost end to end.
func BenchmarkAppend(b *testing.B) {
	var id blob.ID
	rand.Read(id[:])
	keys, err := crypto.NewKeys(id)
	if err != nil {
		b.Fatal(err)
	}
	st, err := local.Create(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Save(b.Context(), store.Handle{Type: store.Config}, []byte("bench")); err != nil {
		b.Fatal(err)
	}
	lg, err := Open(b.Context(), st, id, keys)
	if err != nil {
		b.Fatal(err)
	}
	batch := func(i int) []Record { return testRecords(fmt.Sprint("host-", i), i*70, 70) }
	var seen Checkpoint
	for i := range 1000 {
		if seen, _, err = lg.Append(b.Context(), batch(i), seen); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; b.Loop(); i++ {
		if seen, _, err = lg.Append(b.Context(), batch(1000+i), seen); err != nil {
			b.Fatal(err)
		}
	}
}

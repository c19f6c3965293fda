package checker

import (
	"os"
	"sync/atomic"
	"testing"

	"github.com/kalaja/kalaja/internal/index"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/local"
)

// TestPackListedTwice: a pack two index files list (as after a prune whose
// old index file was retained) is checked once, and a missing one is
// reported once.
func TestPackListedTwice(t *testing.T) {
	for _, missing := range []bool{false, true} {
		fx := newFixture(t)
		ctx := t.Context()
		id := fx.packs["a"]
		fi, err := os.Stat(fx.path(store.Packs, id))
		if err != nil {
			t.Fatal(err)
		}
		pk, err := fx.r.ReadPackHeader(ctx, id, fi.Size())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fx.r.SaveIndex(ctx, []index.Pack{pk}); err != nil {
			t.Fatal(err)
		}
		if missing {
			fx.remove(store.Packs, id)
		}
		st, err := local.Open(fx.dir)
		if err != nil {
			t.Fatal(err)
		}
		r, err := repo.Open(ctx, st, []byte("pw"))
		if err != nil {
			t.Fatal(err)
		}
		var checked atomic.Int32
		rep, err := Check(ctx, r, Options{OnPack: func() { checked.Add(1) }})
		if err != nil {
			t.Fatal(err)
		}
		want := rep.Packs
		if missing {
			want++
		}
		switch {
		case int(checked.Load()) != want:
			t.Errorf("missing %v: %d packs checked, want %d", missing, checked.Load(), want)
		case !missing && !rep.OK():
			t.Errorf("errors %q, damage %+v", rep.Errors, rep.Damaged)
		case missing && len(rep.Errors) != 1:
			t.Errorf("missing pack: errors %q, want one", rep.Errors)
		}
	}
}

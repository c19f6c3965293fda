package index

import "testing"

func TestBitmap(t *testing.T) {
	for _, n := range []int{0, 1, 63, 64, 65, 1000} {
		b, all := NewBitmap(n), NewBitmap(n)
		for i := range uint64(n) {
			all.Set(i)
			if i%3 == 0 {
				b.Set(i)
			}
		}
		want := (n + 2) / 3
		if b.Count() != want || all.Count() != n {
			t.Errorf("n=%d: counts %d, %d; want %d, %d", n, b.Count(), all.Count(), want, n)
		}
		for i := range uint64(n) {
			if b.Has(i) != (i%3 == 0) || !all.Has(i) {
				t.Fatalf("n=%d: member %d wrong", n, i)
			}
		}
		if !b.Within(all) || (n > 1 && all.Within(b)) {
			t.Errorf("n=%d: Within wrong", n)
		}
	}
}

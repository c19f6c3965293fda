package health

import (
	"github.com/kalaja/kalaja/internal/detect"
	"github.com/kalaja/kalaja/internal/snapshot"
)

// event is what happened to a file since the parent snapshot.
type event uint8

const (
	addedFile event = iota
	changed
	deletedFile
	renamed
)

// Damage bits: what a changed file's new content says of it.
const (
	lostBit      uint8 = 1 << iota // lost its format
	highBit                        // turned high-entropy
	zeroedBit                      // became all zeros
	truncatedBit                   // lost (almost) all its bytes
)

// truncatedSize is the smallest old size at which shrinking below a
// tenth counts as truncation (short of shrinking to nothing).
const truncatedSize = 64 << 10

// tally is the running statistics of a backup, or of one folder.
type tally struct {
	files, bytes                                         snapshot.Counts
	kinds                                                [numKinds]snapshot.KindStats
	parentFiles, deletions                               int64 // outside version-control stores, of files whose loss loses data (valuable)
	lost, high, zeroed, truncated, damaged, damagedBytes int64
}

// bump adds n to c's count of ev.
func bump(c *snapshot.Counts, ev event, n int64) {
	switch ev {
	case addedFile:
		c.Added += n
	case changed:
		c.Changed += n
	case deletedFile:
		c.Deleted += n
	case renamed:
		c.Renamed += n
	}
}

// count counts a file of size bytes for ev, as of the kind of name.
func (t *tally) count(ev event, name string, size int64) {
	k := &t.kinds[KindOf(name)]
	bump(&t.files, ev, 1)
	bump(&t.bytes, ev, size)
	bump(&k.Files, ev, 1)
	bump(&k.Bytes, ev, size)
}

// add adds u's counts to t's.
func (t *tally) add(u *tally) {
	addCounts(&t.files, &u.files)
	addCounts(&t.bytes, &u.bytes)
	for i := range t.kinds {
		addCounts(&t.kinds[i].Files, &u.kinds[i].Files)
		addCounts(&t.kinds[i].Bytes, &u.kinds[i].Bytes)
		t.kinds[i].Damaged += u.kinds[i].Damaged
	}
	t.parentFiles += u.parentFiles
	t.deletions += u.deletions
	t.lost += u.lost
	t.high += u.high
	t.zeroed += u.zeroed
	t.truncated += u.truncated
	t.damaged += u.damaged
	t.damagedBytes += u.damagedBytes
}

func addCounts(c, d *snapshot.Counts) {
	c.Added += d.Added
	c.Changed += d.Changed
	c.Deleted += d.Deleted
	c.Renamed += d.Renamed
	c.Unchanged += d.Unchanged
}

// priorFormat is the format old had: its fingerprint, or what its name
// promises ("" if nothing).
func priorFormat(old *file) string {
	if old.format != "" {
		return old.format
	}
	return string(detect.Expected(detect.Ext(old.name)))
}

// damageOf judges the change of a file from old to cur (whose content
// differs) and returns its damage bits.
func damageOf(old, cur *file) uint8 {
	prior := priorFormat(old)
	var bits uint8
	if recognised(prior) && (cur.format == FormatUnknown || cur.format == formatEncoded || cur.format == formatZero) {
		bits |= lostBit
	}
	// Without a fingerprint, only text is known not to be compressed or
	// encrypted by design.
	low := old.format != "" && !old.high || old.format == "" && prior == formatText
	if low && cur.high && cur.format == FormatUnknown {
		bits |= highBit
	}
	if cur.format == formatZero && old.size > 0 && old.format != formatZero {
		bits |= zeroedBit
	}
	if old.size > 0 && (cur.size == 0 || old.size >= truncatedSize && cur.size*10 < old.size) {
		bits |= truncatedBit
	}
	return bits
}

// judge counts the damage of a change from old to cur, except a
// truncation alone, which may be routine (see Accumulator.excused): then
// it reports true and counts nothing.
func (t *tally) judge(old, cur *file) (truncatedOnly bool) {
	bits := damageOf(old, cur)
	if bits == truncatedBit {
		return true
	}
	t.damage(old, cur, bits)
	return false
}

// damage counts a damaged file, by the kind of its old name.
func (t *tally) damage(old, cur *file, bits uint8) {
	if bits == 0 {
		return
	}
	for _, c := range []struct {
		bit uint8
		n   *int64
	}{{lostBit, &t.lost}, {highBit, &t.high}, {zeroedBit, &t.zeroed}, {truncatedBit, &t.truncated}} {
		if bits&c.bit != 0 {
			*c.n++
		}
	}
	t.damaged++
	t.damagedBytes += old.size
	t.kinds[KindOf(old.name)].Damaged++
}

// stats returns the counts as snapshot statistics, without the lists.
func (t *tally) stats() snapshot.Stats {
	st := snapshot.Stats{
		Files: t.files, Bytes: t.bytes, ParentFiles: t.parentFiles, Deletions: t.deletions,
		LostFormat: t.lost, HighEntropy: t.high, Zeroed: t.zeroed, Truncated: t.truncated,
		Damaged: t.damaged, DamagedBytes: t.damagedBytes,
	}
	for k, ks := range t.kinds {
		if ks != (snapshot.KindStats{}) {
			if st.Kinds == nil {
				st.Kinds = map[string]snapshot.KindStats{}
			}
			st.Kinds[Kind(k).String()] = ks
		}
	}
	return st
}

package health

import (
	"cmp"
	"math"
	"slices"

	"github.com/kalaja/kalaja/internal/snapshot"
)

// Floors are the thresholds of the signals with an empty baseline, and
// the least they can be with any.
var Floors = snapshot.Thresholds{
	DamagedFiles: 3,
	DamagedBytes: 16 << 20,
	DeletedFiles: 20,
	NewExtension: 10,
	RansomNotes:  3,
}

// minExtDirs is the fewest folders a new extension must be in to count.
const minExtDirs = 2

// judge sets h's status and reasons from its statistics, with thresholds
// of twice the largest value of each signal among the clean records of
// baseline, and no less than Floors; it records them in h.Stats.Baseline.
func judge(h *snapshot.Health, baseline []*snapshot.Health) {
	th := Floors
	n := 0
	for _, b := range baseline {
		if b == nil || b.Status != snapshot.Clean {
			continue
		}
		n++
		v := values(&b.Stats)
		th.DamagedFiles = max(th.DamagedFiles, twice(v.DamagedFiles))
		th.DamagedBytes = max(th.DamagedBytes, twice(v.DamagedBytes))
		th.DeletedFiles = max(th.DeletedFiles, twice(v.DeletedFiles))
		th.NewExtension = max(th.NewExtension, twice(v.NewExtension))
		th.RansomNotes = max(th.RansomNotes, twice(v.RansomNotes))
	}
	st := &h.Stats
	st.Baseline = snapshot.Baseline{Snapshots: n, Thresholds: th}
	v := values(st)
	h.Status, h.Reasons = snapshot.Clean, nil
	for _, r := range []struct {
		s         snapshot.Signal
		v, t      int64
		condition bool
	}{
		{snapshot.DamagedFiles, v.DamagedFiles, th.DamagedFiles, true},
		{snapshot.DamagedBytes, v.DamagedBytes, th.DamagedBytes, true},
		{snapshot.DeletedFiles, v.DeletedFiles, th.DeletedFiles, 2*v.DeletedFiles >= st.ParentFiles},
		{snapshot.NewExtension, v.NewExtension, th.NewExtension, true},
		{snapshot.RansomNotes, v.RansomNotes, th.RansomNotes, true},
	} {
		if r.v >= r.t && r.condition {
			h.Status = snapshot.Suspect
			h.Reasons = append(h.Reasons, snapshot.Reason{Signal: r.s, Value: r.v, Threshold: r.t})
		}
	}
}

// values returns the value of each signal in st: damaged files and bytes,
// deleted files outside version-control stores, the files of the largest new extension in at least
// minExtDirs folders, and the folders of the most widespread note.
func values(st *snapshot.Stats) snapshot.Thresholds {
	v := snapshot.Thresholds{DamagedFiles: st.Damaged, DamagedBytes: st.DamagedBytes, DeletedFiles: st.Deletions}
	for _, e := range st.NewExtensions {
		if e.Dirs >= minExtDirs {
			v.NewExtension = max(v.NewExtension, e.Files)
		}
	}
	for _, n := range st.Notes {
		v.RansomNotes = max(v.RansomNotes, n.Dirs)
	}
	return v
}

// twice is 2n, saturating.
func twice(n int64) int64 {
	if n > math.MaxInt64/2 {
		return math.MaxInt64
	}
	return 2 * n
}

// extStat counts the files and folders of one new extension.
type extStat struct {
	files int64
	dirs  map[string]bool
}

// add counts a file in dir; a nil s starts a new count.
func (s *extStat) add(dir string) *extStat {
	if s == nil {
		s = &extStat{dirs: map[string]bool{}}
	}
	s.files++
	s.dirs[dir] = true
	return s
}

// topExtensions lists the largest new extensions, by files, at most
// snapshot.MaxNewExtensions.
func topExtensions(m map[string]*extStat) []snapshot.Extension {
	var out []snapshot.Extension
	for e, s := range m {
		out = append(out, snapshot.Extension{Ext: e, Files: s.files, Dirs: int64(len(s.dirs))})
	}
	slices.SortFunc(out, func(a, b snapshot.Extension) int {
		return cmp.Or(cmp.Compare(b.Files, a.Files), cmp.Compare(b.Dirs, a.Dirs), cmp.Compare(a.Ext, b.Ext))
	})
	return out[:min(len(out), snapshot.MaxNewExtensions)]
}

// noteKey is what makes files the same note: their name and content. A
// ransom note has one name in every folder; files of the same content
// under different names in a few folders (templates, stubs) are common.
type noteKey struct {
	name    string
	content contentKey
}

// noteStat is one candidate ransom note and the folders it was added to.
type noteStat struct {
	name string
	size int64
	dirs map[string]bool
}

// topNotes lists the candidate notes in two folders or more, the most
// widespread first, at most snapshot.MaxNotes.
func topNotes(m map[noteKey]*noteStat) []snapshot.Note {
	var out []snapshot.Note
	for _, s := range m {
		if len(s.dirs) >= 2 {
			out = append(out, snapshot.Note{Name: snapshot.Name(s.name), Size: s.size, Dirs: int64(len(s.dirs))})
		}
	}
	slices.SortFunc(out, func(a, b snapshot.Note) int {
		return cmp.Or(cmp.Compare(b.Dirs, a.Dirs), cmp.Compare(a.Size, b.Size), cmp.Compare(a.Name, b.Name))
	})
	return out[:min(len(out), snapshot.MaxNotes)]
}

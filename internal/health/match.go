package health

import (
	"strings"

	"github.com/kalaja/kalaja/internal/blob"
)

// contentKey identifies a file's content: its size and content blob IDs
// (the first and last stand for the list, which blob IDs, hashes of the
// content, make unambiguous in practice; sameContent confirms).
type contentKey struct {
	size        int64
	n           int
	first, last blob.ID
}

func keyOf(f *file) contentKey {
	k := contentKey{size: f.size, n: len(f.content)}
	if len(f.content) > 0 {
		k.first, k.last = f.content[0], f.content[len(f.content)-1]
	}
	return k
}

// matchRenames pairs deleted and added files that are the same file
// renamed or moved, marks them matched and returns the pairs (deleted,
// added). In order of precedence, a deleted and an added file are the
// same file when
//   - their (device, inode) match and so does their content, or their
//     names are related (see related): an inode freed by a deletion and
//     reused by an unrelated new file elsewhere is not a rename;
//   - their size and content blob IDs match (not for empty files);
//   - they are in the same folder and the added file is named the
//     deleted one's name, a '.' and more ("report.docx.locked"): a new
//     file that replaced the old one, as ransomware that writes a new
//     file and unlinks the old does, and as gzip does.
//
// Both lists must be sorted by path, so that ties go the same way in
// every backup.
func matchRenames(deleted, added []*file) [][2]*file {
	if len(deleted) == 0 || len(added) == 0 {
		return nil
	}
	var pairs [][2]*file
	pair := func(d, f *file) {
		d.matched, f.matched = true, true
		pairs = append(pairs, [2]*file{d, f})
	}
	byInode := map[[2]uint64][]*file{}
	for _, d := range deleted {
		if d.ino != 0 {
			k := [2]uint64{d.dev, d.ino}
			byInode[k] = append(byInode[k], d)
		}
	}
	for _, f := range added {
		if f.ino == 0 {
			continue
		}
		var best *file
		for _, d := range byInode[[2]uint64{f.dev, f.ino}] {
			if d.matched {
				continue
			}
			if sameContent(d, f) {
				best = d
				break
			}
			if best == nil && related(d, f) {
				best = d
			}
		}
		if best != nil {
			pair(best, f)
		}
	}
	byContent := map[contentKey][]*file{}
	for _, d := range deleted {
		if !d.matched && d.size > 0 {
			byContent[keyOf(d)] = append(byContent[keyOf(d)], d)
		}
	}
	for _, f := range added {
		if f.matched || f.size == 0 {
			continue
		}
		for _, d := range byContent[keyOf(f)] {
			if !d.matched && sameContent(d, f) {
				pair(d, f)
				break
			}
		}
	}
	byName := map[[2]string]*file{}
	for _, d := range deleted {
		if !d.matched {
			byName[[2]string{d.dir, d.name}] = d
		}
	}
	for _, f := range added {
		if f.matched {
			continue
		}
		for i := len(f.name) - 1; i > 0; i-- {
			if f.name[i] != '.' {
				continue
			}
			if d := byName[[2]string{f.dir, f.name[:i]}]; d != nil && !d.matched {
				pair(d, f)
				break
			}
		}
	}
	return pairs
}

// related reports whether the names of old and cur, which share an inode
// but not their content, say it was renamed rather than freed and reused:
// the same folder, the same name, or cur's name is old's with more after a
// dot.
func related(old, cur *file) bool {
	return old.dir == cur.dir || old.name == cur.name || strings.HasPrefix(cur.name, old.name+".")
}

// Package health judges a snapshot while its backup runs: from what the
// archiver reads anyway (each new or changed file's first block, and the
// trees of the snapshot and its parent), it counts what changed since the
// parent snapshot, how many changed files look damaged, which extensions
// are new and which small files appeared alike in many folders, and gives
// the verdict clean or suspect against fixed floors and the host's own
// earlier clean snapshots (docs/design.md, "Snapshot health"). It is pure:
// the only I/O is loading trees of the parent snapshot through the
// function the caller gives.
package health

import (
	"context"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/detect"
	"github.com/kalaja/kalaja/internal/snapshot"
)

// Formats of Node.Format with a meaning of their own; the others are
// detect's names of recognised formats ("zip", "pdf", "text", ...).
const (
	FormatUnknown = "unknown" // content detect does not recognise
	formatEncoded = string(detect.EncodedType)
	formatZero    = string(detect.ZeroType)
	formatEmpty   = string(detect.EmptyType)
	formatText    = string(detect.TextType)
)

// Fingerprint returns Node.Format and Node.High for a file of size bytes
// whose content starts with first (only the first detect.BlockSize bytes
// are looked at).
func Fingerprint(size int64, first []byte) (format string, high bool) {
	t, high := detect.Judge(size, first)
	if t == detect.Unknown {
		return FormatUnknown, high
	}
	return string(t), high
}

// recognised reports whether format names a format (rather than unknown,
// encoded, zero or empty content, or no fingerprint).
func recognised(format string) bool {
	switch format {
	case "", FormatUnknown, formatEncoded, formatZero, formatEmpty:
		return false
	}
	return true
}

// TreeLoader loads a tree of the parent snapshot.
type TreeLoader func(ctx context.Context, id blob.ID) (*snapshot.Tree, error)

// Dir is one finished directory of the new snapshot.
type Dir struct {
	Path   string          // absolute path
	Parent *snapshot.Tree  // the same directory in the parent snapshot, or nil
	Nodes  []snapshot.Node // the new nodes, final, sorted by name
	// Skipped names entries left out of this backup (unreadable or
	// excluded): if Parent has them they are neither deleted nor judged.
	Skipped []string
	// Partial is set when the directory could not be listed completely:
	// nothing Parent has is then taken for deleted.
	Partial bool
}

// Accumulator collects the directories of one backup and judges the
// snapshot at the end. Its methods are safe for concurrent use.
type Accumulator struct {
	load      TreeLoader
	hasParent bool

	mu        sync.Mutex
	t         tally
	added     []*file
	deleted   []*file
	truncated [][2]*file      // changed files only truncated: old and new, judged at the end
	touched   map[string]bool // folders in which an existing file changed or went away
}

// New returns an accumulator for a backup against a parent snapshot
// (hasParent) whose deleted folders it may load with load, or against
// none.
func New(hasParent bool, load TreeLoader) *Accumulator {
	return &Accumulator{load: load, hasParent: hasParent, touched: map[string]bool{}}
}

// file is what the accumulator keeps of a file added, deleted or changed.
type file struct {
	dir      string
	name     string
	size     int64
	content  []blob.ID
	format   string
	high     bool
	dev, ino uint64
	// Of added files:
	parentDir bool // the folder existed in the parent snapshot
	newExt    bool // the extension is new to the folder (see markNewExt)
	matched   bool // paired with a deleted file as a rename
}

func fileOf(dir string, n *snapshot.Node) *file {
	return &file{dir: dir, name: string(n.Name), size: int64(n.Size), content: n.Content, format: n.Format, high: n.High, dev: n.Device, ino: n.Inode}
}

func sameContent(a, b *file) bool { return a.size == b.size && slices.Equal(a.content, b.content) }

// Add records one finished directory. It loads the parent's subtrees of
// folders that are gone, to count the files in them; a subtree that
// cannot be loaded is not counted.
func (a *Accumulator) Add(ctx context.Context, d Dir) {
	var (
		t       = new(tally) // large: on the heap, not on a new goroutine's small stack
		added   []*file
		deleted []*file
		trunc   [][2]*file
		touched bool
		parent  []snapshot.Node
	)
	if d.Parent != nil {
		parent = d.Parent.Nodes
	}
	vcs := inVCS(d.Path)
	gone := func(p *snapshot.Node) {
		if d.Partial || slices.Contains(d.Skipped, string(p.Name)) {
			return
		}
		touched = true
		switch {
		case p.Kind == snapshot.File:
			deleted = append(deleted, fileOf(d.Path, p))
		case p.Kind == snapshot.Dir && p.Subtree != nil:
			deleted = a.deletedTree(ctx, path.Join(d.Path, string(p.Name)), *p.Subtree, deleted, t)
		}
	}
	for i, j := 0, 0; i < len(d.Nodes) || j < len(parent); {
		var n, p *snapshot.Node
		switch {
		case j == len(parent) || i < len(d.Nodes) && d.Nodes[i].Name < parent[j].Name:
			n = &d.Nodes[i]
			i++
		case i == len(d.Nodes) || parent[j].Name < d.Nodes[i].Name:
			p = &parent[j]
			j++
		default:
			n, p = &d.Nodes[i], &parent[j]
			i++
			j++
		}
		if p != nil && p.Kind == snapshot.File && !vcs && valuable(fileOf(d.Path, p)) {
			t.parentFiles++
		}
		switch {
		case n != nil && p != nil && n.Kind == snapshot.File && p.Kind == snapshot.File:
			if n.Size == p.Size && slices.Equal(n.Content, p.Content) {
				t.files.Unchanged++
				t.bytes.Unchanged += int64(n.Size)
				continue
			}
			old, cur := fileOf(d.Path, p), fileOf(d.Path, n)
			touched = true
			t.count(changed, cur.name, cur.size)
			if t.judge(old, cur) {
				trunc = append(trunc, [2]*file{old, cur})
			}
		case n != nil && p != nil && n.Kind == p.Kind: // two folders (each reports itself) or two special files
		default:
			if p != nil {
				gone(p)
			}
			switch {
			case n == nil || n.Kind != snapshot.File:
			case !a.hasParent: // a first backup: nothing to match the file with
				t.count(addedFile, string(n.Name), int64(n.Size))
			default:
				f := fileOf(d.Path, n)
				f.parentDir = d.Parent != nil
				added = append(added, f)
			}
		}
	}
	markNewExt(d.Parent, added)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.t.add(t)
	a.added = append(a.added, added...)
	a.deleted = append(a.deleted, deleted...)
	a.truncated = append(a.truncated, trunc...)
	if touched {
		a.touched[d.Path] = true
	}
}

// deletedTree appends every file below the parent's folder dir (tree id)
// to list as deleted and counts them as the parent's files.
func (a *Accumulator) deletedTree(ctx context.Context, dir string, id blob.ID, list []*file, t *tally) []*file {
	if a.load == nil {
		return list
	}
	tree, err := a.load(ctx, id)
	if err != nil {
		return list
	}
	vcs := inVCS(dir)
	for i := range tree.Nodes {
		n := &tree.Nodes[i]
		switch {
		case n.Kind == snapshot.File:
			f := fileOf(dir, n)
			if !vcs && valuable(f) {
				t.parentFiles++
			}
			list = append(list, f)
		case n.Kind == snapshot.Dir && n.Subtree != nil:
			list = a.deletedTree(ctx, path.Join(dir, string(n.Name)), *n.Subtree, list, t)
		}
	}
	return list
}

// valuable reports whether losing f loses a user's data, by the watcher's
// rule (detect.Valuable): not a log, a rotated generation or a temporary
// file, nor text under a name of no known extension (mail, session and
// spool files that servers expire every day).
func valuable(f *file) bool {
	t := detect.Type(f.format)
	if f.format == FormatUnknown {
		t = detect.Unknown
	}
	return detect.Valuable(path.Join(f.dir, f.name), t, f.format != "")
}

// inVCS reports whether the folder dir is inside the store of a version
// control system (.git, .hg, .svn, .bzr), whose own maintenance (git gc,
// repack) deletes thousands of files by design: deletions there are not
// judged.
func inVCS(dir string) bool {
	for rest := dir; rest != ""; {
		var part string
		part, rest, _ = strings.Cut(rest, "/")
		switch part {
		case ".git", ".hg", ".svn", ".bzr":
			return true
		}
	}
	return false
}

// newExtension reports whether e (as detect.Ext returns it) can be a
// ransomware's extension: 1 to 16 lower-case letters, digits or '_', not
// a number (log rotation), not one detect knows. Backup markers ("~"),
// date stamps ("log-20240501") and other punctuation do not qualify.
func newExtension(e string) bool {
	if e == "" || len(e) > 16 || detect.Known(e) {
		return false
	}
	letter := false
	for i := 0; i < len(e); i++ {
		switch c := e[i]; {
		case c >= 'a' && c <= 'z':
			letter = true
		case c >= '0' && c <= '9' || c == '_':
		default:
			return false
		}
	}
	return letter
}

// markNewExt sets newExt on the added files whose extension qualifies and
// that no file of the parent's folder had.
func markNewExt(parent *snapshot.Tree, added []*file) {
	var had map[string]bool
	for _, f := range added {
		e := detect.Ext(f.name)
		if !newExtension(e) {
			continue
		}
		if had == nil && parent != nil {
			had = map[string]bool{}
			for _, n := range parent.Nodes {
				had[detect.Ext(string(n.Name))] = true
			}
		}
		f.newExt = !had[e]
	}
}

// Finish matches renames across the snapshot, finishes the statistics
// and gives the verdict against baseline: the health records of the
// host's earlier snapshots of the same paths (records that are not clean
// are ignored). Call it once, after the last Add.
func (a *Accumulator) Finish(baseline []*snapshot.Health) *snapshot.Health {
	a.mu.Lock()
	defer a.mu.Unlock()
	t := &a.t
	byPath := func(x, y *file) int {
		if c := strings.Compare(x.dir, y.dir); c != 0 {
			return c
		}
		return strings.Compare(x.name, y.name)
	}
	slices.SortFunc(a.added, byPath)
	slices.SortFunc(a.deleted, byPath)
	exts := map[string]*extStat{}
	for _, p := range matchRenames(a.deleted, a.added) {
		old, cur := p[0], p[1]
		t.count(renamed, old.name, cur.size) // as what it was
		if !sameContent(old, cur) && t.judge(old, cur) {
			a.truncated = append(a.truncated, p)
		}
		if cur.newExt && detect.Ext(cur.name) != detect.Ext(old.name) {
			exts[detect.Ext(cur.name)] = exts[detect.Ext(cur.name)].add(cur.dir)
		}
	}
	for _, f := range a.deleted {
		if !f.matched {
			t.count(deletedFile, f.name, f.size)
			if !inVCS(f.dir) && valuable(f) {
				t.deletions++
			}
		}
	}
	notes := map[noteKey]*noteStat{}
	for _, f := range a.added {
		if f.matched {
			continue
		}
		t.count(addedFile, f.name, f.size)
		if !f.parentDir || !a.touched[f.dir] {
			continue
		}
		// A new file counts for its new extension only if its content is
		// opaque, as encrypted output is: package upgrades bring new
		// extensions of text (".mjs", ".pyi") into folders they clean up.
		if f.newExt && (f.format == FormatUnknown || f.format == formatEncoded) {
			exts[detect.Ext(f.name)] = exts[detect.Ext(f.name)].add(f.dir)
		}
		if f.size >= 1 && f.size <= maxNoteSize {
			k := noteKey{f.name, keyOf(f)}
			if notes[k] == nil {
				notes[k] = &noteStat{name: f.name, size: f.size, dirs: map[string]bool{}}
			}
			notes[k].dirs[f.dir] = true
		}
	}
	for _, p := range a.truncated {
		if !a.excused(p[0]) {
			t.damage(p[0], p[1], truncatedBit)
		}
	}
	st := t.stats()
	st.NewExtensions = topExtensions(exts)
	st.Notes = topNotes(notes)
	h := &snapshot.Health{Version: snapshot.HealthVersion, Stats: st}
	judge(h, baseline)
	return h
}

// maxNoteSize is the largest file taken for a ransom note.
const maxNoteSize = 64 << 10

// excused reports whether the truncation of old is routine: old was a
// text log ("*.log", "*.out"), emptied by the program writing it or by
// hand, or it left a rotated copy of itself: a file added in its folder
// named old's name and a '.' or '-' and more ("app.log.1",
// "app.log-20240501.gz"), of a recognised format (text or compressed), as
// logrotate's copytruncate makes.
func (a *Accumulator) excused(old *file) bool {
	if e := detect.Ext(old.name); (e == "log" || e == "out") && priorFormat(old) == formatText {
		return true
	}
	i, _ := slices.BinarySearchFunc(a.added, old.dir, func(f *file, dir string) int { return strings.Compare(f.dir, dir) })
	for ; i < len(a.added) && a.added[i].dir == old.dir; i++ {
		f := a.added[i]
		if len(f.name) > len(old.name)+1 && strings.HasPrefix(f.name, old.name) && strings.ContainsRune(".-", rune(f.name[len(old.name)])) &&
			recognised(f.format) {
			return true
		}
	}
	return false
}

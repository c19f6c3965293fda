package health

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"path"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/snapshot"
)

// world is a file system as a backup sees it: files by absolute path,
// each with an inode.
type world struct {
	files map[string]wfile
	next  uint64 // next inode
}

type wfile struct {
	data []byte
	ino  uint64
	id   blob.ID // of data
	fmt  string  // Fingerprint of data
	high bool
}

func newFile(data []byte, ino uint64) wfile {
	f := wfile{data: data, ino: ino, id: blob.Hash(data)}
	f.fmt, f.high = Fingerprint(int64(len(data)), data)
	return f
}

func newWorld() *world { return &world{files: map[string]wfile{}, next: 100} }

func (w *world) clone() *world {
	c := &world{files: map[string]wfile{}, next: w.next}
	for p, f := range w.files {
		c.files[p] = f
	}
	return c
}

// create writes a new file (a new inode), replacing any at p.
func (w *world) create(p string, data []byte) {
	w.next++
	w.files[p] = newFile(data, w.next)
}

// write rewrites p in place (same inode).
func (w *world) write(p string, data []byte) {
	f, ok := w.files[p]
	if !ok {
		panic("write " + p + ": no such file")
	}
	w.files[p] = newFile(data, f.ino)
}

// rename moves a file or a folder (everything below old) to new.
func (w *world) rename(old, new string) {
	for p, f := range w.files {
		if p == old || strings.HasPrefix(p, old+"/") {
			delete(w.files, p)
			w.files[new+strings.TrimPrefix(p, old)] = f
		}
	}
}

func (w *world) remove(p string) { delete(w.files, p) }

// under lists the files below dir, sorted.
func (w *world) under(dir string) []string {
	var out []string
	for p := range w.files {
		if strings.HasPrefix(p, dir+"/") {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// snapshot returns the root tree of w, storing every tree in trees.
func (w *world) snapshot(trees map[blob.ID]*snapshot.Tree) *snapshot.Tree {
	var build func(dir string) *snapshot.Tree
	build = func(dir string) *snapshot.Tree {
		t := &snapshot.Tree{}
		subdirs := map[string]bool{}
		for p, f := range w.files {
			rest, ok := strings.CutPrefix(p, strings.TrimSuffix(dir, "/")+"/")
			if !ok {
				continue
			}
			if name, _, isDir := strings.Cut(rest, "/"); isDir {
				subdirs[name] = true
				continue
			}
			n := snapshot.Node{Name: snapshot.Name(rest), Kind: snapshot.File, Size: uint64(len(f.data)), Inode: f.ino, Device: 1, Format: f.fmt, High: f.high}
			if len(f.data) > 0 {
				n.Content = []blob.ID{f.id}
			}
			t.Nodes = append(t.Nodes, n)
		}
		for name := range subdirs {
			sub := build(path.Join(dir, name))
			b, _ := sub.Encode()
			id := blob.Hash(b)
			trees[id] = sub
			t.Nodes = append(t.Nodes, snapshot.Node{Name: snapshot.Name(name), Kind: snapshot.Dir, Subtree: &id})
		}
		t.Sort()
		return t
	}
	return build("/")
}

// backup judges cur against parent (nil for none) as the archiver feeds
// the accumulator: every folder of cur, deepest first, with the parent's
// same folder.
func backup(t *testing.T, parent, cur *world, baseline ...*snapshot.Health) *snapshot.Health {
	t.Helper()
	trees := map[blob.ID]*snapshot.Tree{}
	var ptree *snapshot.Tree
	if parent != nil {
		ptree = parent.snapshot(trees)
	}
	ctree := cur.snapshot(trees)
	load := func(_ context.Context, id blob.ID) (*snapshot.Tree, error) {
		if tr, ok := trees[id]; ok {
			return tr, nil
		}
		return nil, fmt.Errorf("tree %s: %w", id.Short(), blob.ErrNotFound)
	}
	acc := New(parent != nil, load)
	var walk func(p string, cur, par *snapshot.Tree)
	walk = func(p string, cur, par *snapshot.Tree) {
		for _, n := range cur.Nodes {
			if n.Kind != snapshot.Dir {
				continue
			}
			var psub *snapshot.Tree
			if par != nil {
				if pn := par.Find(string(n.Name)); pn != nil && pn.Kind == snapshot.Dir {
					psub = trees[*pn.Subtree]
				}
			}
			walk(path.Join(p, string(n.Name)), trees[*n.Subtree], psub)
		}
		acc.Add(context.Background(), Dir{Path: p, Parent: par, Nodes: cur.Nodes})
	}
	walk("/", ctree, ptree)
	h := acc.Finish(baseline)
	// What the snapshot stores must decode.
	sn := &snapshot.Snapshot{Tree: blob.Hash(nil), Health: h}
	b, err := sn.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snapshot.Decode(b); err != nil {
		t.Fatalf("the health record does not decode: %v\n%s", err, b)
	}
	return h
}

// Content of realistic shapes.
var words = strings.Fields("the council approved budget for water works report ministry office register archive decision contract payment invoice tender staff project meeting minutes")

func prose(r *mrand.Rand, n int) []byte {
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		if r.IntN(12) == 0 {
			b.WriteString(".\n")
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

// randomBytes is the source of random content: seeded, so that every run
// judges the same bytes (about 1 in 1000 random blocks looks like zlib or
// another format with a short magic number).
var randomBytes = mrand.NewChaCha8([32]byte{'h', 'e', 'a', 'l', 't', 'h'})

func random(n int) []byte {
	b := make([]byte, n)
	randomBytes.Read(b)
	return b
}

// docx is a zip-like document: a local file header, then deflated-looking
// bytes.
func docx(n int) []byte { return append([]byte("PK\x03\x04\x14\x00\x06\x00"), random(n-8)...) }

func jpeg(n int) []byte { return append([]byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00"), random(n-11)...) }

// records is an application's binary file: fixed-size records of small
// integers and flags, neither text nor random.
func records(r *mrand.Rand, n int) []byte {
	b := make([]byte, 0, n)
	for len(b) < n {
		b = append(b, 0, 0, 0, byte(r.IntN(8)), 1, byte(r.IntN(200)), 0, 0xff)
	}
	return b[:n]
}

func gz(b []byte) []byte {
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestSpeed)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

// office is a host's folders: reports, pictures, notes and source code in
// nested folders, 120 files.
func office() *world {
	r := mrand.New(mrand.NewPCG(1, 2))
	w := newWorld()
	for i := range 30 {
		w.create(fmt.Sprintf("/home/u/Documents/Reports/%d/report-%02d.docx", i%3, i), docx(5000+r.IntN(50000)))
		w.create(fmt.Sprintf("/home/u/Pictures/%d/IMG_%04d.jpg", i%2, i), jpeg(20000+r.IntN(80000)))
		w.create(fmt.Sprintf("/home/u/Notes/note-%02d.txt", i), prose(r, 500+r.IntN(20000)))
		w.create(fmt.Sprintf("/home/u/src/pkg%d/file%02d.go", i%4, i), append([]byte("package main\n\n"), prose(r, 1000+r.IntN(8000))...))
	}
	return w
}

// docs lists the reports of an office world.
func docs(w *world) []string { return w.under("/home/u/Documents") }

func reasons(h *snapshot.Health) []snapshot.Signal {
	var s []snapshot.Signal
	for _, r := range h.Reasons {
		s = append(s, r.Signal)
	}
	return s
}

// valuableFiles are the files of TestSignals' world outside the .git
// store whose loss loses data (detect.Valuable): all 137 but app.log and
// the twelve access logs.
const valuableFiles = 137 - 13

func TestSignals(t *testing.T) {
	r := mrand.New(mrand.NewPCG(3, 4))
	tests := []struct {
		name   string
		change func(w *world)
		want   []snapshot.Signal // nil: clean
		check  func(t *testing.T, st *snapshot.Stats)
	}{
		{"nothing", func(w *world) {}, nil, func(t *testing.T, st *snapshot.Stats) {
			if st.ParentFiles != valuableFiles || st.Files != (snapshot.Counts{Unchanged: 437}) {
				t.Errorf("files %+v of %d", st.Files, st.ParentFiles)
			}
		}},
		{"encrypted in place", func(w *world) {
			for _, p := range docs(w)[:5] {
				w.write(p, random(len(w.files[p].data)+272))
			}
		}, []snapshot.Signal{snapshot.DamagedFiles}, func(t *testing.T, st *snapshot.Stats) {
			if st.Damaged != 5 || st.LostFormat != 5 || st.Kinds["document"].Damaged != 5 || st.Files.Changed != 5 {
				t.Errorf("%+v", st)
			}
		}},
		{"two encrypted", func(w *world) {
			for _, p := range docs(w)[:2] {
				w.write(p, random(len(w.files[p].data)))
			}
		}, nil, nil},
		{"text edited (3%)", func(w *world) {
			for _, p := range w.under("/home/u/Notes")[:4] {
				w.write(p, append(w.files[p].data, prose(r, 300)...))
			}
		}, nil, func(t *testing.T, st *snapshot.Stats) {
			if st.Files.Changed != 4 || st.Damaged != 0 {
				t.Errorf("%+v", st)
			}
		}},
		{"text encoded as base64", func(w *world) {
			for _, p := range w.under("/home/u/Notes")[:4] {
				enc := base64.StdEncoding.EncodeToString(random(len(w.files[p].data)))
				w.write(p, []byte(enc))
			}
		}, []snapshot.Signal{snapshot.DamagedFiles}, func(t *testing.T, st *snapshot.Stats) {
			if st.LostFormat != 4 {
				t.Errorf("%+v", st)
			}
		}},
		{"unknown binary turned random", func(w *world) {
			for _, p := range w.under("/home/u/data") {
				w.write(p, random(len(w.files[p].data)))
			}
		}, []snapshot.Signal{snapshot.DamagedFiles}, func(t *testing.T, st *snapshot.Stats) {
			if st.HighEntropy != 3 || st.LostFormat != 0 {
				t.Errorf("%+v", st)
			}
		}},
		{"unknown binary rewritten", func(w *world) {
			for _, p := range w.under("/home/u/data") {
				w.write(p, records(r, len(w.files[p].data)))
			}
		}, nil, nil},
		{"zeroed", func(w *world) {
			for _, p := range w.under("/home/u/Pictures")[:3] {
				w.write(p, make([]byte, len(w.files[p].data)))
			}
		}, []snapshot.Signal{snapshot.DamagedFiles}, func(t *testing.T, st *snapshot.Stats) {
			if st.Zeroed != 3 || st.LostFormat != 3 {
				t.Errorf("%+v", st)
			}
		}},
		{"truncated", func(w *world) {
			for _, p := range w.under("/home/u/src")[:3] {
				w.write(p, nil)
			}
		}, []snapshot.Signal{snapshot.DamagedFiles}, func(t *testing.T, st *snapshot.Stats) {
			if st.Truncated != 3 {
				t.Errorf("%+v", st)
			}
		}},
		{"big database truncated", func(w *world) {
			w.write("/home/u/app/db.sqlite", []byte("SQLite format 3\x00"))
		}, []snapshot.Signal{snapshot.DamagedBytes}, nil},
		{"copytruncate of a big log", func(w *world) {
			w.create("/home/u/app/app.log.1", w.files["/home/u/app/app.log"].data)
			w.write("/home/u/app/app.log", nil)
		}, nil, nil},
		{"big log emptied", func(w *world) { w.write("/home/u/app/app.log", nil) }, nil, nil},
		{"copytruncate and gzip", func(w *world) {
			w.create("/home/u/app/app.log.1.gz", gz(w.files["/home/u/app/app.log"].data))
			w.write("/home/u/app/app.log", prose(r, 100))
		}, nil, nil},
		{"19 deleted", func(w *world) {
			for _, p := range w.under("/home/u/Pictures")[:19] {
				w.remove(p)
			}
		}, nil, func(t *testing.T, st *snapshot.Stats) {
			if st.Files.Deleted != 19 {
				t.Errorf("%+v", st.Files)
			}
		}},
		{"a tenth deleted", func(w *world) {
			for _, p := range w.under("/home/u/Notes")[:12] {
				w.remove(p)
			}
		}, nil, nil},
		{"everything deleted", func(w *world) {
			for p := range w.files {
				w.remove(p)
			}
		}, []snapshot.Signal{snapshot.DeletedFiles}, func(t *testing.T, st *snapshot.Stats) {
			if st.Files.Deleted != 437 || st.Deletions != valuableFiles || st.ParentFiles != valuableFiles {
				t.Errorf("%+v of %d", st.Files, st.ParentFiles)
			}
		}},
		{"folders deleted", func(w *world) {
			for _, d := range []string{"/home/u/Documents", "/home/u/Pictures", "/home/u/Notes"} {
				for _, p := range w.under(d) {
					w.remove(p)
				}
			}
		}, []snapshot.Signal{snapshot.DeletedFiles}, func(t *testing.T, st *snapshot.Stats) {
			if st.Files.Deleted != 90 || st.ParentFiles != valuableFiles {
				t.Errorf("%+v of %d", st.Files, st.ParentFiles)
			}
		}},
		{"folders deleted, fewer than half the files", func(w *world) {
			for _, d := range []string{"/home/u/Documents", "/home/u/Pictures"} {
				for _, p := range w.under(d) {
					w.remove(p)
				}
			}
		}, nil, nil},
		{"folder moved", func(w *world) {
			w.rename("/home/u/Documents", "/home/u/Archive/2024/Documents")
			w.rename("/home/u/Pictures/0", "/home/u/Archive/Pictures")
		}, nil, func(t *testing.T, st *snapshot.Stats) {
			if st.Files.Renamed != 45 || st.Files.Deleted != 0 || st.Files.Added != 0 {
				t.Errorf("%+v", st.Files)
			}
		}},
		{"copied elsewhere, originals deleted", func(w *world) {
			for _, p := range docs(w) {
				w.create("/home/u/Backup/"+path.Base(p), w.files[p].data)
				w.remove(p)
			}
		}, nil, func(t *testing.T, st *snapshot.Stats) {
			if st.Files.Renamed != 30 || st.Files.Deleted != 0 {
				t.Errorf("%+v", st.Files)
			}
		}},
		{"office saves", func(w *world) {
			for _, p := range docs(w)[:12] {
				w.create(p, docx(len(w.files[p].data)+300))
			}
		}, nil, func(t *testing.T, st *snapshot.Stats) {
			if st.Files.Changed != 12 {
				t.Errorf("%+v", st.Files)
			}
		}},
		{"text gzipped", func(w *world) {
			for _, p := range w.under("/home/u/Notes") {
				w.create(p+".gz", gz(w.files[p].data))
				w.remove(p)
			}
		}, nil, func(t *testing.T, st *snapshot.Stats) {
			if st.Files.Renamed != 30 || st.Damaged != 0 {
				t.Errorf("%+v", st)
			}
		}},
		{"encrypted to new files", func(w *world) {
			for _, p := range docs(w) {
				w.create(p+".locked", random(len(w.files[p].data)))
				w.remove(p)
			}
		}, []snapshot.Signal{snapshot.DamagedFiles, snapshot.NewExtension}, func(t *testing.T, st *snapshot.Stats) {
			if st.Files.Renamed != 30 || st.Damaged != 30 || len(st.NewExtensions) != 1 || st.NewExtensions[0] != (snapshot.Extension{Ext: "locked", Files: 30, Dirs: 3}) {
				t.Errorf("%+v", st)
			}
		}},
		{"renamed to a new extension", func(w *world) {
			for _, p := range w.under("/home/u/src") {
				w.rename(p, p+".xyz123")
			}
		}, []snapshot.Signal{snapshot.NewExtension}, nil},
		{"encrypted to new random names", func(w *world) {
			for i, p := range docs(w) {
				w.create(fmt.Sprintf("%s/%08x.qwerty", path.Dir(p), i*7919), random(len(w.files[p].data)))
				w.remove(p)
			}
		}, []snapshot.Signal{snapshot.NewExtension}, func(t *testing.T, st *snapshot.Stats) {
			if st.Files.Deleted != 30 || st.Files.Added != 30 || st.Damaged != 0 {
				t.Errorf("%+v", st)
			}
		}},
		{"package upgrade", func(w *world) {
			for _, d := range []string{"/home/u/src/pkg0", "/home/u/src/pkg1", "/home/u/src/pkg2"} {
				for i, p := range w.under(d) {
					w.remove(p)
					w.create(fmt.Sprintf("%s/index%d.mjs", d, i), prose(r, 3000))
				}
			}
		}, nil, func(t *testing.T, st *snapshot.Stats) {
			if st.Files.Added < 20 || len(st.NewExtensions) != 0 {
				t.Errorf("%+v %+v", st.Files, st.NewExtensions)
			}
		}},
		{"rotated with dates", func(w *world) {
			for i := range 12 {
				p := fmt.Sprintf("/var/log/app%d/access.log", i)
				w.rename(p, p+"-20240501")
				w.create(p, prose(r, 100))
			}
		}, nil, nil},
		{"backup copies", func(w *world) {
			for _, p := range w.under("/home/u/src") {
				w.rename(p, p+"~")
			}
		}, nil, nil},
		{"notes", func(w *world) {
			note := prose(r, 1200)
			for _, d := range []string{"/home/u/Notes", "/home/u/src/pkg0", "/home/u/src/pkg1"} {
				p := w.under(d)[0]
				w.write(p, append(w.files[p].data, '\n'))
				w.create(d+"/README-NOW.txt", note)
			}
		}, []snapshot.Signal{snapshot.RansomNotes}, func(t *testing.T, st *snapshot.Stats) {
			if len(st.Notes) != 1 || st.Notes[0] != (snapshot.Note{Name: "README-NOW.txt", Size: 1200, Dirs: 3}) {
				t.Errorf("%+v", st.Notes)
			}
		}},
		{"the same content under other names", func(w *world) {
			stub := prose(r, 300)
			for i, d := range []string{"/home/u/Notes", "/home/u/src/pkg0", "/home/u/src/pkg1"} {
				p := w.under(d)[0]
				w.write(p, append(w.files[p].data, '\n'))
				w.create(fmt.Sprintf("%s/stub%d.go", d, i), stub)
			}
		}, nil, nil},
		{"licenses in new folders", func(w *world) {
			license := prose(r, 1500)
			for i := range 50 {
				w.create(fmt.Sprintf("/home/u/src/vendor/lib%02d/LICENSE", i), license)
				w.create(fmt.Sprintf("/home/u/src/vendor/lib%02d/lib.go", i), prose(r, 2000))
			}
		}, nil, func(t *testing.T, st *snapshot.Stats) {
			if st.Files.Added != 100 || len(st.Notes) != 0 {
				t.Errorf("%+v %+v", st.Files, st.Notes)
			}
		}},
		{"the same file into untouched folders", func(w *world) {
			for _, d := range []string{"/home/u/Notes", "/home/u/src/pkg0", "/home/u/src/pkg1"} {
				w.create(d+"/.editorconfig", []byte("root = true\n"))
			}
		}, nil, nil},
		{"git gc", func(w *world) {
			for _, p := range w.under("/home/u/src/.git/objects") {
				w.remove(p)
			}
			w.create("/home/u/src/.git/objects/pack/pack-1.pack", append([]byte("PACK"), random(100000)...))
		}, nil, func(t *testing.T, st *snapshot.Stats) {
			if st.Files.Deleted != 300 || st.Deletions != 0 || st.ParentFiles != valuableFiles {
				t.Errorf("%+v, %d deletions of %d", st.Files, st.Deletions, st.ParentFiles)
			}
		}},
		{"git objects added", func(w *world) {
			for i := range 200 {
				w.create(fmt.Sprintf("/home/u/src/.git/objects/%02x/%038x", i%50, i), gz(prose(r, 500)))
			}
		}, nil, nil},
		{"inode reused by an unrelated file", func(w *world) {
			old := docs(w)[0]
			ino := w.files[old].ino
			w.remove(old)
			w.files["/home/u/cache/blob.bin"] = newFile(random(9000), ino)
		}, nil, func(t *testing.T, st *snapshot.Stats) {
			if st.Files.Deleted != 1 || st.Files.Added != 1 || st.Damaged != 0 {
				t.Errorf("%+v", st)
			}
		}},
	}
	before := office()
	big := prose(r, 20<<20)
	before.create("/home/u/app/db.sqlite", append([]byte("SQLite format 3\x00"), big...))
	before.create("/home/u/app/app.log", big)
	for i := range 12 {
		before.create(fmt.Sprintf("/var/log/app%d/access.log", i), prose(r, 1000))
	}
	for i := range 3 {
		before.create(fmt.Sprintf("/home/u/data/%d.dat", i), records(r, 30000))
	}
	for i := range 300 {
		before.create(fmt.Sprintf("/home/u/src/.git/objects/%02x/%038x", i%40, i), gz(prose(r, 300)))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			after := before.clone()
			tt.change(after)
			h := backup(t, before, after)
			if got := reasons(h); !slices.Equal(got, tt.want) {
				b, _ := json.MarshalIndent(h, "", " ")
				t.Fatalf("reasons %v, want %v\n%s", got, tt.want, b)
			}
			if (h.Status == snapshot.Suspect) != (tt.want != nil) {
				t.Fatalf("status %s with reasons %v", h.Status, h.Reasons)
			}
			if tt.check != nil {
				tt.check(t, &h.Stats)
			}
		})
	}
}

// TestFirstBackup: without a parent everything is added and nothing is
// judged, even content that would be damage.
func TestFirstBackup(t *testing.T) {
	w := office()
	for _, p := range docs(w) {
		w.write(p, random(1000))
	}
	h := backup(t, nil, w)
	if h.Status != snapshot.Clean || h.Stats.Files != (snapshot.Counts{Added: 120}) || h.Stats.ParentFiles != 0 {
		t.Fatalf("%+v", h)
	}
	if k := h.Stats.Kinds["image"]; k.Files.Added != 30 || k.Bytes.Added == 0 {
		t.Fatalf("kinds %+v", h.Stats.Kinds)
	}
}

// TestBaseline: thresholds are twice the largest value of the host's
// clean snapshots, never below the floors; suspect ones do not count.
func TestBaseline(t *testing.T) {
	day := func(damaged, deleted int64, ext int64) *snapshot.Health {
		st := snapshot.Stats{Damaged: damaged, DamagedBytes: damaged << 10, Files: snapshot.Counts{Deleted: deleted}, Deletions: deleted}
		if ext > 0 {
			st.NewExtensions = []snapshot.Extension{{Ext: "abc", Files: ext, Dirs: 2}, {Ext: "def", Files: 5 * ext, Dirs: 1}}
		}
		return &snapshot.Health{Status: snapshot.Clean, Stats: st}
	}
	bad := day(1000, 1000, 1000)
	bad.Status = snapshot.Suspect
	baseline := []*snapshot.Health{day(2, 0, 0), day(10, 30, 0), day(0, 5, 7), bad, nil}
	before := office()
	change := func(damage, del int) *world {
		w := before.clone()
		for i, p := range append(docs(w), w.under("/home/u/Pictures")...) {
			switch {
			case i < damage:
				w.write(p, random(len(w.files[p].data)))
			case i < damage+del:
				w.remove(p)
			}
		}
		return w
	}
	h := backup(t, before, change(19, 0), baseline...)
	want := snapshot.Thresholds{DamagedFiles: 20, DamagedBytes: 16 << 20, DeletedFiles: 60, NewExtension: 14, RansomNotes: 3}
	if h.Status != snapshot.Clean || h.Stats.Baseline != (snapshot.Baseline{Snapshots: 3, Thresholds: want}) {
		t.Fatalf("%s %+v", h.Status, h.Stats.Baseline)
	}
	if h := backup(t, before, change(20, 0), baseline...); !slices.Equal(reasons(h), []snapshot.Signal{snapshot.DamagedFiles}) {
		t.Fatalf("20 damaged: %v", h.Reasons)
	}
	if h := backup(t, before, change(0, 59), baseline...); h.Status != snapshot.Clean {
		t.Fatalf("59 deleted: %v", h.Reasons)
	}
	if h := backup(t, before, change(0, 60), baseline...); !slices.Equal(reasons(h), []snapshot.Signal{snapshot.DeletedFiles}) {
		t.Fatalf("60 deleted: %v", h.Reasons)
	}
	if h := backup(t, before, change(3, 0)); !slices.Equal(reasons(h), []snapshot.Signal{snapshot.DamagedFiles}) || h.Stats.Baseline.Snapshots != 0 {
		t.Fatalf("no baseline, 3 damaged: %v %+v", h.Reasons, h.Stats.Baseline)
	}
}

func TestKindOf(t *testing.T) {
	for name, want := range map[string]Kind{
		"report.DOCX": Document, "a.xlsx": Spreadsheet, "b.pptx": Presentation, "IMG_1.jpg": Image, "x.mp4": Media,
		"y.tar.gz": Archive, "z.sqlite": Database, "main.go": Code, "notes.txt": Text, "app.exe": Executable,
		"README": Other, "x.xyz123": Other, ".bashrc": Other,
	} {
		if got := KindOf(name); got != want {
			t.Errorf("KindOf(%q) = %s, want %s", name, got, want)
		}
	}
}

func TestNewExtension(t *testing.T) {
	for e, want := range map[string]bool{
		"xyz123": true, "locked": true, "ryk": true, "crypt_v2": true,
		"": false, "1": false, "2024": false, "docx": false, "gz": false, "txt~": false, "log-20240501": false,
		"abcdefghijklmnopq": false, "pdf ": false,
	} {
		if got := newExtension(e); got != want {
			t.Errorf("newExtension(%q) = %v", e, got)
		}
	}
}

// TestSkipped: entries left out of a backup (unreadable, excluded) and
// folders that could not be listed are not deletions.
func TestSkipped(t *testing.T) {
	var parent snapshot.Tree
	for i := range 40 {
		id := blob.Hash([]byte{byte(i)})
		parent.Nodes = append(parent.Nodes, snapshot.Node{Name: snapshot.Name(fmt.Sprintf("f%02d.txt", i)), Kind: snapshot.File, Size: 1, Content: []blob.ID{id}, Format: "text"})
	}
	for _, tt := range []struct {
		name    string
		dir     Dir
		deleted int64
	}{
		{"listed", Dir{Path: "/d", Parent: &parent, Nodes: parent.Nodes[:10]}, 30},
		{"partial", Dir{Path: "/d", Parent: &parent, Nodes: parent.Nodes[:10], Partial: true}, 0},
		{"skipped", Dir{Path: "/d", Parent: &parent, Nodes: parent.Nodes[:10], Skipped: []string{"f10.txt", "f39.txt"}}, 28},
	} {
		t.Run(tt.name, func(t *testing.T) {
			acc := New(true, nil)
			acc.Add(context.Background(), tt.dir)
			h := acc.Finish(nil)
			if h.Stats.Files.Deleted != tt.deleted || h.Stats.ParentFiles != 40 {
				t.Fatalf("%+v of %d", h.Stats.Files, h.Stats.ParentFiles)
			}
		})
	}
}

func TestInVCS(t *testing.T) {
	for dir, want := range map[string]bool{
		"/": false, "/home/u/src": false, "/home/u/src/.git": true, "/home/u/src/.git/objects/ab": true,
		"/home/u/.github/workflows": false, "/srv/.hg/store": true, "/a/.svn": true, "/a/.bzr/x": true, "/a/b.git": false,
	} {
		if got := inVCS(dir); got != want {
			t.Errorf("inVCS(%q) = %v", dir, got)
		}
	}
}

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// mutation counts the changes of one day-2 run.
type mutation struct {
	edited, touched, added, deleted int
	vmRegions                       int
	vmBytes, addedBytes             int64
}

func (m mutation) String() string {
	return fmt.Sprintf("%d files edited, %d touched, %d added (%s), %d deleted; %d VM regions rewritten (%s)",
		m.edited, m.touched, m.added, formatSize(m.addedBytes), m.deleted, m.vmRegions, formatSize(m.vmBytes))
}

// tree is what the mutation needs to know about an existing corpus.
type tree struct {
	text, media []string // file paths, in lexical order
	newest      time.Time
	mediaBytes  int64
}

func scan(dir string) (tree, error) {
	var t tree
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.ModTime().After(t.newest) {
			t.newest = info.ModTime()
		}
		rel, _ := filepath.Rel(dir, path)
		switch {
		case strings.HasPrefix(rel, "text"+string(filepath.Separator)):
			t.text = append(t.text, path)
		case strings.HasPrefix(rel, "media"+string(filepath.Separator)):
			t.media = append(t.media, path)
			t.mediaBytes += info.Size()
		}
		return nil
	})
	if err == nil && len(t.text) == 0 {
		err = fmt.Errorf("%s has no text/ files: not a corpus", dir)
	}
	return t, err
}

// mutateTree applies a realistic day of changes to the corpus in dir: about
// 3% of text files edited (lines appended, inserted or replaced), 0.5%
// touched without change, 0.5% deleted, 1% new files plus a new directory, a
// few new and one deleted media file, and 4 to 47 scattered 4-64 KiB regions
// of the VM image rewritten in place (about one per 8 MiB of image). Changed
// files get modification times a day after the newest file in the tree.
func mutateTree(dir string, seed uint64) (mutation, error) {
	var m mutation
	t, err := scan(dir)
	if err != nil {
		return m, err
	}
	r := newRand(key(seed, "mutate"))
	day2 := t.newest.Truncate(time.Second).Add(24 * time.Hour)
	stamp := func() time.Time { return day2.Add(time.Duration(r.IntN(8*3600)) * time.Second) }
	v := newVocab(r, "day2")

	files := append([]string(nil), t.text...)
	r.Shuffle(len(files), func(i, j int) { files[i], files[j] = files[j], files[i] })
	pct := func(p float64) int { return max(1, int(float64(len(files))*p)) }
	nEdit, nTouch, nDelete := pct(0.03), pct(0.005), pct(0.005)
	if nEdit+nTouch+nDelete > len(files) {
		return m, fmt.Errorf("%s has too few text files (%d)", dir, len(files))
	}
	for _, path := range files[:nEdit] {
		if err := editFile(r, v, path, stamp()); err != nil {
			return m, err
		}
		m.edited++
	}
	for _, path := range files[nEdit : nEdit+nTouch] {
		ts := stamp()
		if err := os.Chtimes(path, ts, ts); err != nil {
			return m, err
		}
		m.touched++
	}
	for _, path := range files[nEdit+nTouch : nEdit+nTouch+nDelete] {
		if err := os.Remove(path); err != nil {
			return m, err
		}
		m.deleted++
	}

	// New files next to surviving ones, and one new directory of them.
	survivors := files[:nEdit+nTouch]
	newDir := filepath.Join(filepath.Dir(survivors[r.IntN(len(survivors))]), "day2_"+ident(r, true))
	if err := os.MkdirAll(newDir, 0o755); err != nil {
		return m, err
	}
	for i := range pct(0.01) + 3 + r.IntN(8) {
		near := survivors[r.IntN(len(survivors))]
		parent := filepath.Dir(near)
		if i < 3 {
			parent = newDir
		}
		ext := filepath.Ext(near)
		g := textGen{r: r, v: v}
		if ext == ".md" {
			g.markdown(int(logUniform(r, 256, 32<<10)))
		} else {
			g.lines(ext, int(logUniform(r, 5, 800)))
		}
		path := filepath.Join(parent, "new_"+strconv.Itoa(i)+"_"+ident(r, true)+ext)
		if err := writeFile(path, g.buf, stamp()); err != nil {
			return m, err
		}
		m.added++
		m.addedBytes += int64(len(g.buf))
	}

	if err := mutateMedia(r, dir, t, stamp, &m); err != nil {
		return m, err
	}
	return m, mutateVM(r, filepath.Join(dir, vmPath), stamp(), &m)
}

// editFile appends, inserts or replaces a run of lines in a text file, in
// place (same inode, as most editors and build tools that write in place).
func editFile(r *rand.Rand, v *vocab, path string, mtime time.Time) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	g := textGen{r: r, v: v}
	g.lines(filepath.Ext(path), 1+r.IntN(40))
	lines := bytes.SplitAfter(data, []byte("\n"))
	at := r.IntN(len(lines) + 1)
	var out []byte
	switch op := r.IntN(100); {
	case op < 50 || len(data) == 0: // append
		out = append(data, g.buf...)
	case op < 85: // insert
		out = bytes.Join(append(lines[:at:at], append([][]byte{g.buf}, lines[at:]...)...), nil)
	default: // replace up to 10 lines
		end := min(len(lines), at+1+r.IntN(10))
		out = bytes.Join(append(lines[:at:at], append([][]byte{g.buf}, lines[end:]...)...), nil)
	}
	return writeFile(path, out, mtime)
}

// mutateMedia adds one to three new photos and deletes one old media file.
func mutateMedia(r *rand.Rand, dir string, t tree, stamp func() time.Time, m *mutation) error {
	if len(t.media) > 2 {
		if err := os.Remove(t.media[r.IntN(len(t.media))]); err != nil {
			return err
		}
		m.deleted++
	}
	photos := filepath.Join(dir, "media", "photos", "day2")
	if err := os.MkdirAll(photos, 0o755); err != nil {
		return err
	}
	rnd := newBytes(key(r.Uint64(), "day2-photos"))
	hi := min(int64(4<<20), max(t.mediaBytes/50, 16<<10))
	for i := range 1 + r.IntN(3) {
		size := logUniform(r, hi/4, hi)
		path := filepath.Join(photos, fmt.Sprintf("IMG_D2_%04d.jpg", i))
		var buf bytes.Buffer
		if err := framed(&buf, rnd, size, jpgHead, jpgTail); err != nil {
			return err
		}
		if err := writeFile(path, buf.Bytes(), stamp()); err != nil {
			return err
		}
		m.added++
		m.addedBytes += size
	}
	return nil
}

// mutateVM rewrites scattered block-aligned regions of 4-64 KiB in place,
// keeping the image's size.
func mutateVM(r *rand.Rand, path string, mtime time.Time, m *mutation) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	info, err := f.Stat()
	if err != nil {
		return errors.Join(err, f.Close())
	}
	blocks := info.Size() / blockSize
	rnd := newBytes(key(r.Uint64(), "day2-vm"))
	g := textGen{r: r, v: newVocab(r, "guest")}
	// About one region per 8 MiB, 4 to 47 in all, so small images are not
	// rewritten everywhere.
	for range 4 + r.IntN(min(max(int(blocks*blockSize>>23), 4), 44)) {
		n := min(logUniform(r, 1, 16), blocks)
		off := r.Int64N(blocks-n+1) * blockSize
		buf := make([]byte, n*blockSize)
		switch k := r.IntN(100); {
		case k < 70:
			rnd.Read(buf)
		case k < 85: // freed blocks
		default:
			g.buf = g.buf[:0]
			for len(g.buf) < len(buf) {
				g.unit(langs["c"], 0)
			}
			copy(buf, g.buf)
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			return errors.Join(err, f.Close())
		}
		m.vmRegions++
		m.vmBytes += int64(len(buf))
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Chtimes(path, mtime, mtime)
}

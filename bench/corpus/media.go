package main

import (
	"archive/tar"
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// mediaFile plans one already-compressed file under media/.
type mediaFile struct {
	rel  string
	kind string // jpg, zip, mp4, tgz or zst
	size int64
}

var (
	jpgHead = []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
	jpgTail = []byte("\xff\xd9")
	zipHead = []byte("PK\x03\x04\x14\x00\x00\x00\x08\x00")
	zipTail = []byte("PK\x05\x06\x00\x00\x00\x00\x01\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	mp4Head = []byte("\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41\x7f\xff\xff\xffmdat")
)

// planMedia splits the media budget into files of 100 KiB to 20 MiB; small
// corpora get proportionally smaller files so each part keeps its share.
func planMedia(r *rand.Rand, budget int64) []mediaFile {
	hi := min(int64(20<<20), max(budget/8, 64<<10))
	lo := min(int64(100<<10), hi/4)
	var files []mediaFile
	for remaining := budget; remaining > 0; {
		size := min(logUniform(r, lo, hi), remaining)
		if remaining-size < lo {
			size = remaining
		}
		remaining -= size
		n := len(files)
		var f mediaFile
		switch k := r.IntN(100); {
		case k < 55:
			f = mediaFile{kind: "jpg", rel: fmt.Sprintf("photos/%d/%02d/IMG_%04d.jpg", 2019+r.IntN(6), 1+r.IntN(12), n)}
		case k < 70:
			f = mediaFile{kind: "zip", rel: fmt.Sprintf("archives/%s-%d.%d.zip", idWords[r.IntN(len(idWords))], r.IntN(5), n)}
		case k < 85:
			f = mediaFile{kind: "mp4", rel: fmt.Sprintf("video/VID_2024%02d%02d_%03d.mp4", 1+r.IntN(12), 1+r.IntN(28), n)}
		case k < 93:
			f = mediaFile{kind: "tgz", rel: fmt.Sprintf("backups/%s-%03d.tar.gz", idWords[r.IntN(len(idWords))], n)}
		default:
			f = mediaFile{kind: "zst", rel: fmt.Sprintf("backups/%s-%03d.tar.zst", idWords[r.IntN(len(idWords))], n)}
		}
		f.size = size
		files = append(files, f)
	}
	return files
}

// writeMedia writes file f under root/media.
func writeMedia(root string, seed uint64, idx int, f mediaFile) (stats, error) {
	r := newRand(key(seed, "media", idx))
	path := filepath.Join(root, "media", f.rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return stats{}, err
	}
	out, err := os.Create(path)
	if err != nil {
		return stats{}, err
	}
	defer func() { _ = out.Close() }() // for the error returns: the success path closes and checks below
	w := bufio.NewWriterSize(out, 1<<20)
	rnd := newBytes(key(seed, "media-bytes", idx))
	switch f.kind {
	case "jpg":
		err = framed(w, rnd, f.size, jpgHead, jpgTail)
	case "zip":
		err = framed(w, rnd, f.size, zipHead, zipTail)
	case "mp4":
		err = framed(w, rnd, f.size, mp4Head, nil)
	default:
		err = compressedTar(w, r, rnd, f)
	}
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = out.Close()
	}
	if err == nil {
		t := pastTime(r)
		err = os.Chtimes(path, t, t)
	}
	fi, serr := os.Stat(path)
	if err == nil {
		err = serr
	}
	if err != nil {
		return stats{}, fmt.Errorf("write %s: %w", path, err)
	}
	return stats{files: 1, bytes: fi.Size()}, nil
}

// framed writes head, random bytes and tail, size bytes in all.
func framed(w io.Writer, rnd io.Reader, size int64, head, tail []byte) error {
	if _, err := w.Write(head); err != nil {
		return err
	}
	body := max(size-int64(len(head))-int64(len(tail)), 0)
	if _, err := io.CopyN(w, rnd, body); err != nil {
		return err
	}
	_, err := w.Write(tail)
	return err
}

// countingWriter counts the bytes that reach w.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// compressedTar writes a real gzip or zstd compressed tar of source files and
// random "binaries" until the compressed output reaches about f.size.
func compressedTar(w io.Writer, r *rand.Rand, rnd io.Reader, f mediaFile) error {
	cw := &countingWriter{w: w}
	var zw io.WriteCloser
	var err error
	if f.kind == "tgz" {
		zw, err = gzip.NewWriterLevel(cw, gzip.BestSpeed)
	} else {
		zw, err = zstd.NewWriter(cw, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	}
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	v := newVocab(r, "archive")
	buf := make([]byte, 0, 256<<10)
	for i := 0; cw.n < f.size; i++ {
		var data []byte
		name := fmt.Sprintf("%s/%s%d", v.pkgs[0], ident(r, true), i)
		if r.IntN(2) == 0 {
			g := textGen{r: r, v: v, buf: buf[:0]}
			g.source(langs["go"], int(logUniform(r, 1<<10, 128<<10)))
			data, buf, name = g.buf, g.buf, name+".go"
		} else {
			data = make([]byte, logUniform(r, 4<<10, 256<<10))
			if _, err := io.ReadFull(rnd, data); err != nil {
				return err
			}
		}
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: pastTime(r)}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

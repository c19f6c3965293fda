// Command manyfiles writes a deterministic tree of many tiny files for
// measuring backup, incremental backup and restore at ten million files
// (bench/manyfiles.sh).
//
//	manyfiles -n 10000000 -dir DIR [-per-dir 100] [-seed 1] [-workers 4]
//
// File i (0 <= i < n) lives in folder i/per-dir, whose path spells that
// folder number in base per-dir, one level per digit, so every folder holds
// per-dir files or per-dir subfolders. Nine files in ten hold 8 to 60 bytes
// (small enough for ext4's inline data), one in ten 100 bytes to 4 KiB; the
// bytes are pseudo-random from (seed, i), so no two files deduplicate. The
// same arguments always write the same tree; an existing tree is overwritten.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync"
)

func main() {
	n := flag.Int("n", 10_000_000, "number of files")
	dir := flag.String("dir", "", "write the tree under this `dir`")
	perDir := flag.Int("per-dir", 100, "files per folder and subfolders per folder")
	seed := flag.Uint64("seed", 1, "content seed")
	workers := flag.Int("workers", 4, "files written in parallel")
	flag.Parse()
	if *dir == "" || *n < 1 || *perDir < 2 || *workers < 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*dir, *n, *perDir, *seed, *workers); err != nil {
		log.Fatal(err)
	}
}

// folderPath is the path of folder f among folders, one level per base-per
// digit of f, zero-padded to the same depth for every folder.
func folderPath(f, folders, per int) string {
	depth := 1
	for c := per; c < folders; c *= per {
		depth++
	}
	parts := make([]string, depth)
	for l := depth - 1; l >= 0; l-- {
		parts[l] = fmt.Sprintf("d%02d", f%per)
		f /= per
	}
	return filepath.Join(parts...)
}

func run(dir string, n, per int, seed uint64, workers int) error {
	folders := (n + per - 1) / per
	jobs := make(chan int, 64)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 4096)
			for f := range jobs {
				if err := writeFolder(dir, f, folders, per, n, seed, buf); err != nil {
					errs <- err
					for range jobs {
					}
					return
				}
			}
		}()
	}
	for f := 0; f < folders; f++ {
		if f%10000 == 0 && f > 0 {
			log.Printf("%d of %d files", f*per, n)
		}
		jobs <- f
	}
	close(jobs)
	wg.Wait()
	close(errs)
	return <-errs
}

func writeFolder(dir string, f, folders, per, n int, seed uint64, buf []byte) error {
	d := filepath.Join(dir, folderPath(f, folders, per))
	if err := os.MkdirAll(d, 0o755); err != nil {
		return fmt.Errorf("make folder: %w", err)
	}
	for j := 0; j < per; j++ {
		i := f*per + j
		if i >= n {
			break
		}
		b := content(buf, seed, uint64(i))
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%02d", j)), b, 0o644); err != nil {
			return fmt.Errorf("write file %d: %w", i, err)
		}
	}
	return nil
}

// content fills buf with file i's bytes and returns them.
func content(buf []byte, seed, i uint64) []byte {
	s := splitmix(seed*0x9e3779b97f4a7c15 ^ i)
	size := 8 + int(s%53)
	if s>>32%10 == 0 {
		size = 100 + int(s>>40%3997)
	}
	b := buf[:size]
	for k := 0; k < size; k += 8 {
		s = splitmix(s)
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], s)
		copy(b[k:], w[:])
	}
	return b
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

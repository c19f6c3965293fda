// Command corpus writes the deterministic benchmark corpus used by
// bench/run.sh, and applies the "day 2" mutation to it.
//
// Generate a corpus of about SIZE bytes:
//
//	go run ./bench/corpus -out DIR -size 1GiB -seed 1
//
// Change it in place the way a working day would:
//
//	go run ./bench/corpus -mutate DIR -seed 2
//
// Or the way ransomware would, encrypting a fraction of its files:
//
//	go run ./bench/corpus -damage DIR -fraction 0.1 -seed 3
//
// The corpus is made of three parts, each under its own top-level directory:
//
//   - text/: about 30% of the bytes, source-tree-like projects of many small
//     and medium files in nested directories (Go, C, Python, JavaScript and
//     Markdown built from a per-project vocabulary, license headers and
//     boilerplate lines, some vendored libraries shared between projects);
//   - media/: about 30%, already-compressed files of 100 KiB to 20 MiB
//     (random-bodied .jpg/.zip/.mp4 files and real .tar.gz/.tar.zst output);
//   - vm/disk.img: about 40%, one VM-image-like file of 4 KiB-aligned regions:
//     zero runs, random blocks, compressible blocks, filler patterns, and
//     regions duplicated at several offsets.
//
// Every byte, file name and modification time depends only on the seed and
// the size, so two runs with the same flags produce identical trees.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	out := flag.String("out", "", "generate a new corpus into this `dir` (must be absent or empty)")
	mutate := flag.String("mutate", "", "apply the day-2 mutation in place to the corpus in this `dir`")
	damageDir := flag.String("damage", "", "encrypt and rename -fraction of the files of the corpus in this `dir`, as ransomware does")
	fraction := flag.Float64("fraction", 0.1, "share of the text and media files -damage encrypts")
	size := flag.String("size", "1GiB", "approximate corpus `size` (B, KiB, MiB, GiB, KB, MB, GB)")
	seed := flag.Uint64("seed", 1, "PRNG `seed`; the output depends only on it and -size")
	flag.Parse()

	modes := 0
	for _, m := range []string{*out, *mutate, *damageDir} {
		if m != "" {
			modes++
		}
	}
	if modes != 1 || flag.NArg() != 0 || *fraction <= 0 || *fraction > 1 {
		fmt.Fprintln(os.Stderr, "usage: corpus -out DIR [-size 1GiB] [-seed 1] | corpus -mutate DIR [-seed 2] | corpus -damage DIR [-fraction 0.1] [-seed 3]")
		os.Exit(2)
	}
	start := time.Now()
	var err error
	if *out != "" {
		var n int64
		if n, err = parseSize(*size); err == nil {
			var st stats
			st, err = generate(*out, n, *seed)
			if err == nil {
				fmt.Printf("corpus: wrote %s in %d files to %s in %.1fs\n",
					formatSize(st.bytes), st.files, *out, time.Since(start).Seconds())
			}
		}
	} else if *mutate != "" {
		var ms mutation
		ms, err = mutateTree(*mutate, *seed)
		if err == nil {
			fmt.Printf("corpus: mutated %s in %.1fs: %s\n", *mutate, time.Since(start).Seconds(), ms)
		}
	} else {
		var d damage
		d, err = damageTree(*damageDir, *fraction, *seed)
		if err == nil {
			fmt.Printf("corpus: damaged %s in %.1fs: %s\n", *damageDir, time.Since(start).Seconds(), d)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "corpus:", err)
		os.Exit(1)
	}
}

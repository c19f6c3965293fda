package main

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// damage counts what one ransomware run did.
type damage struct {
	files, notes int
	bytes        int64
}

func (d damage) String() string {
	return fmt.Sprintf("%d files encrypted and renamed (%s), %d ransom notes", d.files, formatSize(d.bytes), d.notes)
}

// damageExt is the extension the simulated ransomware renames to.
const damageExt = ".locked"

// noteName is the simulated ransom note, one per folder it touched.
const noteName = "HOW_TO_RECOVER_FILES.txt"

// damageTree does to the corpus in dir what file-encrypting ransomware
// does to a share it reaches: it encrypts a fraction of the files of text/
// and media/ (chosen by seed) with AES-256-CTR under a random key, appends
// the IV and a stand-in for the wrapped key, renames each to NAME.locked,
// and leaves a ransom note in every folder it touched. The VM image is left
// alone, as a running VM's disk is held open and locked. It is the damage
// bench/recover.sh repairs.
func damageTree(dir string, fraction float64, seed uint64) (damage, error) {
	var d damage
	t, err := scan(dir)
	if err != nil {
		return d, err
	}
	r := newRand(key(seed, "damage"))
	files := append(append([]string(nil), t.text...), t.media...)
	r.Shuffle(len(files), func(i, j int) { files[i], files[j] = files[j], files[i] })
	rnd := newBytes(key(seed, "damage-bytes"))
	k := make([]byte, 32)
	rnd.Read(k)
	block, err := aes.NewCipher(k)
	if err != nil {
		return d, err
	}
	// Times a day after the newest file, as mutate's: the damaged tree
	// depends on the seed only.
	stamp := t.newest.Truncate(time.Second).Add(24 * time.Hour)
	noted := map[string]bool{}
	for _, path := range files[:max(1, int(float64(len(files))*fraction))] {
		data, err := os.ReadFile(path)
		if err != nil {
			return d, err
		}
		iv := make([]byte, aes.BlockSize)
		rnd.Read(iv)
		out := make([]byte, len(data), len(data)+len(iv)+256)
		cipher.NewCTR(block, iv).XORKeyStream(out, data)
		wrapped := make([]byte, 256)
		rnd.Read(wrapped)
		out = append(append(out, iv...), wrapped...)
		if err := os.WriteFile(path, out, 0o644); err != nil {
			return d, err
		}
		if err := os.Rename(path, path+damageExt); err != nil {
			return d, err
		}
		if err := os.Chtimes(path+damageExt, stamp, stamp); err != nil {
			return d, err
		}
		d.files++
		d.bytes += int64(len(data))
		if folder := filepath.Dir(path); !noted[folder] {
			noted[folder] = true
			note := strings.Repeat("Your files are encrypted. Pay to get them back.\n", 20)
			if err := os.WriteFile(filepath.Join(folder, noteName), []byte(note), 0o644); err != nil {
				return d, err
			}
			if err := os.Chtimes(filepath.Join(folder, noteName), stamp, stamp); err != nil {
				return d, err
			}
			d.notes++
		}
	}
	return d, nil
}

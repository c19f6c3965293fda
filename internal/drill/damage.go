package drill

import (
	"crypto/sha256"
	"io"
	"os"
)

// digest is the SHA-256 of a file's content.
type digest [sha256.Size]byte

// hashTree returns the digest of every regular file in DataDir. A file
// that cannot be read (refused, or gone meanwhile) gets the zero digest.
func hashTree(sb *Sandbox) (map[string]digest, error) {
	files, err := sb.Files(DataDir)
	if err != nil {
		return nil, err
	}
	m := make(map[string]digest, len(files))
	for _, f := range files {
		m[f] = hashFile(sb, f)
	}
	return m, nil
}

func hashFile(sb *Sandbox, rel string) digest {
	var d digest
	f, err := sb.OpenFile(rel, os.O_RDONLY, 0)
	if err != nil {
		return d
	}
	defer func() { _ = f.Close() }() // read only
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return d
	}
	copy(d[:], h.Sum(nil))
	return d
}

// damaged counts the files of before that are missing from after (deleted
// or renamed) or whose content changed, leaving out the watcher's
// canaries (absolute paths). Files the attack created are not counted.
func damaged(sb *Sandbox, before, after map[string]digest, canaries []string) int {
	skip := map[string]bool{}
	for _, c := range canaries {
		if rel, err := sb.Rel(c); err == nil {
			skip[rel] = true
		}
	}
	n := 0
	for f, d := range before {
		if skip[f] {
			continue
		}
		if a, ok := after[f]; !ok || a != d {
			n++
		}
	}
	return n
}

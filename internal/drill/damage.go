package drill

import (
	"crypto/sha256"
	"io"
	"os"
)

// digest is the SHA-256 of a file's content.
type digest [sha256.Size]byte

// hashTree returns the digest of every regular file in DataDir and
// HostDir (if laid out). A file that cannot be read (refused, or gone
// meanwhile) gets the zero digest.
func hashTree(sb *Sandbox) (map[string]digest, error) {
	files, err := sb.Files(DataDir)
	if err != nil {
		return nil, err
	}
	host, err := sb.Files(HostDir)
	if err != nil {
		return nil, err
	}
	files = append(files, host...)
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
	skip := relSet(sb, canaries)
	n := 0
	for f, d := range before {
		if !skip[f] && !same(after, f, d) {
			n++
		}
	}
	return n
}

// recovered counts, of the files of before (but the canaries), those the
// attack damaged (missing or changed in attacked) that are as before again
// in now, and those that are not as before in now: lost.
func recovered(sb *Sandbox, before, attacked, now map[string]digest, canaries []string) (back, lost int) {
	skip := relSet(sb, canaries)
	for f, d := range before {
		switch {
		case skip[f]:
		case !same(now, f, d):
			lost++
		case !same(attacked, f, d):
			back++
		}
	}
	return back, lost
}

// same reports whether m holds f with digest d.
func same(m map[string]digest, f string, d digest) bool {
	a, ok := m[f]
	return ok && a == d
}

// relSet returns the sandbox-relative paths of the absolute paths ps.
func relSet(sb *Sandbox, ps []string) map[string]bool {
	out := map[string]bool{}
	for _, p := range ps {
		if rel, err := sb.Rel(p); err == nil {
			out[rel] = true
		}
	}
	return out
}

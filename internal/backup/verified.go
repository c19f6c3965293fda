package backup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kalaja/kalaja/internal/atomicfile"
	"github.com/kalaja/kalaja/internal/blob"
)

// The trusted parents (docs/design.md, "Trusted parents") are the
// snapshots this client stored whole, each with the digest of the
// administrator's removal requests its last check listed
// (repo.CheckedRemovals), in <cache>/<repository ID>/backups/verified: the
// line verifiedHeader, then one line per snapshot, "<snapshot ID>
// <digest>", both in hex, newest last, at most maxVerified. A backup
// whose parent is listed there with the digest of the requests stored now
// (repo.Removals) knows that no pack was deleted since the parent was
// stored, and takes unchanged files' content from it without an index
// lookup per file (archiver.Options.TrustParent). The file is the
// client's own record, like the index cache: missing, unreadable or
// damaged, it trusts nothing.
const (
	verifiedName   = "verified"
	verifiedHeader = "kalaja-verified/v1"
	maxVerified    = 64
)

// trusted reports whether the parent snapshot id is listed in the cache
// directory dir with the digest removals.
func trusted(dir string, id blob.ID, removals string) bool {
	if dir == "" || removals == "" {
		return false
	}
	list, err := readVerified(filepath.Join(dir, "backups", verifiedName))
	if err != nil {
		return false
	}
	for _, v := range list {
		if v.id == id {
			return v.removals == removals
		}
	}
	return false
}

// verified is one line of the file.
type verified struct {
	id       blob.ID
	removals string
}

// readVerified reads the file at path; another version, or a line it
// cannot parse, makes the whole file an error.
func readVerified(path string) ([]verified, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []verified
	sc := bufio.NewScanner(bytes.NewReader(b))
	if !sc.Scan() || sc.Text() != verifiedHeader {
		return nil, fmt.Errorf("%s: not a %s file", path, verifiedHeader)
	}
	for n := 2; sc.Scan(); n++ {
		v, err := parseVerified(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("%s, line %d: %w", path, n, err)
		}
		out = append(out, v)
	}
	return out, sc.Err()
}

func parseVerified(line string) (verified, error) {
	idHex, digest, ok := strings.Cut(line, " ")
	if !ok {
		return verified{}, errors.New("want a snapshot ID and a digest")
	}
	id, err := blob.ParseID(idHex)
	if err != nil || id.String() != idHex {
		return verified{}, fmt.Errorf("snapshot ID %q is not 64 lowercase hex digits", idHex)
	}
	if d, err := blob.ParseID(digest); err != nil || d.String() != digest {
		return verified{}, fmt.Errorf("digest %q is not 64 lowercase hex digits", digest)
	}
	return verified{id: id, removals: digest}, nil
}

// recordVerified adds snapshot id with the digest removals to the file in
// the cache directory dir, dropping the oldest lines beyond maxVerified
// and any earlier line of id; an unreadable file starts anew.
func recordVerified(dir string, id blob.ID, removals string) error {
	if dir == "" || removals == "" {
		return nil
	}
	path := filepath.Join(dir, "backups", verifiedName)
	list, _ := readVerified(path) // a damaged record trusts nothing, and is replaced
	var b strings.Builder
	b.WriteString(verifiedHeader + "\n")
	keep := make([]verified, 0, len(list)+1)
	for _, v := range list {
		if v.id != id {
			keep = append(keep, v)
		}
	}
	keep = append(keep, verified{id: id, removals: removals})
	for _, v := range keep[max(0, len(keep)-maxVerified):] {
		fmt.Fprintf(&b, "%s %s\n", v.id, v.removals)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, []byte(b.String()), 0o600)
}

package server

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/kalaja/kalaja/internal/atomicfile"
)

// Headers of the tokens file: version 2 is written, both are read.
const (
	tokensHeader   = "# kalaja server tokens v2"
	tokensHeaderV1 = "# kalaja server tokens v1"
)

// maxToken bounds the length of a presented token; real ones are 43 bytes.
const maxToken = 256

// maxHost bounds a host name's length.
const maxHost = 64

// Role is what a credential may do.
type Role string

const (
	// RoleHost may add and read the repository's objects under /v1/,
	// never the dashboard.
	RoleHost Role = "host"
	// RoleDashboard may read the dashboard under /dashboard/, nothing
	// under /v1/.
	RoleDashboard Role = "dashboard"
)

// Credential is a name with its role, as the tokens file lists it.
type Credential struct {
	Name string
	Role Role
}

// Tokens are the bearer tokens a server accepts, kept in a file of lines
// "NAME SHA256-HEX-OF-TOKEN ROLE" after the header line
// "# kalaja server tokens v2" (ROLE is host or dashboard); a version 1
// file, "# kalaja server tokens v1" then "HOST SHA256-HEX" lines, reads
// as hosts only and is rewritten as version 2 by the next Add or Remove.
// Names are unique across roles. Only the hashes are stored: the token
// itself is shown once, by Add. The file is re-read when it changes, so
// tokens added or removed by another process (kalaja serve token add,
// remove) take effect without a restart. Safe for concurrent use within a
// process; concurrent Adds from several processes may lose one of them.
type Tokens struct {
	path string

	mu      sync.Mutex
	entries []tokenEntry
	read    fs.FileInfo // the file entries were read from; nil before
}

type tokenEntry struct {
	Credential
	hash [sha256.Size]byte
}

// OpenTokens reads the tokens file at path; a missing file holds no
// tokens. It fails on a file that is not a version 1 or 2 tokens file.
func OpenTokens(path string) (*Tokens, error) {
	t := &Tokens{path: path}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// reload reads the file if it changed since it was last read. t.mu is held.
func (t *Tokens) reload() error {
	fi, err := os.Stat(t.path)
	if errors.Is(err, fs.ErrNotExist) {
		t.entries, t.read = nil, nil
		return nil
	}
	if err != nil {
		return fmt.Errorf("read tokens: %w", err)
	}
	if t.read != nil && os.SameFile(fi, t.read) && fi.Size() == t.read.Size() && fi.ModTime().Equal(t.read.ModTime()) {
		return nil
	}
	b, err := os.ReadFile(t.path)
	if err != nil {
		return fmt.Errorf("read tokens: %w", err)
	}
	entries, err := parseTokens(b)
	if err != nil {
		return fmt.Errorf("read tokens file %s: %w", t.path, err)
	}
	t.entries, t.read = entries, fi
	return nil
}

// parseTokens decodes a tokens file of version 1 or 2. Names must be
// valid (CheckHost) and unique.
func parseTokens(b []byte) ([]tokenEntry, error) {
	entries := []tokenEntry{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	line, v1 := 0, false
	for sc.Scan() {
		line++
		text := sc.Text()
		if line == 1 {
			if text != tokensHeader && text != tokensHeaderV1 {
				return nil, fmt.Errorf("not a version 1 or 2 tokens file (want first line %q)", tokensHeader)
			}
			v1 = text == tokensHeaderV1
			continue
		}
		f := strings.Split(text, " ")
		want := "NAME SHA256-HEX ROLE"
		if v1 {
			want = "HOST SHA256-HEX"
			f = append(f, string(RoleHost))
		}
		var e tokenEntry
		if len(f) != 3 || len(f[1]) != 2*sha256.Size || CheckHost(f[0]) != nil ||
			(Role(f[2]) != RoleHost && Role(f[2]) != RoleDashboard) {
			return nil, fmt.Errorf("line %d: want %s", line, want)
		}
		if _, err := hex.Decode(e.hash[:], []byte(f[1])); err != nil {
			return nil, fmt.Errorf("line %d: want %s", line, want)
		}
		if slices.ContainsFunc(entries, func(o tokenEntry) bool { return o.Name == f[0] }) {
			return nil, fmt.Errorf("line %d: %s is listed twice", line, f[0])
		}
		e.Credential = Credential{Name: f[0], Role: Role(f[2])}
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if line == 0 {
		return nil, errors.New("empty file")
	}
	return entries, nil
}

// CheckHost accepts host names of 1 to 64 letters, digits, '.', '_' and
// '-', starting with a letter or digit.
func CheckHost(host string) error {
	if host == "" || len(host) > maxHost || strings.Trim(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" ||
		strings.IndexAny(host[:1], "._-") == 0 {
		return fmt.Errorf("invalid host name %q: want 1 to %d letters, digits, '.', '_' and '-', starting with a letter or digit", host, maxHost)
	}
	return nil
}

// Add creates a token for host, stores its hash, and returns the token,
// which is not kept anywhere else. It fails if the name host has a token
// already, of either role.
func (t *Tokens) Add(host string) (string, error) {
	return t.add(host, RoleHost)
}

// AddDashboard creates a dashboard credential named name, as Add does for
// a host: the token is the password of HTTP Basic authentication with the
// user name name.
func (t *Tokens) AddDashboard(name string) (string, error) {
	return t.add(name, RoleDashboard)
}

func (t *Tokens) add(name string, role Role) (string, error) {
	if err := CheckHost(name); err != nil {
		return "", err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.reload(); err != nil {
		return "", err
	}
	if slices.ContainsFunc(t.entries, func(e tokenEntry) bool { return e.Name == name }) {
		return "", fmt.Errorf("%s already has a token", name)
	}
	var raw [32]byte
	rand.Read(raw[:])
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	entries := append(slices.Clone(t.entries), tokenEntry{Credential: Credential{Name: name, Role: role}, hash: sha256.Sum256([]byte(token))})
	if err := t.write(entries); err != nil {
		return "", fmt.Errorf("store token: %w", err)
	}
	return token, nil
}

// Remove revokes the token of name (a host or a dashboard credential):
// from the next request on (a running server re-reads the file), the
// token is refused. It fails if name has no token.
func (t *Tokens) Remove(name string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.reload(); err != nil {
		return err
	}
	i := slices.IndexFunc(t.entries, func(e tokenEntry) bool { return e.Name == name })
	if i < 0 {
		return fmt.Errorf("%s has no token", name)
	}
	if err := t.write(slices.Delete(slices.Clone(t.entries), i, i+1)); err != nil {
		return fmt.Errorf("remove token: %w", err)
	}
	return nil
}

// write replaces the file with entries, as version 2. t.mu is held.
func (t *Tokens) write(entries []tokenEntry) error {
	var b bytes.Buffer
	b.WriteString(tokensHeader + "\n")
	for _, e := range entries {
		fmt.Fprintf(&b, "%s %x %s\n", e.Name, e.hash, e.Role)
	}
	if err := atomicfile.Write(t.path, b.Bytes(), 0o600); err != nil {
		return err
	}
	t.read = nil // re-read on next use
	return nil
}

// Hosts returns the names of the host credentials, in the file's order.
func (t *Tokens) Hosts() ([]string, error) {
	all, err := t.List()
	if err != nil {
		return nil, err
	}
	var hosts []string
	for _, c := range all {
		if c.Role == RoleHost {
			hosts = append(hosts, c.Name)
		}
	}
	return hosts, nil
}

// List returns every credential, hosts and dashboards, in the file's order.
func (t *Tokens) List() ([]Credential, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.reload(); err != nil {
		return nil, err
	}
	all := make([]Credential, len(t.entries))
	for i, e := range t.entries {
		all[i] = e.Credential
	}
	return all, nil
}

// Lookup returns the credential whose token is token. The token's hash is
// compared with every stored hash in constant time.
func (t *Tokens) Lookup(token string) (Credential, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.reload(); err != nil {
		return Credential{}, false, err
	}
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i, e := range t.entries {
		if subtle.ConstantTimeCompare(sum[:], e.hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Credential{}, false, nil
	}
	return t.entries[found].Credential, true, nil
}

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

// tokensHeader is the first line of a tokens file, version 1.
const tokensHeader = "# kalaja server tokens v1"

// maxToken bounds the length of a presented token; real ones are 43 bytes.
const maxToken = 256

// maxHost bounds a host name's length.
const maxHost = 64

// Tokens are the per-host bearer tokens a server accepts, kept in a file
// of lines "HOST SHA256-HEX-OF-TOKEN" after the header line
// "# kalaja server tokens v1". Only the hashes are stored: the token itself
// is shown once, by Add. Host re-reads the file when it changes, so tokens
// added or removed by another process (kalaja serve token add, remove)
// take effect without a restart. Safe for concurrent use within a process; concurrent Adds from
// several processes may lose one of them.
type Tokens struct {
	path string

	mu      sync.Mutex
	entries []tokenEntry
	read    fs.FileInfo // the file entries were read from; nil before
}

type tokenEntry struct {
	host string
	hash [sha256.Size]byte
}

// OpenTokens reads the tokens file at path; a missing file holds no
// tokens. It fails on a file that is not a version 1 tokens file.
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

// parseTokens decodes a tokens file.
func parseTokens(b []byte) ([]tokenEntry, error) {
	entries := []tokenEntry{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if line == 1 {
			if text != tokensHeader {
				return nil, fmt.Errorf("not a version 1 tokens file (want first line %q)", tokensHeader)
			}
			continue
		}
		host, hash, ok := strings.Cut(text, " ")
		var e tokenEntry
		if !ok || len(hash) != 2*sha256.Size || CheckHost(host) != nil {
			return nil, fmt.Errorf("line %d: want HOST SHA256-HEX", line)
		}
		if _, err := hex.Decode(e.hash[:], []byte(hash)); err != nil {
			return nil, fmt.Errorf("line %d: want HOST SHA256-HEX", line)
		}
		e.host = host
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
// which is not kept anywhere else. It fails if host already has a token.
func (t *Tokens) Add(host string) (string, error) {
	if err := CheckHost(host); err != nil {
		return "", err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.reload(); err != nil {
		return "", err
	}
	if slices.ContainsFunc(t.entries, func(e tokenEntry) bool { return e.host == host }) {
		return "", fmt.Errorf("host %s already has a token", host)
	}
	var raw [32]byte
	rand.Read(raw[:])
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	entries := append(slices.Clone(t.entries), tokenEntry{host: host, hash: sha256.Sum256([]byte(token))})
	if err := t.write(entries); err != nil {
		return "", fmt.Errorf("store token: %w", err)
	}
	return token, nil
}

// Remove revokes host's token: from the next request on (a running
// server re-reads the file), the token is refused. It fails if host has
// no token.
func (t *Tokens) Remove(host string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.reload(); err != nil {
		return err
	}
	i := slices.IndexFunc(t.entries, func(e tokenEntry) bool { return e.host == host })
	if i < 0 {
		return fmt.Errorf("host %s has no token", host)
	}
	if err := t.write(slices.Delete(slices.Clone(t.entries), i, i+1)); err != nil {
		return fmt.Errorf("remove token: %w", err)
	}
	return nil
}

// write replaces the file with entries. t.mu is held.
func (t *Tokens) write(entries []tokenEntry) error {
	var b bytes.Buffer
	b.WriteString(tokensHeader + "\n")
	for _, e := range entries {
		fmt.Fprintf(&b, "%s %x\n", e.host, e.hash)
	}
	if err := atomicfile.Write(t.path, b.Bytes(), 0o600); err != nil {
		return err
	}
	t.read = nil // re-read on next use
	return nil
}

// Hosts returns the hosts that have a token, in the file's order.
func (t *Tokens) Hosts() ([]string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.reload(); err != nil {
		return nil, err
	}
	hosts := make([]string, len(t.entries))
	for i, e := range t.entries {
		hosts[i] = e.host
	}
	return hosts, nil
}

// Host returns the host whose token is token. The token's hash is compared
// with every stored hash in constant time.
func (t *Tokens) Host(token string) (string, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.reload(); err != nil {
		return "", false, err
	}
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i, e := range t.entries {
		if subtle.ConstantTimeCompare(sum[:], e.hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", false, nil
	}
	return t.entries[found].host, true, nil
}

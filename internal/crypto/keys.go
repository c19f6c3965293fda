// Package crypto holds Kalaja's key hierarchy and every use of a cipher:
// Argon2id-sealed key files, keyed blob IDs, per-pack content keys wrapped for
// an X25519 public key, and sealed objects (index and snapshot files).
//
// The key hierarchy separates what a host needs to add data from what it needs
// to read it (docs/design.md, "Keys"):
//
//   - ID key: keys the function naming blobs (BLAKE3, or HMAC-SHA256 in format
//     version 1 repositories), so equal chunks deduplicate and a
//     stored ID does not reveal a known file to someone without the key.
//   - Chunker key: seeds the content-defined chunker's gear table.
//   - Index key: AES-256-GCM key for index files, which map blob IDs to packs.
//   - Content key pair (X25519): every pack and snapshot is encrypted under a
//     fresh key derived from an ephemeral key agreement with the public half;
//     only the private half decrypts. A write-only host holds the public half.
//
// All ciphers are authenticated (AES-256-GCM, XChaCha20-Poly1305). Nothing in
// this package logs or returns secret bytes in errors.
package crypto

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"

	"github.com/zeebo/blake3"
	"golang.org/x/crypto/curve25519"

	"github.com/kalaja/kalaja/internal/blob"
)

// KeySize is the length of every symmetric key and X25519 key.
const KeySize = 32

// ErrWriteOnly reports that an operation needs the content private key,
// which a write-only key does not hold: reading file content, names, trees
// or snapshots. The remedy is a full key (the recovery key, held off the
// hosts; docs/design.md, "Write-only hosts").
var ErrWriteOnly = errors.New("this key is write-only: it can back up but not read snapshots, trees or file content; use a full key (the recovery key, held off the hosts)")

// Keys is the repository's key material, as sealed inside a key file.
// A full key has every field but LogSigner; a write-only key (see
// docs/design.md, "Write-only hosts") lacks ContentPrivate and carries
// LogSigner instead. Keys must not be copied into logs or errors.
type Keys struct {
	RepoID         blob.ID       `json:"repo_id"`
	ID             [KeySize]byte `json:"-"`
	Chunker        [KeySize]byte `json:"-"`
	Index          [KeySize]byte `json:"-"`
	ContentPublic  [KeySize]byte `json:"-"`
	ContentPrivate [KeySize]byte `json:"-"`
	// LogSigner is the plaintext of the ledger's sealed signing key
	// (docs/design.md 13.1: signer key, "\n", verifier key, "\n"), which a
	// write-only key carries because it cannot open the sealed one. Empty
	// in a full key.
	LogSigner []byte `json:"-"`
}

// keysJSON is the serialised form: byte slices encode as base64.
type keysJSON struct {
	RepoID         blob.ID `json:"repo_id"`
	ID             []byte  `json:"id_key"`
	Chunker        []byte  `json:"chunker_key"`
	Index          []byte  `json:"index_key"`
	ContentPublic  []byte  `json:"content_public"`
	ContentPrivate []byte  `json:"content_private,omitempty"`
	LogSigner      string  `json:"log_signer,omitempty"`
}

// MarshalJSON encodes the keys for sealing in a key file.
func (k *Keys) MarshalJSON() ([]byte, error) {
	j := keysJSON{k.RepoID, k.ID[:], k.Chunker[:], k.Index[:], k.ContentPublic[:], nil, string(k.LogSigner)}
	if k.CanRead() {
		j.ContentPrivate = k.ContentPrivate[:]
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes keys and checks every field's length and that the
// content key pair matches.
func (k *Keys) UnmarshalJSON(b []byte) error {
	var j keysJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("decode keys: %w", err)
	}
	fields := []struct {
		name string
		src  []byte
		dst  *[KeySize]byte
		opt  bool
	}{
		{"id_key", j.ID, &k.ID, false},
		{"chunker_key", j.Chunker, &k.Chunker, false},
		{"index_key", j.Index, &k.Index, false},
		{"content_public", j.ContentPublic, &k.ContentPublic, false},
		{"content_private", j.ContentPrivate, &k.ContentPrivate, true},
	}
	for _, f := range fields {
		if f.opt && len(f.src) == 0 {
			continue
		}
		if len(f.src) != KeySize {
			return fmt.Errorf("decode keys: %s has %d bytes, want %d: %w", f.name, len(f.src), KeySize, blob.ErrCorrupt)
		}
		copy(f.dst[:], f.src)
	}
	k.RepoID = j.RepoID
	k.LogSigner = []byte(j.LogSigner)
	if j.LogSigner == "" {
		k.LogSigner = nil
	}
	if k.CanRead() {
		pub, err := curve25519.X25519(k.ContentPrivate[:], curve25519.Basepoint)
		if err != nil || !hmac.Equal(pub, k.ContentPublic[:]) {
			return fmt.Errorf("decode keys: content key pair does not match: %w", blob.ErrCorrupt)
		}
	}
	return nil
}

// NewKeys returns fresh random keys for a new repository named repoID.
func NewKeys(repoID blob.ID) (*Keys, error) {
	k := &Keys{RepoID: repoID}
	for _, b := range []*[KeySize]byte{&k.ID, &k.Chunker, &k.Index, &k.ContentPrivate} {
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("generate keys: %w", err)
		}
	}
	pub, err := curve25519.X25519(k.ContentPrivate[:], curve25519.Basepoint)
	if err != nil {
		return nil, fmt.Errorf("generate content key: %w", err)
	}
	copy(k.ContentPublic[:], pub)
	return k, nil
}

// CanRead reports whether k holds the content private key, i.e. can decrypt
// packs and snapshots.
func (k *Keys) CanRead() bool { return k.ContentPrivate != [KeySize]byte{} }

// WriteOnly returns a copy of k without the content private key, carrying
// logSigner (the plaintext of the ledger's signing key) instead: enough to
// chunk, deduplicate, index, add packs and snapshots and append to the
// ledger, not to read content.
func (k *Keys) WriteOnly(logSigner []byte) *Keys {
	c := *k
	c.ContentPrivate = [KeySize]byte{}
	c.LogSigner = append([]byte(nil), logSigner...)
	return &c
}

// CarriedSigner returns the plaintext of the ledger's signing key that a
// write-only key carries (LogSigner), nil for a full key.
func (k *Keys) CarriedSigner() []byte {
	if len(k.LogSigner) == 0 {
		return nil
	}
	return k.LogSigner
}

// IDFunc names the keyed function that derives a blob's ID from its
// plaintext. The repository's config chooses it (docs/design.md, section 6).
type IDFunc string

const (
	// HMACSHA256 is HMAC-SHA256 under the ID key: format version 1.
	HMACSHA256 IDFunc = "hmac-sha256"
	// BLAKE3 is BLAKE3's keyed hash under the ID key, 32 bytes out: format
	// version 2. It is about twice as fast here as HMAC-SHA256 with SHA-NI,
	// and every chunk a backup reads or a restore writes is hashed.
	BLAKE3 IDFunc = "blake3"
)

// IDHasher computes blob IDs. It is not safe for concurrent use; make one
// per goroutine with Keys.NewIDHasher.
type IDHasher struct{ mac hash.Hash }

// NewIDHasher returns a hasher computing f keyed with the repository's ID
// key. f must be HMACSHA256 or BLAKE3 (config parsing guarantees it).
func (k *Keys) NewIDHasher(f IDFunc) *IDHasher {
	switch f {
	case HMACSHA256:
		return &IDHasher{hmac.New(sha256.New, k.ID[:])}
	case BLAKE3:
		h, err := blake3.NewKeyed(k.ID[:])
		if err != nil {
			panic(err) // the key is KeySize = 32 bytes, as BLAKE3 requires
		}
		return &IDHasher{h}
	}
	panic(fmt.Sprintf("crypto: unknown ID function %q", f))
}

// Sum returns the blob ID of plaintext.
func (h *IDHasher) Sum(plaintext []byte) blob.ID {
	h.mac.Reset()
	h.mac.Write(plaintext)
	var id blob.ID
	h.mac.Sum(id[:0])
	return id
}

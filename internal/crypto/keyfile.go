package crypto

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/sys/unix"

	"github.com/kalaja/kalaja/internal/blob"
)

// Key file versions: a full key is written as version 1, a write-only key
// as version 2 (docs/design.md 3.2), so that builds that predate write-only
// keys refuse one as unsupported instead of failing later at the ledger.
const (
	KeyFileVersion          = 1
	WriteOnlyKeyFileVersion = 2
)

// KDFParams are the Argon2id parameters of one key file.
type KDFParams struct {
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
	Salt      []byte `json:"salt"`
}

// DefaultKDF returns the parameters new key files use: RFC 9106's second
// recommended option (t=3, 64 MiB, 4 lanes) with a fresh 16-byte salt.
func DefaultKDF() (KDFParams, error) {
	p := KDFParams{Time: 3, MemoryKiB: 64 << 10, Threads: 4, Salt: make([]byte, 16)}
	_, err := rand.Read(p.Salt)
	return p, err
}

// validate refuses parameters a hostile key file could use to exhaust memory
// or time, and ones too weak to be ours.
func (p KDFParams) validate() error {
	switch {
	case p.Time < 1 || p.Time > 64:
		return fmt.Errorf("argon2id time %d out of range 1..64", p.Time)
	case p.MemoryKiB < 8<<10 || p.MemoryKiB > 4<<20:
		return fmt.Errorf("argon2id memory %d KiB out of range 8 MiB..4 GiB", p.MemoryKiB)
	case p.Threads < 1:
		return errors.New("argon2id threads must be at least 1")
	case len(p.Salt) < 16 || len(p.Salt) > 64:
		return fmt.Errorf("argon2id salt of %d bytes, want 16..64", len(p.Salt))
	}
	return nil
}

// KeyFile is the stored form of one key: the repository keys sealed under a
// key derived from a password. Everything but Data is public metadata.
type KeyFile struct {
	Version  int       `json:"version"`
	Created  time.Time `json:"created"`
	Host     string    `json:"host,omitempty"`
	Username string    `json:"username,omitempty"`
	// WriteOnly is set in exactly the version 2 key files: the sealed keys
	// lack the content private key and carry the log's signing key. It is
	// authenticated (it selects the additional data), so a flag flipped in
	// storage makes the key fail to open.
	WriteOnly bool      `json:"write_only,omitempty"`
	KDF       KDFParams `json:"kdf"`
	// Data is XChaCha20-Poly1305(Argon2id(password), nonce, keys JSON) as
	// nonce || ciphertext, with additional data "kalaja key v1" (version
	// 1) or "kalaja key v2 write-only" (version 2).
	Data []byte `json:"data"`
}

// aad returns the additional data of the sealed keys of a key file.
func (kf *KeyFile) aad() []byte {
	if kf.Version == WriteOnlyKeyFileVersion {
		return []byte("kalaja key v2 write-only")
	}
	return []byte("kalaja key v1")
}

// derive returns the key that p derives from password.
func (p KDFParams) derive(password []byte) []byte {
	prefault(int(p.MemoryKiB) << 10)
	return argon2.IDKey(password, p.Salt, p.Time, p.MemoryKiB, p.Threads, KeySize)
}

// prefault leaves n bytes of written, resident memory free in the heap for
// the next allocation of that size to reuse.
//
// x/crypto's Argon2 XORs every block into its zeroed memory, even in the
// first pass, so each fresh page is read before it is written: the read maps
// the kernel's shared zero page and the write then takes a copy-on-write
// fault, which flushes the TLBs of the CPUs running the other lanes; on a
// two-core machine those flushes were most of the derivation's time
// (docs/measurements.md, "Opening a key"). Prefaulting relies on the
// runtime reusing the freed span; if it does not, the derivation is only
// as slow as without.
func prefault(n int) {
	b := make([]byte, n)
	if unix.Madvise(b, unix.MADV_POPULATE_WRITE) != nil {
		for i := 0; i < len(b); i += os.Getpagesize() {
			b[i] = 1
		}
	}
	runtime.KeepAlive(b)
	runtime.GC()
}

// SealKeyFile seals keys under password and returns the encoded key file:
// version 1 for a full key, version 2 for a write-only one, which must
// carry the log's signing key (Keys.WriteOnly).
func SealKeyFile(keys *Keys, password []byte, kdf KDFParams, meta KeyFile) ([]byte, error) {
	if err := kdf.validate(); err != nil {
		return nil, fmt.Errorf("seal key file: %w", err)
	}
	if !keys.CanRead() && len(keys.LogSigner) == 0 || keys.CanRead() && len(keys.LogSigner) != 0 {
		return nil, errors.New("seal key file: a write-only key, and only one, carries the log's signing key")
	}
	plain, err := json.Marshal(keys)
	if err != nil {
		return nil, fmt.Errorf("seal key file: %w", err)
	}
	meta.Version, meta.WriteOnly = KeyFileVersion, !keys.CanRead()
	if meta.WriteOnly {
		meta.Version = WriteOnlyKeyFileVersion
	}
	aead, err := chacha20poly1305.NewX(kdf.derive(password))
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal key file: %w", err)
	}
	meta.KDF = kdf
	meta.Data = aead.Seal(nonce, nonce, plain, meta.aad())
	return json.MarshalIndent(meta, "", "  ")
}

// ParseKeyFile decodes a key file's public part without opening it.
func ParseKeyFile(data []byte) (*KeyFile, error) {
	var kf KeyFile
	if err := json.Unmarshal(data, &kf); err != nil {
		return nil, fmt.Errorf("decode key file: %v: %w", err, blob.ErrCorrupt)
	}
	if kf.Version != KeyFileVersion && kf.Version != WriteOnlyKeyFileVersion {
		return nil, fmt.Errorf("key file version %d: %w", kf.Version, blob.ErrUnsupported)
	}
	if kf.WriteOnly != (kf.Version == WriteOnlyKeyFileVersion) {
		return nil, fmt.Errorf("key file: version %d with write_only %v: %w", kf.Version, kf.WriteOnly, blob.ErrCorrupt)
	}
	if err := kf.KDF.validate(); err != nil {
		return nil, fmt.Errorf("key file: %v: %w", err, blob.ErrCorrupt)
	}
	if len(kf.Data) < chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead {
		return nil, fmt.Errorf("key file: sealed data truncated: %w", blob.ErrCorrupt)
	}
	return &kf, nil
}

// Open derives the key from password and opens the sealed keys. It returns
// an error wrapping blob.ErrWrongPassword if authentication fails, and one
// wrapping blob.ErrCorrupt if the keys do not match the version (a version
// 2 key with the content private key or without the log's signing key, a
// version 1 key with the latter).
func (kf *KeyFile) Open(password []byte) (*Keys, error) {
	aead, err := chacha20poly1305.NewX(kf.KDF.derive(password))
	if err != nil {
		return nil, err
	}
	n := chacha20poly1305.NonceSizeX
	plain, err := aead.Open(nil, kf.Data[:n], kf.Data[n:], kf.aad())
	if err != nil {
		return nil, blob.ErrWrongPassword
	}
	var k Keys
	if err := json.Unmarshal(plain, &k); err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if kf.WriteOnly != !k.CanRead() || kf.WriteOnly != (len(k.LogSigner) != 0) {
		return nil, fmt.Errorf("key file: version %d does not hold the keys it should: %w", kf.Version, blob.ErrCorrupt)
	}
	return &k, nil
}

package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"golang.org/x/crypto/curve25519"

	"github.com/kalaja/kalaja/internal/blob"
)

// Overhead is the number of bytes AES-256-GCM adds to a plaintext.
const Overhead = 16

// sealedVersion is the version byte of sealed objects.
const sealedVersion = 1

// Sealed object kinds: how the object key is obtained.
const (
	kindContent = 1 // key agreed with an ephemeral X25519 key and the content public key
	kindIndex   = 2 // the index key with a random nonce
)

// newGCM returns AES-256-GCM under key.
func newGCM(key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // key is always KeySize bytes
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	return g
}

// agree derives a 32-byte key from an X25519 agreement between scalar and
// point, bound to both public keys and to a label naming its use.
func agree(scalar, point, ephPub, recipient []byte, label string) ([]byte, error) {
	shared, err := curve25519.X25519(scalar, point)
	if err != nil {
		return nil, fmt.Errorf("key agreement: %w", blob.ErrCorrupt)
	}
	salt := append(append([]byte{}, ephPub...), recipient...)
	return hkdf.Key(sha256.New, shared, salt, "kalaja "+label+" v1", KeySize)
}

// ephemeral makes a fresh X25519 key pair and agrees a key with recipient.
func ephemeral(recipient [KeySize]byte, label string) (ephPub [KeySize]byte, key []byte, err error) {
	var priv [KeySize]byte
	if _, err := rand.Read(priv[:]); err != nil {
		return ephPub, nil, fmt.Errorf("generate ephemeral key: %w", err)
	}
	pub, err := curve25519.X25519(priv[:], curve25519.Basepoint)
	if err != nil {
		return ephPub, nil, err
	}
	copy(ephPub[:], pub)
	key, err = agree(priv[:], recipient[:], pub, recipient[:], label)
	return ephPub, key, err
}

// PackKey is the AEAD of one pack: every blob and the pack header are
// encrypted under it with nonces derived from their position (BlobNonce,
// HeaderNonce). A fresh PackKey is made for every pack, so nonces never repeat.
type PackKey struct{ cipher.AEAD }

// NewPackKey makes a fresh pack key for the content public key and returns it
// with the ephemeral public key that a reader needs to recover it.
func (k *Keys) NewPackKey() (*PackKey, [KeySize]byte, error) {
	eph, key, err := ephemeral(k.ContentPublic, "pack")
	if err != nil {
		return nil, eph, err
	}
	return &PackKey{newGCM(key)}, eph, nil
}

// OpenPackKey recovers a pack's key from its ephemeral public key. It needs
// the content private key.
func (k *Keys) OpenPackKey(eph [KeySize]byte) (*PackKey, error) {
	if !k.CanRead() {
		return nil, fmt.Errorf("open pack: %w", ErrWriteOnly)
	}
	key, err := agree(k.ContentPrivate[:], eph[:], eph[:], k.ContentPublic[:], "pack")
	if err != nil {
		return nil, err
	}
	return &PackKey{newGCM(key)}, nil
}

// BlobNonce returns the nonce of the blob at offset in its pack.
func BlobNonce(offset uint32) []byte {
	n := make([]byte, 12)
	binary.BigEndian.PutUint32(n[8:], offset)
	return n
}

// HeaderNonce is the nonce of a pack's header; no blob offset produces it.
func HeaderNonce() []byte {
	return []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}
}

// BlobAAD returns the additional data that binds a blob's ciphertext to its
// type and ID, so a blob moved or renamed in a pack does not decrypt.
func BlobAAD(h blob.Handle) []byte {
	aad := make([]byte, 1+blob.IDSize)
	aad[0] = byte(h.Type)
	copy(aad[1:], h.ID[:])
	return aad
}

// SealObject encrypts plaintext as a sealed object of the given type ("index",
// "snapshot", ...). Index objects use the index key, so write-only hosts can
// read them to deduplicate; every other type uses a fresh key agreed with the
// content public key. The result is self-describing: see docs/design.md.
func (k *Keys) SealObject(typ string, plaintext []byte) ([]byte, error) {
	var hdr []byte
	var aead cipher.AEAD
	nonce := make([]byte, 12)
	if typ == "index" {
		if _, err := rand.Read(nonce); err != nil {
			return nil, fmt.Errorf("seal %s: %w", typ, err)
		}
		hdr = append([]byte{sealedVersion, kindIndex}, nonce...)
		aead = newGCM(k.Index[:])
	} else {
		eph, key, err := ephemeral(k.ContentPublic, typ)
		if err != nil {
			return nil, fmt.Errorf("seal %s: %w", typ, err)
		}
		hdr = append([]byte{sealedVersion, kindContent}, eph[:]...)
		aead = newGCM(key)
	}
	out := make([]byte, len(hdr), len(hdr)+len(plaintext)+Overhead)
	copy(out, hdr)
	return aead.Seal(out, nonce, plaintext, append(hdr, typ...)), nil
}

// OpenObject decrypts a sealed object of the given type. It returns an error
// wrapping blob.ErrCorrupt if the bytes are malformed, of another type, or
// fail authentication, and blob.ErrUnsupported for an unknown version.
func (k *Keys) OpenObject(typ string, sealed []byte) ([]byte, error) {
	if len(sealed) < 2 {
		return nil, fmt.Errorf("open %s: %d bytes is too short: %w", typ, len(sealed), blob.ErrCorrupt)
	}
	if sealed[0] != sealedVersion {
		return nil, fmt.Errorf("open %s: version %d: %w", typ, sealed[0], blob.ErrUnsupported)
	}
	var hdrLen int
	var aead cipher.AEAD
	nonce := make([]byte, 12)
	switch {
	case sealed[1] == kindIndex && typ == "index":
		hdrLen = 2 + 12
		if len(sealed) < hdrLen+Overhead {
			return nil, fmt.Errorf("open %s: truncated: %w", typ, blob.ErrCorrupt)
		}
		copy(nonce, sealed[2:hdrLen])
		aead = newGCM(k.Index[:])
	case sealed[1] == kindContent && typ != "index":
		if !k.CanRead() {
			return nil, fmt.Errorf("open %s: %w", typ, ErrWriteOnly)
		}
		hdrLen = 2 + KeySize
		if len(sealed) < hdrLen+Overhead {
			return nil, fmt.Errorf("open %s: truncated: %w", typ, blob.ErrCorrupt)
		}
		eph := sealed[2:hdrLen]
		key, err := agree(k.ContentPrivate[:], eph, eph, k.ContentPublic[:], typ)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", typ, err)
		}
		aead = newGCM(key)
	default:
		return nil, fmt.Errorf("open %s: unexpected kind %d: %w", typ, sealed[1], blob.ErrCorrupt)
	}
	hdr := sealed[:hdrLen]
	plain, err := aead.Open(nil, nonce, sealed[hdrLen:], append(append([]byte{}, hdr...), typ...))
	if err != nil {
		return nil, fmt.Errorf("open %s: authentication failed: %w", typ, blob.ErrCorrupt)
	}
	return plain, nil
}

// localVersion is the first byte of a sealed local file (SealLocal).
const localVersion = 1

// localKey derives the key of a host's local files of the given label from
// the index key, which every key, write-only ones included, holds.
func (k *Keys) localKey(label string) cipher.AEAD {
	key, err := hkdf.Key(sha256.New, k.Index[:], k.RepoID[:], "kalaja local "+label+" v1", KeySize)
	if err != nil {
		panic(err) // HKDF-SHA256 gives 32 bytes without error
	}
	return newGCM(key)
}

// SealLocal encrypts a file a host keeps for itself (its parent cache),
// bound to label and name (additional data), under a key derived from the
// index key: version (1 byte) = 1, nonce (12 bytes, random), ciphertext
// and tag. The repository never holds such a file.
func (k *Keys) SealLocal(label, name string, plaintext []byte) ([]byte, error) {
	out := make([]byte, 1+12, 1+12+len(plaintext)+Overhead)
	out[0] = localVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("seal %s: %w", label, err)
	}
	return k.localKey(label).Seal(out, out[1:13], plaintext, []byte(label+"\x00"+name)), nil
}

// OpenLocal decrypts what SealLocal sealed with the same label and name.
// Bytes that are short, of another version, or fail authentication (a
// damaged file, another name's, another repository's) wrap blob.ErrCorrupt.
func (k *Keys) OpenLocal(label, name string, sealed []byte) ([]byte, error) {
	if len(sealed) < 1+12+Overhead || sealed[0] != localVersion {
		return nil, fmt.Errorf("open %s: not a sealed local file: %w", label, blob.ErrCorrupt)
	}
	plain, err := k.localKey(label).Open(nil, sealed[1:13], sealed[13:], []byte(label+"\x00"+name))
	if err != nil {
		return nil, fmt.Errorf("open %s: authentication failed: %w", label, blob.ErrCorrupt)
	}
	return plain, nil
}

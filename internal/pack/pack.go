// Package pack encodes and decodes pack files: many encrypted blobs followed
// by an encrypted header that lists them and a fixed-size trailer.
//
//	blob 0 ciphertext | blob 1 ciphertext | ... | header ciphertext | trailer
//
// The trailer is TrailerSize bytes: the 32-byte ephemeral X25519 public key
// from which the pack key is derived, the header ciphertext length (uint32,
// little endian), the magic "KLJP" and the format version byte. Each blob is
// AES-256-GCM under the pack key with nonce crypto.BlobNonce(offset) and
// additional data crypto.BlobAAD(handle); the header uses crypto.HeaderNonce.
// The header plaintext is a sequence of EntrySize-byte entries (see Entry).
// The package is pure: it reads only through the io.ReaderAt callers supply.
package pack

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/crypto"
)

// Version is the pack format version written in every trailer.
const Version = 1

// Format sizes.
const (
	EntrySize   = 1 + blob.IDSize + 4 + 4 + 4
	TrailerSize = crypto.KeySize + 4 + 4 + 1
	// MaxSize bounds a pack so that offsets fit in 32 bits.
	MaxSize = 1 << 31
)

var magic = []byte("KLJP")

// Entry locates one blob in a pack. In the header it is encoded as
// type (1 byte) | ID (32) | offset | length | raw length (uint32 little endian).
type Entry struct {
	Type   blob.Type
	ID     blob.ID
	Offset uint32 // of the ciphertext from the start of the pack
	Length uint32 // of the ciphertext, including the AEAD tag
	// RawLength is the length of the uncompressed plaintext when the blob is
	// stored zstd-compressed, and 0 when it is stored as is.
	RawLength uint32
}

// Handle returns the blob's type and ID.
func (e Entry) Handle() blob.Handle { return blob.Handle{Type: e.Type, ID: e.ID} }

// Open decrypts the blob's ciphertext (exactly e.Length bytes) into dst[:0].
// The result is still compressed when e.RawLength != 0.
func (e Entry) Open(key *crypto.PackKey, dst, ciphertext []byte) ([]byte, error) {
	if len(ciphertext) != int(e.Length) {
		return nil, fmt.Errorf("blob %v: %d bytes, want %d: %w", e.Handle(), len(ciphertext), e.Length, blob.ErrCorrupt)
	}
	plain, err := key.Open(dst[:0], crypto.BlobNonce(e.Offset), ciphertext, crypto.BlobAAD(e.Handle()))
	if err != nil {
		return nil, fmt.Errorf("blob %v: authentication failed: %w", e.Handle(), blob.ErrCorrupt)
	}
	return plain, nil
}

// Writer writes one pack to an io.Writer, blob by blob, so a pack never
// has to be held in memory. It is not safe for concurrent use.
type Writer struct {
	w       io.Writer
	key     *crypto.PackKey
	eph     [crypto.KeySize]byte
	buf     []byte // sealing buffer, reused
	size    int
	entries []Entry
}

// NewWriter starts a pack for keys, writing it to w.
func NewWriter(keys *crypto.Keys, w io.Writer) (*Writer, error) {
	key, eph, err := keys.NewPackKey()
	if err != nil {
		return nil, fmt.Errorf("new pack: %w", err)
	}
	return &Writer{w: w, key: key, eph: eph}, nil
}

// Add encrypts data as blob h and writes it. rawLength is the uncompressed
// length if data is compressed, else 0. It returns an error if the pack
// would exceed MaxSize or the write fails.
func (w *Writer) Add(h blob.Handle, data []byte, rawLength uint32) error {
	off := w.size
	if off+len(data)+crypto.Overhead > MaxSize {
		return fmt.Errorf("pack full at %d bytes", off)
	}
	w.buf = w.key.Seal(w.buf[:0], crypto.BlobNonce(uint32(off)), data, crypto.BlobAAD(h))
	if _, err := w.w.Write(w.buf); err != nil {
		return fmt.Errorf("write pack: %w", err)
	}
	w.size += len(w.buf)
	w.entries = append(w.entries, Entry{h.Type, h.ID, uint32(off), uint32(len(w.buf)), rawLength})
	return nil
}

// Ephemeral returns the public key a reader needs to derive the pack key;
// the index records it next to the pack's entries.
func (w *Writer) Ephemeral() [crypto.KeySize]byte { return w.eph }

// Size returns the bytes of blobs written so far.
func (w *Writer) Size() int { return w.size }

// Count returns the number of blobs written so far.
func (w *Writer) Count() int { return len(w.entries) }

// Finish writes the header and trailer and returns the pack's entries. The
// Writer must not be used afterwards.
func (w *Writer) Finish() ([]Entry, error) {
	b := SealTail(w.key, w.eph, w.entries)
	if _, err := w.w.Write(b); err != nil {
		return nil, fmt.Errorf("write pack header: %w", err)
	}
	w.size += len(b)
	return w.entries, nil
}

// SealTail returns the bytes that end a pack whose blobs are entries: the
// header sealed under key, then the trailer naming the ephemeral public key
// eph that key was agreed with (crypto.Keys.NewPackKey). Writer.Finish
// writes it; bench/indexgen writes it after a hole in place of the blobs.
func SealTail(key *crypto.PackKey, eph [crypto.KeySize]byte, entries []Entry) []byte {
	hdr := EncodeHeader(entries)
	b := key.Seal(hdr[:0:0], crypto.HeaderNonce(), hdr, magic)
	return appendTrailer(b, eph, uint32(len(b)))
}

func appendTrailer(b []byte, eph [crypto.KeySize]byte, hdrLen uint32) []byte {
	b = append(b, eph[:]...)
	b = binary.LittleEndian.AppendUint32(b, hdrLen)
	b = append(b, magic...)
	return append(b, Version)
}

// EncodeHeader returns the header plaintext for entries.
func EncodeHeader(entries []Entry) []byte {
	b := make([]byte, 0, len(entries)*EntrySize)
	for _, e := range entries {
		b = append(b, byte(e.Type))
		b = append(b, e.ID[:]...)
		b = binary.LittleEndian.AppendUint32(b, e.Offset)
		b = binary.LittleEndian.AppendUint32(b, e.Length)
		b = binary.LittleEndian.AppendUint32(b, e.RawLength)
	}
	return b
}

// DecodeHeader parses a header plaintext of a pack whose blobs occupy the
// first dataLen bytes. Entries must be contiguous from offset 0 and fill
// exactly dataLen bytes (not checked if dataLen < 0); any other layout is
// reported as blob.ErrCorrupt.
func DecodeHeader(b []byte, dataLen int64) ([]Entry, error) {
	if len(b)%EntrySize != 0 {
		return nil, fmt.Errorf("pack header of %d bytes is not a multiple of %d: %w", len(b), EntrySize, blob.ErrCorrupt)
	}
	entries := make([]Entry, 0, len(b)/EntrySize)
	var next int64
	for p := b; len(p) > 0; p = p[EntrySize:] {
		e := Entry{Type: blob.Type(p[0])}
		copy(e.ID[:], p[1:])
		e.Offset = binary.LittleEndian.Uint32(p[33:])
		e.Length = binary.LittleEndian.Uint32(p[37:])
		e.RawLength = binary.LittleEndian.Uint32(p[41:])
		switch {
		case !e.Type.Valid():
			return nil, fmt.Errorf("pack header entry %d: unknown blob type %d: %w", len(entries), p[0], blob.ErrCorrupt)
		case int64(e.Offset) != next:
			return nil, fmt.Errorf("pack header entry %d: offset %d, want %d: %w", len(entries), e.Offset, next, blob.ErrCorrupt)
		case e.Length < crypto.Overhead:
			return nil, fmt.Errorf("pack header entry %d: length %d too short: %w", len(entries), e.Length, blob.ErrCorrupt)
		}
		next += int64(e.Length)
		entries = append(entries, e)
	}
	if dataLen >= 0 && next != dataLen {
		return nil, fmt.Errorf("pack header describes %d bytes of blobs, pack holds %d: %w", next, dataLen, blob.ErrCorrupt)
	}
	return entries, nil
}

// Trailer is the decoded fixed-size end of a pack.
type Trailer struct {
	Ephemeral    [crypto.KeySize]byte
	HeaderLength uint32
}

// ParseTrailer decodes the last TrailerSize bytes of a pack.
func ParseTrailer(b []byte) (Trailer, error) {
	var t Trailer
	if len(b) != TrailerSize {
		return t, fmt.Errorf("pack trailer of %d bytes: %w", len(b), blob.ErrCorrupt)
	}
	if !bytes.Equal(b[36:40], magic) {
		return t, fmt.Errorf("pack trailer: bad magic: %w", blob.ErrCorrupt)
	}
	if b[40] != Version {
		return t, fmt.Errorf("pack version %d: %w", b[40], blob.ErrUnsupported)
	}
	copy(t.Ephemeral[:], b)
	t.HeaderLength = binary.LittleEndian.Uint32(b[32:])
	return t, nil
}

// Header is a pack's decoded header, with what its trailer gave.
type Header struct {
	Entries   []Entry
	Ephemeral [crypto.KeySize]byte // the trailer's key, recorded in the index
	Key       *crypto.PackKey
}

// ReadHeader reads and decrypts the header of the pack of the given size
// from r.
func ReadHeader(keys *crypto.Keys, r io.ReaderAt, size int64) (Header, error) {
	if size < TrailerSize+crypto.Overhead || size > MaxSize {
		return Header{}, fmt.Errorf("pack of %d bytes: %w", size, blob.ErrCorrupt)
	}
	tb := make([]byte, TrailerSize)
	if _, err := r.ReadAt(tb, size-TrailerSize); err != nil {
		return Header{}, fmt.Errorf("read pack trailer: %w", err)
	}
	t, err := ParseTrailer(tb)
	if err != nil {
		return Header{}, err
	}
	hdrLen := int64(t.HeaderLength)
	if hdrLen < crypto.Overhead || hdrLen > size-TrailerSize {
		return Header{}, fmt.Errorf("pack header length %d in a pack of %d bytes: %w", hdrLen, size, blob.ErrCorrupt)
	}
	hb := make([]byte, hdrLen)
	dataLen := size - TrailerSize - hdrLen
	if _, err := r.ReadAt(hb, dataLen); err != nil {
		return Header{}, fmt.Errorf("read pack header: %w", err)
	}
	key, err := keys.OpenPackKey(t.Ephemeral)
	if err != nil {
		return Header{}, err
	}
	plain, err := key.Open(hb[:0], crypto.HeaderNonce(), hb, magic)
	if err != nil {
		return Header{}, fmt.Errorf("pack header: authentication failed: %w", blob.ErrCorrupt)
	}
	entries, err := DecodeHeader(plain, dataLen)
	if err != nil {
		return Header{}, err
	}
	return Header{entries, t.Ephemeral, key}, nil
}

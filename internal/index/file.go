package index

import (
	"encoding/binary"
	"fmt"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/pack"
)

// FileVersion is the version of the index file encoding.
const FileVersion = 1

var fileMagic = []byte("KLJI")

// maxEntries bounds one pack's entry count when decoding, so a hostile count
// cannot make the decoder allocate without bound.
const maxEntries = pack.MaxSize / (pack.EntrySize + crypto.Overhead)

// Encode returns the plaintext of an index file listing packs. The format:
// magic "KLJI", version byte, uint32 pack count, then per pack its ID (32),
// ephemeral key (32), uint32 entry count and entries in the pack header
// encoding (pack.EncodeHeader). Integers are little endian.
func Encode(packs []Pack) []byte {
	b := append([]byte{}, fileMagic...)
	b = append(b, FileVersion)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(packs)))
	for _, p := range packs {
		b = append(b, p.ID[:]...)
		b = append(b, p.Ephemeral[:]...)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p.Entries)))
		b = append(b, pack.EncodeHeader(p.Entries)...)
	}
	return b
}

// Decode parses an index file plaintext. Malformed input is an error
// wrapping blob.ErrCorrupt; another version, blob.ErrUnsupported.
func Decode(b []byte) ([]Pack, error) {
	if len(b) < 9 || string(b[:4]) != string(fileMagic) {
		return nil, fmt.Errorf("index: bad magic: %w", blob.ErrCorrupt)
	}
	if b[4] != FileVersion {
		return nil, fmt.Errorf("index version %d: %w", b[4], blob.ErrUnsupported)
	}
	n := binary.LittleEndian.Uint32(b[5:])
	b = b[9:]
	const packHdr = 2*blob.IDSize + 4
	if uint64(n)*packHdr > uint64(len(b)) {
		return nil, fmt.Errorf("index: %d packs in %d bytes: %w", n, len(b), blob.ErrCorrupt)
	}
	packs := make([]Pack, 0, n)
	for i := range n {
		if len(b) < packHdr {
			return nil, fmt.Errorf("index: pack %d truncated: %w", i, blob.ErrCorrupt)
		}
		var p Pack
		copy(p.ID[:], b)
		copy(p.Ephemeral[:], b[32:])
		cnt := binary.LittleEndian.Uint32(b[64:])
		b = b[packHdr:]
		if cnt > maxEntries || uint64(cnt)*pack.EntrySize > uint64(len(b)) {
			return nil, fmt.Errorf("index: pack %s: %d entries do not fit: %w", p.ID.Short(), cnt, blob.ErrCorrupt)
		}
		size := int(cnt) * pack.EntrySize
		entries, err := pack.DecodeHeader(b[:size], -1)
		if err != nil {
			return nil, fmt.Errorf("index: pack %s: %w", p.ID.Short(), err)
		}
		p.Entries = entries
		b = b[size:]
		packs = append(packs, p)
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("index: %d trailing bytes: %w", len(b), blob.ErrCorrupt)
	}
	return packs, nil
}

package ledger

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/kalaja/kalaja/internal/blob"
)

// Height is the height of the log's hash tiles (256 hashes a tile), fixed
// in format v1.
const Height = 8

// Checkpoint is a tree head: the log's size and root hash, for one log
// named by its origin. Signed, it is a note whose text is
//
//	<origin>\n<size>\n<base64 root hash>\n
//
// (the C2SP tlog-checkpoint body without extension lines).
type Checkpoint struct {
	Origin string
	N      int64
	Hash   tlog.Hash
}

// Text returns the checkpoint's note text.
func (c Checkpoint) Text() string {
	return fmt.Sprintf("%s\n%d\n%s\n", c.Origin, c.N, base64.StdEncoding.EncodeToString(c.Hash[:]))
}

// Tree returns the checkpoint as a tlog tree.
func (c Checkpoint) Tree() tlog.Tree { return tlog.Tree{N: c.N, Hash: c.Hash} }

// String describes the checkpoint for messages.
func (c Checkpoint) String() string {
	return fmt.Sprintf("size %d root %s", c.N, base64.StdEncoding.EncodeToString(c.Hash[:])[:12])
}

// ParseCheckpoint decodes a checkpoint's note text.
func ParseCheckpoint(text string) (Checkpoint, error) {
	lines := strings.Split(text, "\n")
	if len(lines) != 4 || lines[3] != "" {
		return Checkpoint{}, fmt.Errorf("checkpoint text is not three lines: %w", blob.ErrCorrupt)
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != lines[1] {
		return Checkpoint{}, fmt.Errorf("checkpoint size %q: %w", lines[1], blob.ErrCorrupt)
	}
	// The decoder skips '\r' and '\n'; re-encoding finds them.
	h, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(h) != tlog.HashSize || base64.StdEncoding.EncodeToString(h) != lines[2] {
		return Checkpoint{}, fmt.Errorf("checkpoint hash %q: %w", lines[2], blob.ErrCorrupt)
	}
	c := Checkpoint{Origin: lines[0], N: n}
	copy(c.Hash[:], h)
	return c, nil
}

// ErrSignature reports a checkpoint that is not signed by the key it must
// be. It also matches blob.ErrTampered.
var ErrSignature error = tamperError("not signed by the expected key")

// OpenCheckpoint verifies a signed checkpoint against the log's verifier
// (and any others given, e.g. witnesses) and decodes it. The origin must be
// want. The returned note lists every signature that verified.
func OpenCheckpoint(msg []byte, want string, log note.Verifier, others ...note.Verifier) (Checkpoint, *note.Note, error) {
	n, err := note.Open(msg, note.VerifierList(append([]note.Verifier{log}, others...)...))
	if err != nil {
		var unknown *note.UnverifiedNoteError
		if errors.As(err, &unknown) {
			return Checkpoint{}, nil, fmt.Errorf("%w %s", ErrSignature, log.Name())
		}
		var bad *note.InvalidSignatureError
		if errors.As(err, &bad) {
			return Checkpoint{}, nil, fmt.Errorf("%w %s: invalid signature", ErrSignature, log.Name())
		}
		return Checkpoint{}, nil, fmt.Errorf("checkpoint note: %v: %w", err, blob.ErrCorrupt)
	}
	if !signedBy(n, log) {
		return Checkpoint{}, nil, fmt.Errorf("%w %s", ErrSignature, log.Name())
	}
	c, err := ParseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, nil, err
	}
	if c.Origin != want {
		return Checkpoint{}, nil, fmt.Errorf("checkpoint of log %q, want %q: %w", c.Origin, want, blob.ErrCorrupt)
	}
	return c, n, nil
}

// signedBy reports whether v's signature is among n's verified ones.
func signedBy(n *note.Note, v note.Verifier) bool {
	for _, s := range n.Sigs {
		if s.Name == v.Name() && s.Hash == v.KeyHash() {
			return true
		}
	}
	return false
}

// Origin returns the origin line of a repository's log.
func Origin(repoID blob.ID) string { return "kalaja.ledger/" + repoID.String() }

// KeyName returns the note key name of a repository's log signing key.
func KeyName(repoID blob.ID) string { return "kalaja-log-" + repoID.String()[:16] }

// GenerateKey makes a new Ed25519 note key pair named name, returning the
// private key and the public verifier key in note's text encodings.
func GenerateKey(name string) (skey, vkey string, err error) {
	return note.GenerateKey(rand.Reader, name)
}

// signText signs a checkpoint text.
func signText(c Checkpoint, signers ...note.Signer) ([]byte, error) {
	return note.Sign(&note.Note{Text: c.Text()}, signers...)
}

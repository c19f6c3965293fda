package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The code below checks a ledger export the way docs/design.md ("Checking
// an export by hand") tells an investigator to, with the standard library
// only: it shares no code with internal/ledger or golang.org/x/mod.

// exportDoc is the export's JSON, as the design document describes it.
type exportDoc struct {
	Format     string   `json:"format"`
	LogKey     string   `json:"log_key"`
	Checkpoint string   `json:"checkpoint"`
	Cosigned   []string `json:"cosigned"`
	Records    []struct {
		Index  int64    `json:"index"`
		Record string   `json:"record"`
		Proof  []string `json:"proof"`
	} `json:"records"`
}

// edKey is a parsed note verifier key: name+hash+base64(0x01 || key).
type edKey struct {
	name string
	hash [4]byte
	pub  ed25519.PublicKey
}

func parseKey(s string) (edKey, error) {
	parts := strings.SplitN(s, "+", 3)
	if len(parts) != 3 {
		return edKey{}, fmt.Errorf("key %q is not name+hash+key", s)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != 1 {
		return edKey{}, fmt.Errorf("key %q: not an Ed25519 key", s)
	}
	h, err := hex.DecodeString(parts[1])
	if err != nil || len(h) != 4 {
		return edKey{}, fmt.Errorf("key %q: bad hash", s)
	}
	k := edKey{name: parts[0], pub: ed25519.PublicKey(raw[1:])}
	copy(k.hash[:], h)
	// The key hash is the first 4 bytes of SHA-256(name "\n" 0x01 key).
	sum := sha256.Sum256(append([]byte(k.name+"\n"), raw...))
	if !bytes.Equal(sum[:4], k.hash[:]) {
		return edKey{}, fmt.Errorf("key %q: hash does not match the key", s)
	}
	return k, nil
}

// checkSigned returns the text of a signed note if it carries a valid
// signature by k. A note is text, a blank line, and lines
// "— name base64(hash[4] || signature[64])".
func checkSigned(msg string, k edKey) (string, error) {
	i := strings.LastIndex(msg, "\n\n")
	if i < 0 {
		return "", errors.New("note without signatures")
	}
	text, sigs := msg[:i+1], msg[i+2:]
	for _, line := range strings.Split(strings.TrimSuffix(sigs, "\n"), "\n") {
		name, b64, ok := strings.Cut(strings.TrimPrefix(line, "— "), " ")
		if !ok || name != k.name {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(raw) != 4+ed25519.SignatureSize || !bytes.Equal(raw[:4], k.hash[:]) {
			continue
		}
		if ed25519.Verify(k.pub, []byte(text), raw[4:]) {
			return text, nil
		}
	}
	return "", fmt.Errorf("no valid signature by %s", k.name)
}

func nodeHash(left, right []byte) []byte {
	h := sha256.Sum256(slices.Concat([]byte{1}, left, right))
	return h[:]
}

// checkInclusion verifies an RFC 9162 (section 2.1.3.2) inclusion proof
// of the leaf at index in a tree of size n with the given root.
func checkInclusion(leaf []byte, index, n int64, proof [][]byte, root []byte) error {
	if index >= n {
		return errors.New("index past the tree")
	}
	h := sha256.Sum256(append([]byte{0}, leaf...))
	r := h[:]
	fn, sn := index, n-1
	for _, p := range proof {
		if sn == 0 {
			return errors.New("proof too long")
		}
		if fn&1 == 1 || fn == sn {
			r = nodeHash(p, r)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = nodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 || !bytes.Equal(r, root) {
		return errors.New("proof does not lead to the checkpoint's root")
	}
	return nil
}

// checkExport checks every signature and proof of an export against the
// log key and witness keys the investigator got from their owners.
func checkExport(ex exportDoc, logKey string, witnessKeys ...string) error {
	if ex.Format != "kalaja-ledger-export/v1" {
		return fmt.Errorf("format %q", ex.Format)
	}
	lk, err := parseKey(logKey)
	if err != nil {
		return err
	}
	text, err := checkSigned(ex.Checkpoint, lk)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	lines := strings.Split(text, "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "kalaja.ledger/") {
		return fmt.Errorf("checkpoint text %q", text)
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		return err
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != 32 {
		return fmt.Errorf("checkpoint root %q", lines[2])
	}
	for _, wk := range witnessKeys {
		k, err := parseKey(wk)
		if err != nil {
			return err
		}
		ok := false
		for _, c := range ex.Cosigned {
			t, err := checkSigned(c, k)
			if err != nil || t != text {
				continue
			}
			if _, err := checkSigned(c, lk); err == nil {
				ok = true
			}
		}
		if !ok {
			return fmt.Errorf("no co-signature of the checkpoint by witness %s", k.name)
		}
	}
	for _, r := range ex.Records {
		proof := make([][]byte, len(r.Proof))
		for i, p := range r.Proof {
			if proof[i], err = base64.StdEncoding.DecodeString(p); err != nil || len(proof[i]) != 32 {
				return fmt.Errorf("record %d: proof hash %q", r.Index, p)
			}
		}
		if err := checkInclusion([]byte(r.Record), r.Index, n, proof, root); err != nil {
			return fmt.Errorf("record %d: %w", r.Index, err)
		}
	}
	return nil
}

// TestLedgerExportChecksIndependently exports the ledger after real backups
// and a witness's co-signature, checks it with the code above, and shows
// that the check fails on every kind of tampering with the export.
func TestLedgerExportChecksIndependently(t *testing.T) {
	f := newLedgerFixture(t)
	w := *f.e
	w.vars = append(slices.Clone(f.e.vars[:1]), "KALAJA_WITNESS_DIR="+filepath.Join(t.TempDir(), "witness"))
	wkey := strings.TrimSpace(w.must("witness", "init", "--name", "witness.example.org").stdout)
	logKey := strings.TrimSpace(f.e.must("ledger", "key").stdout)
	w.must("witness", "cosign", "--log-key", logKey)

	out := filepath.Join(t.TempDir(), "export.json")
	f.e.must("ledger", "export", "--output", out)
	b, err := os.ReadFile(out)
	must(t, err)
	var ex exportDoc
	must(t, json.Unmarshal(b, &ex))
	if err := checkExport(ex, logKey, wkey); err != nil {
		t.Fatalf("the export does not check: %v", err)
	}
	var ids []string
	for _, r := range ex.Records {
		var rec struct{ Kind, ID string }
		must(t, json.Unmarshal([]byte(r.Record), &rec))
		if rec.Kind != "snapshot" {
			t.Errorf("record %d of kind %q in a default export", r.Index, rec.Kind)
		}
		ids = append(ids, rec.ID)
	}
	if !slices.Equal(ids, f.snaps) {
		t.Errorf("exported snapshots %v, the backups made %v", ids, f.snaps)
	}

	var proof exportDoc
	must(t, json.Unmarshal([]byte(f.e.must("ledger", "proof", f.snaps[1][:8]).stdout), &proof))
	if err := checkExport(proof, logKey); err != nil || len(proof.Records) != 1 || !strings.Contains(proof.Records[0].Record, f.snaps[1]) {
		t.Errorf("ledger proof: %v, %+v", err, proof.Records)
	}

	otherKey := strings.TrimSpace(w.must("witness", "init", "--witness-dir", t.TempDir(), "--name", "kalaja-log-x").stdout)
	tampers := map[string]func(ex *exportDoc) []string{
		"record changed": func(ex *exportDoc) []string {
			ex.Records[1].Record = strings.Replace(ex.Records[1].Record, `"size":`, `"size":1`, 1)
			return []string{logKey}
		},
		"record moved": func(ex *exportDoc) []string {
			ex.Records[0].Index++
			return []string{logKey}
		},
		"proof hash changed": func(ex *exportDoc) []string {
			ex.Records[2].Proof[0] = ex.Records[1].Proof[0]
			return []string{logKey}
		},
		"checkpoint size changed": func(ex *exportDoc) []string {
			lines := strings.SplitN(ex.Checkpoint, "\n", 3)
			lines[1] += "0"
			ex.Checkpoint = strings.Join(lines, "\n")
			return []string{logKey}
		},
		"another log key": func(ex *exportDoc) []string { return []string{otherKey} },
		"witness missing": func(ex *exportDoc) []string {
			ex.Cosigned = nil
			return []string{logKey, wkey}
		},
	}
	for name, tamper := range tampers {
		var bad exportDoc
		must(t, json.Unmarshal(b, &bad))
		keys := tamper(&bad)
		if err := checkExport(bad, keys[0], keys[1:]...); err == nil {
			t.Errorf("%s: the check passed", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

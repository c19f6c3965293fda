package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/snapshot"
	"github.com/kalaja/kalaja/internal/store"
)

// Record kinds. A record names one stored object; verify checks that the
// object exists with the logged size and, where it reads it, the logged hash.
const (
	KindSnapshot = "snapshot"
	KindPack     = "pack"
	KindIndex    = "index"
)

// Removal record kinds: forget and prune log each object they are about to
// delete, before deleting it, so that verify reports it as removed rather
// than missing.
const (
	KindSnapshotRemoved = "snapshot-removed"
	KindPackRemoved     = "pack-removed"
	KindIndexRemoved    = "index-removed"
)

// kinds is the one map between record kinds and the types of the objects
// they name.
var kinds = []struct {
	kind, removed string
	t             store.FileType
}{
	{KindSnapshot, KindSnapshotRemoved, store.Snapshots},
	{KindPack, KindPackRemoved, store.Packs},
	{KindIndex, KindIndexRemoved, store.Index},
}

// KindOf returns the record kind that logs an object of type t:
// KindSnapshot, KindPack or KindIndex, or "" for a type the log does not
// record.
func KindOf(t store.FileType) string {
	for _, k := range kinds {
		if k.t == t {
			return k.kind
		}
	}
	return ""
}

// Removed returns the removal kind for an object kind ("" for others).
func Removed(kind string) string {
	for _, k := range kinds {
		if k.kind == kind {
			return k.removed
		}
	}
	return ""
}

// TypeOf returns the type of the objects a record kind names, and whether
// the kind is a removal kind. ok is false for a kind that names no object
// type (an unknown kind, which readers skip).
func TypeOf(kind string) (t store.FileType, removal, ok bool) {
	for _, k := range kinds {
		switch kind {
		case k.kind:
			return k.t, false, true
		case k.removed:
			return k.t, true, true
		}
	}
	return "", false, false
}

// Event record kinds: the incident timeline of the fleet. An event record
// names no object in the repository: its id is the SHA-256 of the event's
// bytes, which its writer keeps (the vault in its server directory, a host
// in its alert log), and its size their length, so that the ledger binds
// them without putting file or process names in the clear. Verify does not
// look for an object for them.
const (
	KindAlert    = "alert"    // the vault received an alert of a host's watcher
	KindSilent   = "silent"   // the vault stopped hearing a host's watcher's heartbeats
	KindBack     = "back"     // the vault hears a silent host's watcher again
	KindResolved = "resolved" // a host's recovery ended its incident
)

// events is the one table of event kinds, and of which of them only the
// vault (kalaja serve) may write.
var events = []struct {
	kind       string
	serverOnly bool
}{
	{KindAlert, true},
	{KindSilent, true},
	{KindBack, true},
	{KindResolved, false},
}

// IsEvent reports whether kind is an event kind: KindAlert, KindSilent,
// KindBack or KindResolved.
func IsEvent(kind string) bool {
	for _, e := range events {
		if e.kind == kind {
			return true
		}
	}
	return false
}

// ServerOnly reports whether records of kind are written only by the vault
// (KindAlert, KindSilent, KindBack): the server refuses a host's batch that
// holds one, so that no host can forge the vault's view of the fleet.
func ServerOnly(kind string) bool {
	for _, e := range events {
		if e.kind == kind {
			return e.serverOnly
		}
	}
	return false
}

// Records returns the records, at time now for host, of objects a client
// stored.
func Records(objs []store.Object, host string, now time.Time) []Record {
	recs := make([]Record, len(objs))
	for i, o := range objs {
		recs[i] = Record{Kind: KindOf(o.Type), ID: o.ID, Size: o.Size, Time: now, Host: host}
	}
	return recs
}

// Record versions: version 1 names an object; version 2 is a snapshot
// record that also carries the snapshot's health verdict. A record is
// version 2 exactly when it carries a verdict, so each record has one
// encoding.
const (
	RecordVersion       = 1
	RecordHealthVersion = 2
	// RecordRemovalVersion is a removal record bound to the
	// administrator's signed request (removal.go): a record is version 3
	// exactly when it carries Auth.
	RecordRemovalVersion = 3
)

// maxRecord bounds one record's encoding; real records are under 300 bytes.
const maxRecord = 4096

// Record is one leaf of the log: a stored object's kind, ID (the SHA-256 of
// its stored bytes, which is also its name), size, the time it was logged
// and the host that logged it (or, for an event kind, the event's kind, the
// SHA-256 and length of its kept bytes, the time its writer logged it and
// the host it concerns), and for a snapshot its health verdict (no
// names: the ledger is not encrypted). Its encoding is one line of JSON
// with the fields in this order (docs/design.md, "Ledger").
type Record struct {
	Version int       `json:"v"`
	Kind    string    `json:"kind"`
	ID      blob.ID   `json:"id"`
	Size    int64     `json:"size"`
	Time    time.Time `json:"time"`
	Host    string    `json:"host"`
	// Auth, on a removal record only, is the SHA-256 of the
	// administrator's signed request that deletes the object, stored as
	// ledger/removals/<Auth> (removal.go).
	Auth   blob.ID           `json:"auth,omitzero"`
	Health *snapshot.Verdict `json:"health,omitempty"`
}

// Marshal returns the record's encoding, the bytes the log hashes. It
// panics if r.Time in UTC is outside the years 0 to 9999, which JSON cannot
// encode; no record ParseRecord returns is.
func (r Record) Marshal() []byte {
	b, err := r.encode()
	if err != nil {
		panic(fmt.Sprintf("ledger: %v", err))
	}
	return b
}

// encode is Marshal, returning an error for a time JSON cannot encode.
func (r Record) encode() ([]byte, error) {
	r.Version = RecordVersion
	if r.Health != nil {
		r.Version = RecordHealthVersion
	}
	if !r.Auth.IsZero() {
		r.Version = RecordRemovalVersion
	}
	r.Time = r.Time.UTC()
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode record: %v: %w", err, blob.ErrCorrupt)
	}
	return b, nil
}

// ParseRecord decodes a record's encoding. It accepts only what Marshal
// produces for the same values, so that a record has one encoding.
func ParseRecord(b []byte) (Record, error) {
	var r Record
	if len(b) > maxRecord {
		return r, fmt.Errorf("record of %d bytes is too long: %w", len(b), blob.ErrCorrupt)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&r); err != nil {
		return Record{}, fmt.Errorf("record: %v: %w", err, blob.ErrCorrupt)
	}
	if r.Version != RecordVersion && r.Version != RecordHealthVersion && r.Version != RecordRemovalVersion {
		return Record{}, fmt.Errorf("record version %d: %w", r.Version, blob.ErrUnsupported)
	}
	if r.Health != nil {
		if r.Kind != KindSnapshot {
			return Record{}, fmt.Errorf("a %s record with a health verdict: %w", r.Kind, blob.ErrCorrupt)
		}
		if err := r.Health.Validate(); err != nil {
			return Record{}, fmt.Errorf("record health: %v: %w", err, blob.ErrCorrupt)
		}
	}
	if err := checkAuth(r); err != nil {
		return Record{}, err
	}
	// A time with an offset can be in range locally but not in UTC.
	if enc, err := r.encode(); err != nil || !bytes.Equal(enc, b) {
		return Record{}, fmt.Errorf("record is not in canonical form: %w", blob.ErrCorrupt)
	}
	if r.Kind == "" || r.Size < 0 {
		return Record{}, fmt.Errorf("record without kind or with negative size: %w", blob.ErrCorrupt)
	}
	return r, nil
}

// batch is the content of one entries object: count records starting at log
// index start, each on its own line after a header line.
type batch struct {
	start   int64
	records [][]byte
}

const batchMagic = "kalaja ledger batch v1"

// maxBatch bounds the records of one batch, so a hostile object cannot make
// a reader allocate without limit.
const maxBatch = 1 << 20

func (b batch) encode() []byte {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%s %d %d\n", batchMagic, b.start, len(b.records))
	for _, r := range b.records {
		buf.Write(r)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// ParseBatch decodes the entries object that should start at log index
// start (the object ledger/entries/<start>) as every reader does, and
// returns its records in order. Anything but the canonical encoding of 1
// to 2^20 valid records starting at start is an error wrapping
// blob.ErrCorrupt (blob.ErrUnsupported for a record version it does not
// know). The server uses it to look into a host's batch before storing it
// (ServerOnly).
func ParseBatch(data []byte, start int64) ([]Record, error) {
	b, err := parseBatch(data, start)
	if err != nil {
		return nil, err
	}
	recs := make([]Record, len(b.records))
	for i, raw := range b.records {
		if recs[i], err = ParseRecord(raw); err != nil {
			return nil, err
		}
	}
	return recs, nil
}

// parseBatch decodes an entries object that should start at log index start.
func parseBatch(data []byte, start int64) (batch, error) {
	line, rest, ok := bytes.Cut(data, []byte{'\n'})
	if !ok {
		return batch{}, fmt.Errorf("batch without header: %w", blob.ErrCorrupt)
	}
	n, err := parseBatchHeader(line, start)
	if err != nil {
		return batch{}, err
	}
	b := batch{start: start, records: make([][]byte, 0, min(n, int64(len(rest)/64+1)))}
	for len(rest) > 0 {
		var rec []byte
		rec, rest, ok = bytes.Cut(rest, []byte{'\n'})
		if !ok {
			return batch{}, fmt.Errorf("batch record %d is not terminated: %w", start+int64(len(b.records)), blob.ErrCorrupt)
		}
		if _, err := ParseRecord(rec); err != nil {
			return batch{}, fmt.Errorf("batch record %d: %w", start+int64(len(b.records)), err)
		}
		b.records = append(b.records, rec)
	}
	if int64(len(b.records)) != n {
		return batch{}, fmt.Errorf("batch holds %d records, its header says %d: %w", len(b.records), n, blob.ErrCorrupt)
	}
	return b, nil
}

// parseBatchHeader checks a batch's header line (without its line break)
// for the batch that starts at log index start, and returns the number of
// records it announces.
func parseBatchHeader(line []byte, start int64) (int64, error) {
	f := bytes.Fields(line)
	if len(f) != 6 || string(bytes.Join(f[:4], []byte(" "))) != batchMagic {
		return 0, fmt.Errorf("batch header %q: %w", truncate(line), blob.ErrCorrupt)
	}
	s, err1 := strconv.ParseInt(string(f[4]), 10, 64)
	n, err2 := strconv.ParseInt(string(f[5]), 10, 64)
	if err1 != nil || err2 != nil || n <= 0 || n > maxBatch {
		return 0, fmt.Errorf("batch header %q: %w", truncate(line), blob.ErrCorrupt)
	}
	if string(line) != fmt.Sprintf("%s %d %d", batchMagic, s, n) {
		return 0, fmt.Errorf("batch header %q is not in canonical form: %w", truncate(line), blob.ErrCorrupt)
	}
	if s != start {
		return 0, fmt.Errorf("batch says it starts at record %d, its name says %d: %w", s, start, blob.ErrCorrupt)
	}
	return n, nil
}

// BatchChecker checks an entries object as it streams in, by the rules of
// ParseBatch, holding at most one record's bytes at a time: the server
// checks a host's batch with it before storing it, so that a host can
// neither store a batch that every reader would refuse (which would stop
// every later append) nor write a record of a kind only the server writes.
// Write never fails, so that the checker can read a copy of a body that
// goes elsewhere; Err and ServerOnly say what it found once the body has
// been written whole. It is not safe for concurrent use.
type BatchChecker struct {
	name     string
	start    int64
	line     []byte
	long     bool  // the current line is longer than any record
	n, count int64 // records announced, and seen
	header   bool
	err      error
	server   string
}

// NewBatchChecker returns a checker of the entries object named name
// (ledger/entries/<name>).
func NewBatchChecker(name string) *BatchChecker {
	c := &BatchChecker{name: name}
	var ok bool
	if c.start, ok = parseIndexName(name); !ok {
		c.err = fmt.Errorf("entries name %q: %w", truncate([]byte(name)), blob.ErrCorrupt)
	}
	return c
}

// Write reads the next bytes of the batch. It always consumes all of p.
func (c *BatchChecker) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && c.err == nil {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if !c.long && len(c.line)+len(chunk) <= maxRecord {
			c.line = append(c.line, chunk...)
		} else {
			c.long, c.line = true, c.line[:0]
		}
		if i < 0 {
			break
		}
		c.endLine()
		p = p[i+1:]
	}
	return n, nil
}

// endLine checks the line just ended.
func (c *BatchChecker) endLine() {
	defer func() { c.line, c.long = c.line[:0], false }()
	if !c.header {
		c.header = true
		if c.long {
			c.err = fmt.Errorf("batch header too long: %w", blob.ErrCorrupt)
			return
		}
		c.n, c.err = parseBatchHeader(c.line, c.start)
		return
	}
	at := c.start + c.count
	c.count++
	if c.count > c.n {
		c.err = fmt.Errorf("batch holds more records than its header's %d: %w", c.n, blob.ErrCorrupt)
		return
	}
	if c.long {
		c.err = fmt.Errorf("batch record %d is too long: %w", at, blob.ErrCorrupt)
		return
	}
	r, err := ParseRecord(c.line)
	if err != nil {
		c.err = fmt.Errorf("batch record %d: %w", at, err)
		return
	}
	if c.server == "" && ServerOnly(r.Kind) {
		c.server = r.Kind
	}
}

// Err returns why the batch written so far, taken as the whole object, is
// not one ParseBatch accepts (wrapping blob.ErrCorrupt, or
// blob.ErrUnsupported for a record version it does not know), or nil.
func (c *BatchChecker) Err() error {
	switch {
	case c.err != nil:
		return c.err
	case !c.header:
		return fmt.Errorf("batch without header: %w", blob.ErrCorrupt)
	case len(c.line) > 0 || c.long:
		return fmt.Errorf("batch record %d is not terminated: %w", c.start+c.count, blob.ErrCorrupt)
	case c.count != c.n:
		return fmt.Errorf("batch holds %d records, its header says %d: %w", c.count, c.n, blob.ErrCorrupt)
	}
	return nil
}

// ServerOnly returns the kind of the first record written so far whose
// kind only the server writes (ServerOnly), or "".
func (c *BatchChecker) ServerOnly() string { return c.server }

func truncate(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

// entryName is the name of the entries object that starts at log index n:
// 20 decimal digits, so names sort in log order.
func entryName(n int64) string { return fmt.Sprintf("%020d", n) }

// parseIndexName parses an entryName or checkpoint name.
func parseIndexName(name string) (int64, bool) {
	if len(name) != 20 {
		return 0, false
	}
	n, err := strconv.ParseInt(name, 10, 64)
	return n, err == nil && n >= 0 && entryName(n) == name
}

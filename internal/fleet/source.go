package fleet

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kalaja/kalaja/internal/atomicfile"
	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/store"
)

// Source is the repository the vault serves, as the state reads it.
type Source struct {
	// Store is the repository's storage: its listings give the storage's
	// size and the ledger's checkpoints and co-signatures.
	Store store.Store
	// OpenLog opens the repository's ledger read-only; it returns an error
	// wrapping blob.ErrNotFound while the repository has no ledger yet.
	// The state calls it until it succeeds, then keeps the log.
	OpenLog func(ctx context.Context) (*ledger.Log, error)
	// Free returns the bytes free on the storage, or -1 if unknown (S3).
	Free func() int64
}

// WithSource makes Tick read the ledger's new snapshot records and Survey
// measure the storage and verify the ledger.
func WithSource(src *Source) Option { return func(o *options) { o.source = src } }

// LedgerLogger is the production Logger: it appends records to the ledger
// open returns, unsigned (ledger.Log.AppendUnsigned).
type LedgerLogger func(ctx context.Context) (*ledger.Log, error)

// Log implements Logger.
func (open LedgerLogger) Log(ctx context.Context, recs []ledger.Record) error {
	l, err := open(ctx)
	if err != nil {
		return err
	}
	_, err = l.AppendUnsigned(ctx, recs)
	return err
}

// ledgerView is what the state read of the ledger.
type ledgerView struct {
	log        *ledger.Log
	end        int64 // records read
	checkpoint ledger.Checkpoint
	cpTime     time.Time
	witnesses  []Witness
	verify     Verify
}

// storageView is the storage's history: daily samples, oldest first.
type storageView struct {
	samples []sample
	free    int64
	objects int64
}

type sample struct {
	day   time.Time // midnight UTC
	bytes int64
}

// maxSamples bounds the storage history (days).
const maxSamples = 400

// LedgerStatus is the ledger as the vault last saw it.
type LedgerStatus struct {
	Size           int64     // records
	Checkpoint     int64     // size of the newest signed checkpoint
	CheckpointTime time.Time // the store's stamp of that checkpoint (zero if unknown)
	Witnesses      []Witness
	LastVerify     Verify
}

// Witness is a witness's newest co-signature.
type Witness struct {
	Name string        // the witness's key name, or its key hash if the note cannot be read
	Size int64         // the size of the checkpoint it co-signed
	Age  time.Duration // since the store's stamp of the co-signature
}

// Verify is the result of the last verify the server ran.
type Verify struct {
	Time     time.Time // zero: none yet
	OK       bool
	Problems int
	Error    string // why verify could not run, if it could not
}

// Storage is the repository's size and its growth.
type Storage struct {
	Bytes        int64
	Objects      int64
	GrowthPerDay int64     // bytes, over the samples of the last 30 days; 0 with fewer than two
	Free         int64     // bytes, -1 unknown
	FullBy       time.Time // when Free runs out at GrowthPerDay; zero if unknown or not growing
}

// openLog returns the ledger, opening it on first success.
func (s *State) openLog(ctx context.Context) (*ledger.Log, error) {
	s.mu.Lock()
	l := s.ledger.log
	s.mu.Unlock()
	if l != nil || s.o.source == nil || s.o.source.OpenLog == nil {
		return l, nil
	}
	l, err := s.o.source.OpenLog(ctx)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.ledger.log = l
	s.mu.Unlock()
	return l, nil
}

// readLedger reads the records appended since the last read: it keeps the
// snapshots (and removals of snapshots) among them, and forgets pending
// records it finds there (appended by a flush that could not forget them).
func (s *State) readLedger(ctx context.Context) error {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	l, err := s.openLog(ctx)
	if err != nil || l == nil {
		return err
	}
	s.mu.Lock()
	start := s.ledger.end
	s.mu.Unlock()
	recs, end, err := l.RecordsFrom(ctx, start)
	if err != nil {
		return fmt.Errorf("read the ledger from record %d: %w", start, err)
	}
	logged := map[string]map[blob.ID]bool{}
	s.mu.Lock()
	for _, r := range recs {
		switch {
		case r.Kind == ledger.KindSnapshot:
			si := SnapshotInfo{ID: r.ID.String(), Time: r.Time, Size: r.Size}
			if r.Health != nil {
				si.Health = string(r.Health.Status)
				for _, re := range r.Health.Reasons {
					si.Reasons = append(si.Reasons, string(re.Signal))
				}
			}
			list := append(s.snaps[r.Host], si)
			if len(list) > MaxSnapshots {
				list = slices.Delete(list, 0, len(list)-MaxSnapshots)
			}
			s.snaps[r.Host] = list
		case r.Kind == ledger.KindSnapshotRemoved:
			id := r.ID.String()
			for h, list := range s.snaps {
				s.snaps[h] = slices.DeleteFunc(list, func(si SnapshotInfo) bool { return si.ID == id })
			}
		case ledger.ServerOnly(r.Kind):
			if h := s.hosts[r.Host]; h != nil && slices.ContainsFunc(h.Pending, func(p ledger.Record) bool { return p.ID == r.ID }) {
				if logged[r.Host] == nil {
					logged[r.Host] = map[blob.ID]bool{}
				}
				logged[r.Host][r.ID] = true
			}
		}
	}
	s.ledger.end = end
	s.mu.Unlock()
	return s.forget(logged)
}

// Survey measures the storage (one sample a day is kept) and reads the
// ledger's checkpoints and co-signatures; with verify it also verifies the
// ledger, if the repository has one, without the password
// (ledger.Log.Verify), and keeps the result. Samples and the result are
// persisted (survey.json, version 1). The server calls it every hour or
// so; it lists every object.
func (s *State) Survey(ctx context.Context, verify bool) error {
	src := s.o.source
	if src == nil {
		return nil
	}
	var errs []error
	var bytes, objects int64
	for _, t := range append([]store.FileType{}, store.Listable...) {
		err := src.Store.List(ctx, t, func(fi store.FileInfo) error {
			bytes += fi.Size
			objects++
			return nil
		})
		if err != nil {
			return fmt.Errorf("survey the storage: %w", err)
		}
	}
	free := int64(-1)
	if src.Free != nil {
		free = src.Free()
	}
	now := s.clock()
	s.mu.Lock()
	s.disk.addSample(now, bytes)
	s.disk.free, s.disk.objects = free, objects
	s.mu.Unlock()
	cp, cpTime, ws, err := s.ledgerObjects(ctx, now)
	if err != nil {
		errs = append(errs, err)
	}
	s.mu.Lock()
	s.ledger.checkpoint, s.ledger.cpTime, s.ledger.witnesses = cp, cpTime, ws
	s.mu.Unlock()
	if l, err := s.openLog(ctx); verify && (err != nil || l != nil) { // no ledger yet: nothing to verify
		v := Verify{Time: now}
		switch {
		case err != nil:
			v.Error = err.Error()
		default:
			rep, err := l.Verify(ctx, ledger.VerifyOptions{})
			if err != nil {
				v.Error = err.Error()
			} else {
				v.OK, v.Problems = len(rep.Problems) == 0, len(rep.Problems)
				for _, p := range rep.Problems {
					s.o.slog.Warn("fleet: ledger verify", "problem", p.Kind, "object", p.Object, "message", p.Message)
				}
			}
		}
		s.mu.Lock()
		s.ledger.verify = v
		s.mu.Unlock()
	}
	s.mu.Lock()
	if err := s.saveSurvey(); err != nil {
		errs = append(errs, err)
	}
	s.mu.Unlock()
	return errors.Join(errs...)
}

// ledgerObjects reads the newest valid checkpoint with its stamp and the
// newest co-signature of each witness.
func (s *State) ledgerObjects(ctx context.Context, now time.Time) (ledger.Checkpoint, time.Time, []Witness, error) {
	l, err := s.openLog(ctx)
	if err != nil || l == nil {
		return ledger.Checkpoint{}, time.Time{}, nil, err
	}
	cp, _, err := l.Latest(ctx)
	if err != nil {
		return ledger.Checkpoint{}, time.Time{}, nil, fmt.Errorf("ledger status: %w", err)
	}
	var cpTime time.Time
	if cp.N > 0 {
		fi, err := s.o.source.Store.Stat(ctx, store.Handle{Type: store.LedgerCheckpoints, Name: fmt.Sprintf("%020d", cp.N)})
		if err == nil {
			cpTime = fi.Stamp
		}
	}
	newest := map[string]store.FileInfo{} // by key hash
	sizes := map[string]int64{}
	err = s.o.source.Store.List(ctx, store.LedgerWitness, func(fi store.FileInfo) error {
		size, hash, ok := strings.Cut(fi.Name, ".")
		var n int64
		if _, err := fmt.Sscanf(size, "%d", &n); !ok || err != nil {
			return nil
		}
		if n >= sizes[hash] {
			sizes[hash], newest[hash] = n, fi
		}
		return nil
	})
	if err != nil {
		return cp, cpTime, nil, fmt.Errorf("ledger status: %w", err)
	}
	var ws []Witness
	for hash, fi := range newest {
		w := Witness{Name: hash, Size: sizes[hash]}
		if !fi.Stamp.IsZero() {
			w.Age = now.Sub(fi.Stamp)
		}
		if b, err := s.o.source.Store.Load(ctx, store.Handle{Type: store.LedgerWitness, Name: fi.Name}); err == nil {
			w.Name = signerName(string(b), hash, w.Name)
		}
		ws = append(ws, w)
	}
	slices.SortFunc(ws, func(a, b Witness) int { return strings.Compare(a.Name, b.Name) })
	return cp, cpTime, ws, nil
}

// signerName returns the name on the signature line of a note whose key
// hash is hash (8 hex digits), read without checking the signature (the
// name is only shown), or def.
func signerName(note, hash, def string) string {
	for _, line := range strings.Split(note, "\n") {
		name, sig, ok := strings.Cut(strings.TrimPrefix(line, "— "), " ")
		if !ok || !strings.HasPrefix(line, "— ") {
			continue
		}
		if b, err := decodeKeyHash(sig); err == nil && b == hash && len(name) <= 128 {
			return name
		}
	}
	return def
}

// addSample records the storage's size at now, one sample per UTC day
// (the last of the day).
func (d *storageView) addSample(now time.Time, bytes int64) {
	day := now.UTC().Truncate(24 * time.Hour)
	if n := len(d.samples); n > 0 && d.samples[n-1].day.Equal(day) {
		d.samples[n-1].bytes = bytes
		return
	}
	d.samples = append(d.samples, sample{day, bytes})
	if len(d.samples) > maxSamples {
		d.samples = slices.Delete(d.samples, 0, len(d.samples)-maxSamples)
	}
}

// Storage returns the repository's size at the last Survey, its growth per
// day over the last 30 days of samples, and when the free space runs out
// at that growth.
func (s *State) Storage() Storage {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.disk
	st := Storage{Objects: d.objects, Free: d.free}
	if len(d.samples) == 0 {
		return st
	}
	last := d.samples[len(d.samples)-1]
	st.Bytes = last.bytes
	first := last
	for i := len(d.samples) - 1; i >= 0 && last.day.Sub(d.samples[i].day) <= 30*24*time.Hour; i-- {
		first = d.samples[i]
	}
	if days := int64(last.day.Sub(first.day) / (24 * time.Hour)); days > 0 {
		st.GrowthPerDay = (last.bytes - first.bytes) / days
	}
	if st.Free >= 0 && st.GrowthPerDay > 0 {
		st.FullBy = last.day.Add(time.Duration(st.Free/st.GrowthPerDay) * 24 * time.Hour)
	}
	return st
}

// Ledger returns the ledger's status at the last Tick and Survey.
func (s *State) Ledger() LedgerStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return LedgerStatus{Size: s.ledger.end, Checkpoint: s.ledger.checkpoint.N, CheckpointTime: s.ledger.cpTime,
		Witnesses: slices.Clone(s.ledger.witnesses), LastVerify: s.ledger.verify}
}

// decodeKeyHash returns the key hash (8 hex digits) at the start of a note
// signature in base64.
func decodeKeyHash(sig string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(b) < 4 {
		return "", errors.New("not a note signature")
	}
	return hex.EncodeToString(b[:4]), nil
}

// SurveyVersion is the version of the survey file, survey.json: the
// storage's daily samples and the last verify.
const SurveyVersion = 1

type surveyFile struct {
	Version int          `json:"v"`
	Samples []fileSample `json:"samples"`
	Verify  Verify       `json:"verify"`
}

type fileSample struct {
	Day   time.Time `json:"day"`
	Bytes int64     `json:"bytes"`
}

// saveSurvey persists the storage samples and the last verify. s.mu is held.
func (s *State) saveSurvey() error {
	f := surveyFile{Version: SurveyVersion, Verify: s.ledger.verify}
	for _, sm := range s.disk.samples {
		f.Samples = append(f.Samples, fileSample{sm.day, sm.bytes})
	}
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode the survey: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(s.dir, "survey.json"), b, 0o600); err != nil {
		return fmt.Errorf("persist the survey: %w", err)
	}
	return nil
}

// loadSurvey reads the storage samples and the last verify, if any.
func (s *State) loadSurvey() error {
	b, err := os.ReadFile(filepath.Join(s.dir, "survey.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the survey: %w", err)
	}
	var f surveyFile
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("survey: %v: %w", err, blob.ErrCorrupt)
	}
	if f.Version != SurveyVersion {
		return fmt.Errorf("survey version %d, want %d: %w", f.Version, SurveyVersion, blob.ErrUnsupported)
	}
	for _, sm := range f.Samples {
		s.disk.samples = append(s.disk.samples, sample{sm.Day, sm.Bytes})
	}
	s.ledger.verify = f.Verify
	return nil
}

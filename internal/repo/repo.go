// Package repo is a Kalaja repository over a store: it opens keys, keeps the
// blob index, saves blobs into packs (deduplicated, compressed, encrypted),
// loads them back, and reads and writes snapshots and trees.
//
// Write ordering (docs/design.md, "Writing: crash safety and concurrency"):
// packs are stored before the index files that list them, and both before a
// snapshot that uses them.
// Nothing is rewritten: every object's name is the SHA-256 of its bytes.
// Adding data needs no lock: concurrent writers only ever create new names.
package repo

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/mod/sumdb/note"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/chunker"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/index"
	"github.com/kalaja/kalaja/internal/store"
)

// ConfigVersion is the repository format version this build writes. It
// reads this version and version 1, which named blobs by HMAC-SHA256.
const ConfigVersion = 2

// Config is the repository's public configuration, stored unencrypted as
// JSON in the object "config" so that a version mismatch is reported before
// any password is asked for.
type Config struct {
	Version int       `json:"version"`
	ID      blob.ID   `json:"id"`
	Created time.Time `json:"created"`
	Chunker struct {
		Min int `json:"min"`
		Avg int `json:"avg"`
		Max int `json:"max"`
	} `json:"chunker"`
	// BlobID names the function of blob IDs: "blake3" in version 2,
	// absent in version 1 (HMAC-SHA256).
	BlobID crypto.IDFunc `json:"blob_id,omitempty"`
}

// IDFunc returns the function that names the repository's blobs.
func (c Config) IDFunc() crypto.IDFunc {
	if c.Version == 1 {
		return crypto.HMACSHA256
	}
	return c.BlobID
}

// ChunkerParams returns the chunk sizes the repository was created with.
func (c Config) ChunkerParams() chunker.Params {
	return chunker.Params{Min: c.Chunker.Min, Avg: c.Chunker.Avg, Max: c.Chunker.Max}
}

// Repository is an open repository. Its methods are safe for concurrent use.
type Repository struct {
	st      store.Store
	keys    *crypto.Keys
	cfg     Config
	keyName string
	idx     *index.Index

	enc *zstd.Encoder
	dec *zstd.Decoder

	packKeys packKeyCache
	ids      sync.Pool // of *crypto.IDHasher, for readers

	prefetchedMu sync.Mutex
	prefetched   map[blob.ID]bool // tree packs asked for (prefetchTrees)
	w            *writer

	// uses and admin watch for a prune running meanwhile (pruned.go).
	uses  *uses
	admin note.Verifier

	writtenMu sync.Mutex
	written   []store.Object // see Written

	indexedMu sync.Mutex
	indexed   map[string]bool // the index files read into idx (RefreshIndex)

	cacheDir string // root of the local caches, "" for none (SetCacheDir)
}

// LoadConfig reads and checks the repository configuration.
func LoadConfig(ctx context.Context, st store.Store) (Config, error) {
	b, err := st.Load(ctx, store.Handle{Type: store.Config})
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	cfg, err := ParseConfig(b)
	if err != nil {
		return cfg, fmt.Errorf("repository %s: %w", st.Location(), err)
	}
	return cfg, nil
}

// ParseConfig decodes and checks a config object: malformed bytes or bad
// chunker parameters wrap blob.ErrCorrupt, another version
// blob.ErrUnsupported.
func ParseConfig(b []byte) (Config, error) {
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return cfg, fmt.Errorf("config: %v: %w", err, blob.ErrCorrupt)
	}
	switch {
	case cfg.Version != 1 && cfg.Version != ConfigVersion:
		return cfg, fmt.Errorf("format version %d, this kalaja reads versions 1 and %d: %w", cfg.Version, ConfigVersion, blob.ErrUnsupported)
	case cfg.Version == 1 && cfg.BlobID != "":
		return cfg, fmt.Errorf("config: version 1 has no blob_id: %w", blob.ErrCorrupt)
	case cfg.Version == 2 && cfg.BlobID != crypto.BLAKE3:
		return cfg, fmt.Errorf("config: blob_id %q, want %q: %w", cfg.BlobID, crypto.BLAKE3, blob.ErrCorrupt)
	}
	if err := cfg.ChunkerParams().Validate(); err != nil {
		return cfg, fmt.Errorf("config: %v: %w", err, blob.ErrCorrupt)
	}
	return cfg, nil
}

// Init creates a repository in an empty store: a key file sealed with
// password, then the config (whose presence marks the repository as made).
func Init(ctx context.Context, st store.Store, password []byte, kdf crypto.KDFParams) (*Repository, error) {
	cfg := Config{Version: ConfigVersion, Created: time.Now().UTC(), BlobID: crypto.BLAKE3}
	if _, err := rand.Read(cfg.ID[:]); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	p := chunker.DefaultParams()
	cfg.Chunker.Min, cfg.Chunker.Avg, cfg.Chunker.Max = p.Min, p.Avg, p.Max
	keys, err := crypto.NewKeys(cfg.ID)
	if err != nil {
		return nil, err
	}
	r, err := newRepository(st, keys, cfg)
	if err != nil {
		return nil, err
	}
	if r.keyName, err = r.AddKey(ctx, password, kdf); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := st.Save(ctx, store.Handle{Type: store.Config}, b); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	return r, nil
}

// Open opens the repository in st with password, trying every key file. It
// returns an error wrapping blob.ErrWrongPassword if none opens. The index is
// not loaded: call LoadIndex before reading or writing blobs.
func Open(ctx context.Context, st store.Store, password []byte) (*Repository, error) {
	return OpenHint(ctx, st, password, "")
}

// OpenHint is Open trying key file hint first, if it exists: each key file
// tried costs a key derivation (3.2), and a repository with a key per host
// has many; KeyName tells the caller which key opened, to hint next time.
func OpenHint(ctx context.Context, st store.Store, password []byte, hint string) (*Repository, error) {
	cfg, err := LoadConfig(ctx, st)
	if err != nil {
		return nil, err
	}
	var names []string
	if err := st.List(ctx, store.Keys, func(fi store.FileInfo) error {
		if fi.Name == hint {
			names = append([]string{fi.Name}, names...)
		} else {
			names = append(names, fi.Name)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	var errs []error
	for _, name := range names {
		keys, err := openKey(ctx, st, name, password)
		if err != nil {
			if !errors.Is(err, blob.ErrWrongPassword) {
				errs = append(errs, err)
			}
			continue
		}
		if keys.RepoID != cfg.ID {
			errs = append(errs, fmt.Errorf("key %s belongs to another repository: %w", shortName(name), blob.ErrCorrupt))
			continue
		}
		r, err := newRepository(st, keys, cfg)
		if err != nil {
			return nil, err
		}
		r.keyName = name
		return r, nil
	}
	return nil, errors.Join(append([]error{fmt.Errorf("open %s: %w", st.Location(), blob.ErrWrongPassword)}, errs...)...)
}

func openKey(ctx context.Context, st store.Store, name string, password []byte) (*crypto.Keys, error) {
	b, err := st.Load(ctx, store.Handle{Type: store.Keys, Name: name})
	if err != nil {
		return nil, err
	}
	kf, err := crypto.ParseKeyFile(b)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", shortName(name), err)
	}
	return kf.Open(password)
}

func newRepository(st store.Store, keys *crypto.Keys, cfg Config) (*Repository, error) {
	enc, err := newEncoder(zstd.SpeedDefault, cfg.ChunkerParams().Max)
	if err != nil {
		return nil, err
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(64<<20))
	if err != nil {
		return nil, err
	}
	r := &Repository{st: st, keys: keys, cfg: cfg, idx: index.New(), enc: enc, dec: dec, prefetched: map[blob.ID]bool{}, indexed: map[string]bool{}}
	r.ids.New = func() any { return r.NewIDHasher() }
	return r, nil
}

// Config returns the repository configuration.
func (r *Repository) Config() Config { return r.cfg }

// Keys returns the open key material. Callers must not log it.
func (r *Repository) Keys() *crypto.Keys { return r.keys }

// NewIDHasher returns a hasher of the repository's blob IDs.
func (r *Repository) NewIDHasher() *crypto.IDHasher { return r.keys.NewIDHasher(r.cfg.IDFunc()) }

// RequireRead returns nil if the open key reads content (snapshots, trees,
// file data), else an error wrapping crypto.ErrWriteOnly that names the
// key file.
func (r *Repository) RequireRead() error {
	if r.keys.CanRead() {
		return nil
	}
	return fmt.Errorf("key %s: %w", shortName(r.keyName), crypto.ErrWriteOnly)
}

// Store returns the underlying store.
func (r *Repository) Store() store.Store { return r.st }

// Index returns the in-memory blob index.
func (r *Repository) Index() *index.Index { return r.idx }

// SetIndex replaces the in-memory blob index; blobs it does not hold are
// saved again. Prune uses it to copy the used blobs of packs it is about to
// delete. It must not be called while writes are under way. The next
// RefreshIndex reads every index file into x.
func (r *Repository) SetIndex(x *index.Index) {
	r.idx = x
	r.indexedMu.Lock()
	clear(r.indexed)
	r.indexedMu.Unlock()
}

// SetCacheDir has LoadIndex keep the index in a cache under root, in
// IndexCacheDir; "" (the default) holds it in memory. It must be called
// before LoadIndex.
func (r *Repository) SetCacheDir(root string) { r.cacheDir = root }

// IndexCacheDir returns the directory of the repository's index cache,
// <root>/<repository ID>/index, or "" without a cache. Blob IDs are keyed
// hashes and pack IDs hashes of ciphertext, so the cache reveals no
// content; it is made private to the user all the same (0700, 0600).
func (r *Repository) IndexCacheDir() string {
	if r.cacheDir == "" {
		return ""
	}
	return filepath.Join(r.CacheDir(), "index")
}

// CacheDir returns the directory of the repository's local caches,
// <root>/<repository ID>, or "" without a cache (SetCacheDir).
func (r *Repository) CacheDir() string {
	if r.cacheDir == "" {
		return ""
	}
	return filepath.Join(r.cacheDir, r.cfg.ID.String())
}

// KeyName returns the name of the key file that opened the repository.
func (r *Repository) KeyName() string { return r.keyName }

// SetCompression selects the zstd level for blobs saved from now on; nil
// disables compression. It must not be called while writes are under way.
func (r *Repository) SetCompression(level *zstd.EncoderLevel) error {
	if level == nil {
		r.enc = nil
		return nil
	}
	enc, err := newEncoder(*level, r.cfg.ChunkerParams().Max)
	if err != nil {
		return err
	}
	r.enc = enc
	return nil
}

// newEncoder returns a zstd encoder for EncodeAll calls from every packer at
// once: EncodeAll takes one of the encoder's Concurrency states and waits
// when all are busy, so there must be one per CPU. A chunk is one frame, so
// a window larger than the largest chunk would only cost memory; the frame
// checksum is left out because every blob is authenticated and its ID
// recomputed on reading.
func newEncoder(level zstd.EncoderLevel, maxChunk int) (*zstd.Encoder, error) {
	window := zstd.MinWindowSize
	for window < maxChunk && window < zstd.MaxWindowSize {
		window *= 2
	}
	return zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithWindowSize(window), zstd.WithEncoderCRC(false), zstd.WithLowerEncoderMem(true))
}

func shortName(name string) string {
	if len(name) > 8 {
		return name[:8]
	}
	return name
}

// KeyInfo describes a key file for listing.
type KeyInfo struct {
	Name     string    `json:"id"`
	Created  time.Time `json:"created"`
	Host     string    `json:"host"`
	Username string    `json:"username"`
	// WriteOnly: the key file lacks the content private key (3.1).
	WriteOnly bool `json:"write_only"`
	Current   bool `json:"current"`
}

// KeyOptions says what a new key file holds and whom it is for.
type KeyOptions struct {
	// WriteOnly seals the keys without the content private key, carrying
	// LogSigner (the plaintext of the ledger's signing key, from
	// ledger.SignerKey) instead. A repository opened with a write-only key
	// adds only write-only keys, whatever this says.
	WriteOnly bool
	LogSigner []byte
	// Host and Username label the key file (key list); empty means this
	// machine's hostname and the current user.
	Host, Username string
}

// AddKey seals the repository keys under a new password and stores the key
// file; it returns the file's name.
func (r *Repository) AddKey(ctx context.Context, password []byte, kdf crypto.KDFParams) (string, error) {
	return r.AddKeyWith(ctx, password, kdf, KeyOptions{})
}

// AddKeyWith is AddKey with options: a write-only key, a label for
// another host. A write-only key without o.LogSigner is an error.
func (r *Repository) AddKeyWith(ctx context.Context, password []byte, kdf crypto.KDFParams, o KeyOptions) (string, error) {
	meta := crypto.KeyFile{Created: time.Now().UTC(), Host: o.Host, Username: o.Username}
	if meta.Host == "" {
		meta.Host, _ = os.Hostname()
	}
	if u, err := user.Current(); err == nil && meta.Username == "" {
		meta.Username = u.Username
	}
	keys := r.keys
	if o.WriteOnly && keys.CanRead() {
		keys = keys.WriteOnly(o.LogSigner)
	}
	b, err := crypto.SealKeyFile(keys, password, kdf, meta)
	if err != nil {
		return "", err
	}
	name := blob.Hash(b).String()
	if err := r.st.Save(ctx, store.Handle{Type: store.Keys, Name: name}, b); err != nil {
		return "", fmt.Errorf("write key: %w", err)
	}
	return name, nil
}

// ListKeys describes every key file; unreadable ones are reported in the
// returned error after the readable ones are listed.
func (r *Repository) ListKeys(ctx context.Context) ([]KeyInfo, error) {
	var list []KeyInfo
	var errs []error
	err := r.st.List(ctx, store.Keys, func(fi store.FileInfo) error {
		b, err := r.st.Load(ctx, store.Handle{Type: store.Keys, Name: fi.Name})
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		kf, err := crypto.ParseKeyFile(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("key %s: %w", shortName(fi.Name), err))
			return nil
		}
		list = append(list, KeyInfo{fi.Name, kf.Created, kf.Host, kf.Username, kf.WriteOnly, fi.Name == r.keyName})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return list, errors.Join(errs...)
}

// RemoveKey deletes key file name (a unique prefix works). It refuses to
// remove the key that opened the repository, so a repository never loses
// its last key by this path.
func (r *Repository) RemoveKey(ctx context.Context, rm store.Remover, name string) error {
	keys, err := r.ListKeys(ctx)
	if err != nil && len(keys) == 0 {
		return err
	}
	var match []string
	for _, k := range keys {
		if len(name) >= 4 && len(name) <= len(k.Name) && k.Name[:len(name)] == name {
			match = append(match, k.Name)
		}
	}
	switch {
	case len(match) == 0:
		return fmt.Errorf("key %q: %w", name, blob.ErrNotFound)
	case len(match) > 1:
		return fmt.Errorf("key prefix %q is ambiguous", name)
	case match[0] == r.keyName:
		return fmt.Errorf("key %s is the one in use; open the repository with another key to remove it", shortName(name))
	}
	return rm.Remove(ctx, store.Handle{Type: store.Keys, Name: match[0]})
}

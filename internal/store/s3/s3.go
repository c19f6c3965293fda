// Package s3 stores a repository in an S3 bucket (MinIO, Ceph RGW, AWS S3)
// through github.com/minio/minio-go/v7, with Object Lock so that a client
// credential cannot destroy what it stored (docs/design.md, "S3 storage").
//
// Layout under the location's prefix: config, keys/NAME, data/NN/NAME (NN:
// the first two characters of NAME), index/NAME, snapshots/NAME and
// ledger/KIND/NAME, as in the local store; nothing else is written.
//
// Writes are conditional (If-None-Match: *), so Save never replaces an
// object. On a versioned bucket, which Object Lock requires, an object is
// its first version: Load, ReadAt, Stat and List read the oldest version
// that is not a delete marker, so later versions and delete markers, which
// anyone holding a client credential can add, neither replace nor hide it.
// An object's stamp (store.FileInfo.Stamp) is its first version's
// LastModified, the bucket's clock.
// On a locked bucket every version is saved with retention (COMPLIANCE by
// default), so that no client credential can delete it before it ends.
package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/store"
)

// Options are the settings of a Store that are not part of its Location.
type Options struct {
	// Creds are the client's credentials. Required.
	Creds *credentials.Credentials
	// TempDir holds packs being staged, as unlinked files; empty means
	// the system's temporary directory.
	TempDir string
	// Now is the clock retention dates are computed from; nil means
	// time.Now.
	Now func() time.Time
}

// Store is a repository in an S3 bucket. It is safe for concurrent use,
// including by several processes on one or more hosts sharing the bucket.
type Store struct {
	c         *minio.Client
	core      minio.Core
	loc       Location
	versioned bool // versioning is or was enabled: objects are first versions
	lock      bool // Object Lock is enabled: every version gets retention
	tempDir   string
	now       func() time.Time
	versions  versionCache
}

var (
	_ store.Store   = (*Store)(nil)
	_ store.Stager  = (*Store)(nil)
	_ store.Remover = (*Store)(nil)
	_ store.Renewer = (*Store)(nil)
)

// Create checks that loc's bucket can hold a new repository and returns the
// store for it. The bucket must exist, hold no repository under the
// prefix, and have versioning and Object Lock enabled; noLock accepts a
// bucket without them, whose objects a client credential can then delete
// or overwrite.
func Create(ctx context.Context, loc Location, opts Options, noLock bool) (*Store, error) {
	s, err := open(ctx, loc, opts)
	if err != nil {
		return nil, err
	}
	if !s.lock && !noLock {
		what := "Object Lock"
		if !s.versioned {
			what = "versioning and Object Lock"
		}
		return nil, fmt.Errorf("create repository at %s: bucket %s does not have %s, so a client credential could delete or overwrite backups: use a bucket created with Object Lock, or --no-lock to accept that", loc, loc.Bucket, what)
	}
	if _, err := s.Stat(ctx, store.Handle{Type: store.Config}); err == nil {
		return nil, fmt.Errorf("create repository at %s: a repository already exists there", loc)
	} else if !errors.Is(err, blob.ErrNotFound) {
		return nil, fmt.Errorf("create repository at %s: %w", loc, err)
	}
	return s, nil
}

// Open opens the repository at loc. It returns an error wrapping
// blob.ErrNotFound if there is none.
func Open(ctx context.Context, loc Location, opts Options) (*Store, error) {
	s, err := open(ctx, loc, opts)
	if err != nil {
		return nil, err
	}
	if _, err := s.Stat(ctx, store.Handle{Type: store.Config}); err != nil {
		if errors.Is(err, blob.ErrNotFound) {
			return nil, fmt.Errorf("no repository at %s: %w", loc, blob.ErrNotFound)
		}
		return nil, fmt.Errorf("open repository at %s: %w", loc, err)
	}
	return s, nil
}

// open connects and reads the bucket's versioning and Object Lock state.
func open(ctx context.Context, loc Location, opts Options) (*Store, error) {
	if opts.Creds == nil {
		return nil, errors.New("open S3 store: no credentials")
	}
	c, err := minio.New(loc.Endpoint, &minio.Options{
		Creds:  opts.Creds,
		Secure: !loc.Insecure,
		Region: loc.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", loc, err)
	}
	s := &Store{c: c, core: minio.Core{Client: c}, loc: loc, tempDir: opts.TempDir, now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	v, err := c.GetBucketVersioning(ctx, loc.Bucket)
	if err != nil {
		return nil, s.bucketErr("read the versioning state of", err)
	}
	s.versioned = v.Status == minio.Enabled || v.Status == minio.Suspended
	enabled, _, _, _, err := c.GetObjectLockConfig(ctx, loc.Bucket)
	switch {
	case err == nil:
		s.lock = enabled == "Enabled"
	case errCode(err) != "ObjectLockConfigurationNotFoundError":
		return nil, s.bucketErr("read the Object Lock state of", err)
	}
	if !s.lock && (loc.Retention != 0 || loc.Mode != "") {
		return nil, fmt.Errorf("open %s: bucket %s has no Object Lock, so the location's retention and lock options cannot be applied", loc, loc.Bucket)
	}
	return s, nil
}

func (s *Store) bucketErr(what string, err error) error {
	if errCode(err) == "NoSuchBucket" {
		return fmt.Errorf("open %s: bucket %s does not exist (create it with Object Lock enabled)", s.loc, s.loc.Bucket)
	}
	return fmt.Errorf("open %s: %s bucket %s: %w", s.loc, what, s.loc.Bucket, err)
}

// Location returns the location's text form.
func (s *Store) Location() string { return s.loc.String() }

// key returns the object key of h.
func (s *Store) key(h store.Handle) string {
	var k string
	switch h.Type {
	case store.Config:
		k = "config"
	case store.Packs:
		k = fmt.Sprintf("%s/%s/%s", h.Type, h.Name[:min(2, len(h.Name))], h.Name)
	default:
		k = fmt.Sprintf("%s/%s", h.Type, h.Name)
	}
	if s.loc.Prefix == "" {
		return k
	}
	return s.loc.Prefix + "/" + k
}

// typePrefix returns the key prefix under which the objects of t are.
func (s *Store) typePrefix(t store.FileType) string {
	if s.loc.Prefix == "" {
		return string(t) + "/"
	}
	return s.loc.Prefix + "/" + string(t) + "/"
}

// errCode returns the S3 error code in err's chain, or "".
func errCode(err error) string {
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		return er.Code
	}
	return ""
}

// objErr wraps err from operation op on h with the object and the bucket,
// mapping a missing object to blob.ErrNotFound.
func (s *Store) objErr(op string, h store.Handle, err error) error {
	switch errCode(err) {
	case "NoSuchKey", "NoSuchVersion":
		s.versions.drop(s.key(h))
		err = blob.ErrNotFound
	case "InvalidRange":
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%s %v (object %s in bucket %s): %w", op, h, s.key(h), s.loc.Bucket, err)
}

// Save implements store.Saver.
func (s *Store) Save(ctx context.Context, h store.Handle, data []byte) error {
	if err := h.Check(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	sum := md5.Sum(data)
	return s.put(ctx, h, bytes.NewReader(data), int64(len(data)), sum[:])
}

// conflictRetries is how often a write the server reports as conflicting
// with a concurrent conditional write (409) is tried again.
const conflictRetries = 3

// put writes r (size bytes with MD5 sum) as h's object, unless it exists.
func (s *Store) put(ctx context.Context, h store.Handle, r io.ReadSeeker, size int64, sum []byte) error {
	key := s.key(h)
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream", DisableMultipart: true}
	opts.SetMatchETagExcept("*")
	if s.lock {
		opts.Mode = minio.Compliance
		if s.loc.Mode == Governance {
			opts.Mode = minio.Governance
		}
		opts.RetainUntilDate = s.now().Add(cmp(s.loc.Retention, DefaultRetention)).UTC()
	}
	var info minio.UploadInfo
	var err error
	for range conflictRetries {
		if _, err = r.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("save %v: %w", h, err)
		}
		info, err = s.core.PutObject(ctx, s.loc.Bucket, key, r, size, base64.StdEncoding.EncodeToString(sum), "", opts)
		if errCode(err) != "ConditionalRequestConflict" {
			break
		}
	}
	switch {
	case errCode(err) == "PreconditionFailed":
		return fmt.Errorf("save %v (object %s in bucket %s): %w", h, key, s.loc.Bucket, store.ErrExists)
	case err != nil:
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("save %v (object %s in bucket %s): %w", h, key, s.loc.Bucket, err)
	case !s.versioned:
		return nil
	}
	// The condition only looks at the newest version, which may be a delete
	// marker hiding the object: the write counts only if it made the first
	// version.
	first, err := s.first(ctx, h)
	if err != nil {
		return fmt.Errorf("save %v: check the stored versions: %w", h, err)
	}
	if first.id != info.VersionID {
		return fmt.Errorf("save %v (object %s in bucket %s): an older version exists, hidden by a delete marker: %w", h, key, s.loc.Bucket, store.ErrExists)
	}
	return nil
}

// cmp returns d, or def when d is zero.
func cmp(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// version is an object's first version.
type version struct {
	id    string
	size  int64
	stamp time.Time // its LastModified
}

// first returns h's object: its oldest version that is not a delete
// marker. Versions never change, and under Object Lock the oldest one
// cannot be removed, so the answer is cached.
func (s *Store) first(ctx context.Context, h store.Handle) (version, error) {
	key := s.key(h)
	if v, ok := s.versions.get(key); ok {
		return v, nil
	}
	var v version
	found := false
	opts := minio.ListObjectsOptions{Prefix: key, WithVersions: true, Recursive: true}
	for obj := range s.c.ListObjectsIter(ctx, s.loc.Bucket, opts) {
		if obj.Err != nil {
			return version{}, s.objErr("list versions of", h, obj.Err)
		}
		if obj.Key != key {
			// Keys sort after their own prefix: the versions of key came
			// first.
			break
		}
		// Versions come newest first.
		if !obj.IsDeleteMarker {
			v, found = version{id: obj.VersionID, size: obj.Size, stamp: obj.LastModified}, true
		}
	}
	if !found {
		if err := ctx.Err(); err != nil {
			return version{}, err
		}
		return version{}, fmt.Errorf("%v (object %s in bucket %s): %w", h, key, s.loc.Bucket, blob.ErrNotFound)
	}
	s.versions.put(key, v)
	return v, nil
}

// getOptions returns the options that read h's object: its first version
// on a versioned bucket.
func (s *Store) getOptions(ctx context.Context, h store.Handle) (minio.GetObjectOptions, int64, error) {
	if !s.versioned {
		return minio.GetObjectOptions{}, -1, nil
	}
	v, err := s.first(ctx, h)
	if err != nil {
		return minio.GetObjectOptions{}, 0, err
	}
	return minio.GetObjectOptions{VersionID: v.id}, v.size, nil
}

// Load implements store.Loader.
func (s *Store) Load(ctx context.Context, h store.Handle) ([]byte, error) {
	if err := h.Check(); err != nil {
		return nil, err
	}
	opts, _, err := s.getOptions(ctx, h)
	if err != nil {
		return nil, err
	}
	rc, info, _, err := s.core.GetObject(ctx, s.loc.Bucket, s.key(h), opts)
	if err != nil {
		return nil, s.objErr("load", h, err)
	}
	defer rc.Close()
	b := make([]byte, info.Size)
	if _, err := io.ReadFull(rc, b); err != nil {
		return nil, s.objErr("load", h, err)
	}
	return b, nil
}

// ReadAt implements store.Loader.
func (s *Store) ReadAt(ctx context.Context, h store.Handle, p []byte, off int64) error {
	if err := h.Check(); err != nil {
		return err
	}
	if off < 0 {
		return fmt.Errorf("read %v at %d: negative offset", h, off)
	}
	if len(p) == 0 {
		fi, err := s.Stat(ctx, h)
		if err != nil {
			return err
		}
		if off > fi.Size {
			return fmt.Errorf("read %v at %d: %w", h, off, io.ErrUnexpectedEOF)
		}
		return nil
	}
	opts, _, err := s.getOptions(ctx, h)
	if err != nil {
		return err
	}
	if err := opts.SetRange(off, off+int64(len(p))-1); err != nil {
		return fmt.Errorf("read %v at %d: %w", h, off, err)
	}
	rc, _, _, err := s.core.GetObject(ctx, s.loc.Bucket, s.key(h), opts)
	if err != nil {
		return s.objErr(fmt.Sprintf("read at %d", off), h, err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return s.objErr(fmt.Sprintf("read at %d", off), h, err)
	}
	return nil
}

// Stat implements store.Lister.
func (s *Store) Stat(ctx context.Context, h store.Handle) (store.FileInfo, error) {
	if err := h.Check(); err != nil {
		return store.FileInfo{}, err
	}
	if s.versioned {
		v, err := s.first(ctx, h)
		if err != nil {
			return store.FileInfo{}, err
		}
		return store.FileInfo{Name: h.Name, Size: v.size, Stamp: v.stamp}, nil
	}
	info, err := s.c.StatObject(ctx, s.loc.Bucket, s.key(h), minio.StatObjectOptions{})
	if err != nil {
		return store.FileInfo{}, s.objErr("stat", h, err)
	}
	return store.FileInfo{Name: h.Name, Size: info.Size, Stamp: info.LastModified}, nil
}

// List implements store.Lister. On a versioned bucket it reports each
// object with the size and LastModified (as Stamp) of its first version,
// delete markers or not.
func (s *Store) List(ctx context.Context, t store.FileType, fn func(store.FileInfo) error) error {
	if err := t.CheckListable(); err != nil {
		return fmt.Errorf("list: %w", err)
	}
	prefix := s.typePrefix(t)
	opts := minio.ListObjectsOptions{Prefix: prefix, Recursive: true, WithVersions: s.versioned}
	// pending is the object whose versions are being read; it is reported
	// when the listing moves on to the next key.
	var pending *store.FileInfo
	flush := func() error {
		if pending == nil {
			return nil
		}
		fi := *pending
		pending = nil
		return fn(fi)
	}
	curKey := ""
	for obj := range s.c.ListObjectsIter(ctx, s.loc.Bucket, opts) {
		if obj.Err != nil {
			return fmt.Errorf("list %s (prefix %s in bucket %s): %w", t, prefix, s.loc.Bucket, obj.Err)
		}
		if obj.Key != curKey {
			if err := flush(); err != nil {
				return err
			}
			curKey = obj.Key
		}
		name := obj.Key[strings.LastIndexByte(obj.Key, '/')+1:]
		h := store.Handle{Type: t, Name: name}
		if obj.IsDeleteMarker || h.Check() != nil || s.key(h) != obj.Key {
			continue
		}
		// Versions come newest first: the last one seen is the first.
		pending = &store.FileInfo{Name: name, Size: obj.Size, Stamp: obj.LastModified}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return flush()
}

// Renew extends the Object Lock retention of h's object (its first
// version) to now plus the location's retention when it would end within
// half of that, so that an object still in use stays protected past the
// retention it was written with. It reports whether it extended anything;
// without Object Lock it does nothing. Prune on a direct S3 repository
// runs it for every object that stays, and kalaja serve over S3 for every
// object no signed request condemned (store.RenewAll): retention can only
// be lengthened, so no credential shortens protection with it.
func (s *Store) Renew(ctx context.Context, h store.Handle) (bool, error) {
	if !s.lock {
		return false, nil
	}
	v, err := s.first(ctx, h)
	if err != nil {
		return false, err
	}
	key := s.key(h)
	period := cmp(s.loc.Retention, DefaultRetention)
	now := s.now()
	mode, until, err := s.c.GetObjectRetention(ctx, s.loc.Bucket, key, v.id)
	if err != nil && errCode(err) != "NoSuchObjectLockConfiguration" {
		return false, s.objErr("read the retention of", h, err)
	}
	if until != nil && until.After(now.Add(period/2)) {
		return false, nil
	}
	m := minio.Compliance
	switch {
	case mode != nil && mode.IsValid():
		m = *mode // a COMPLIANCE version cannot become GOVERNANCE
	case s.loc.Mode == Governance:
		m = minio.Governance
	}
	target := now.Add(period).UTC()
	err = s.c.PutObjectRetention(ctx, s.loc.Bucket, key, minio.PutObjectRetentionOptions{Mode: &m, RetainUntilDate: &target, VersionID: v.id})
	if err != nil {
		return false, s.objErr("extend the retention of", h, err)
	}
	return true, nil
}

// Retention returns how long each saved object is locked (the location's
// retention, or DefaultRetention), or 0 on a bucket without Object Lock.
func (s *Store) Retention() time.Duration {
	if !s.lock {
		return 0
	}
	return cmp(s.loc.Retention, DefaultRetention)
}

// Remove implements store.Remover: it deletes every version of h's object.
// On a locked bucket the server refuses while any version's retention
// lasts, and Remove fails, having removed no locked version.
func (s *Store) Remove(ctx context.Context, h store.Handle) error {
	if err := h.Check(); err != nil {
		return err
	}
	key := s.key(h)
	defer s.versions.drop(key)
	if !s.versioned {
		if _, err := s.Stat(ctx, h); err != nil {
			return err
		}
		if err := s.c.RemoveObject(ctx, s.loc.Bucket, key, minio.RemoveObjectOptions{}); err != nil {
			return s.objErr("remove", h, err)
		}
		return nil
	}
	var ids []string
	live := false
	opts := minio.ListObjectsOptions{Prefix: key, WithVersions: true, Recursive: true}
	for obj := range s.c.ListObjectsIter(ctx, s.loc.Bucket, opts) {
		if obj.Err != nil {
			return s.objErr("list versions of", h, obj.Err)
		}
		if obj.Key != key {
			break
		}
		ids = append(ids, obj.VersionID)
		live = live || !obj.IsDeleteMarker
	}
	if !live {
		return fmt.Errorf("remove %v (object %s in bucket %s): %w", h, key, s.loc.Bucket, blob.ErrNotFound)
	}
	// Newest first, as listed: until the removal reaches the first
	// version, which retention may refuse, the object stays what it was.
	for _, id := range ids {
		if err := s.c.RemoveObject(ctx, s.loc.Bucket, key, minio.RemoveObjectOptions{VersionID: id}); err != nil {
			return fmt.Errorf("remove %v (object %s version %s in bucket %s): %w", h, key, id, s.loc.Bucket, err)
		}
	}
	return nil
}

// versionCache maps object keys to their first versions. It is bounded: it
// starts over when full.
type versionCache struct {
	mu sync.Mutex
	m  map[string]version
}

// maxCachedVersions bounds the cache at a few MiB.
const maxCachedVersions = 1 << 15

func (c *versionCache) get(key string) (version, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[key]
	return v, ok
}

func (c *versionCache) put(key string, v version) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedVersions {
		c.m = make(map[string]version)
	}
	c.m[key] = v
}

func (c *versionCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, key)
}

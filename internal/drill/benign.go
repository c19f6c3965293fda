package drill

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strings"
)

// The benign workloads, by the name the report uses.
const (
	Compress   = "compress"
	GitClone   = "git"
	GoBuild    = "go-build"
	SQLite     = "sqlite"
	OfficeSave = "office-save"
	LogRotate  = "log-rotate"
	BulkMove   = "bulk-move"
)

// WorkDir is the sandbox folder benign workloads keep their own inputs
// and outputs in (archives, repositories, build caches, logs), next to
// DataDir. HOME and TMPDIR of every workload point inside it.
const WorkDir = "work"

// workEnv is the environment every benign workload gets on top of the
// drill's: home, temporary and cache folders inside the sandbox, and a git
// and Go that read no configuration from outside and use no network.
func workEnv(sb *Sandbox) []string {
	w := sb.Path(WorkDir)
	return []string{
		"HOME=" + w + "/home", "TMPDIR=" + w + "/tmp", "XDG_CONFIG_HOME=" + w + "/home/.config",
		"XDG_CACHE_HOME=" + w + "/home/.cache", "LC_ALL=C",
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Drill", "GIT_AUTHOR_EMAIL=drill@example.invalid",
		"GIT_COMMITTER_NAME=Drill", "GIT_COMMITTER_EMAIL=drill@example.invalid",
		"GOCACHE=" + w + "/gocache", "GOPATH=" + w + "/gopath", "GOTMPDIR=" + w + "/tmp",
		"GOFLAGS=-mod=mod", "GOPROXY=off", "GOTOOLCHAIN=local", "GOENV=off", "GOWORK=off",
	}
}

// prepareWork makes the folders workEnv names.
func prepareWork(sb *Sandbox) error {
	for _, d := range []string{"home", "tmp", "bin"} {
		if err := sb.MkdirAll(path.Join(WorkDir, d)); err != nil {
			return err
		}
	}
	return nil
}

// shell returns sh running script in the sandbox root. needs are the
// programs the script runs that may be missing: ErrMissingProgram is
// wrapped when one is not on PATH.
func (st *stage) shell(ctx context.Context, script string, needs ...string) (*exec.Cmd, error) {
	for _, n := range needs {
		if _, err := exec.LookPath(n); err != nil {
			return nil, fmt.Errorf("%w: %s (Debian package %s)", ErrMissingProgram, n, packages[n])
		}
	}
	return st.progs.Command(ctx, st.sb.Root(), workEnv(st.sb), "sh", "-ec", script)
}

// prepareCompress writes the dataset the compress workload archives with
// the tree: a log-like text file of BulkBytes.
func prepareCompress(ctx context.Context, st *stage) error {
	f, err := st.sb.OpenFile(path.Join(WorkDir, "dataset.log"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }() // for the error returns: the success path closes and checks
	g := newGen(st.cfg.Tree.Seed + 1)
	var b bytes.Buffer
	for n := int64(0); n < st.cfg.BulkBytes; {
		b.Reset()
		for b.Len() < 1<<20 {
			fmt.Fprintf(&b, "2024-05-%02d %02d:%02d:%02d INFO office=%s user=%d %s\n", g.between(1, 28), g.between(0, 23),
				g.between(0, 59), g.between(0, 59), g.word(), g.between(1, 5000), g.sentence())
		}
		if _, err := f.Write(b.Bytes()); err != nil {
			return fmt.Errorf("write dataset: %w", err)
		}
		n += int64(b.Len())
	}
	return f.Close()
}

// startCompress archives the tree and the dataset with tar and zstd, then
// tar and gzip.
func startCompress(ctx context.Context, st *stage) (*exec.Cmd, error) {
	return st.shell(ctx, `tar -cf - files work/dataset.log | zstd -q -3 -T0 -o work/backup.tar.zst
tar -czf work/backup.tar.gz files work/dataset.log`)
}

// prepareGit makes a bare repository with two commits of the tree's
// source code and extra generated packages, each vendored library with the
// same LICENSE file (a small text file in many folders, as ransom notes
// are), and a clone of it made before the watcher starts, so that the
// workload also switches commits in a clone whose files are not fresh.
func prepareGit(ctx context.Context, st *stage) error {
	src := path.Join(WorkDir, "src")
	files, err := st.sb.Files(path.Join(DataDir, "Projects"))
	if err != nil {
		return err
	}
	g := newGen(st.cfg.Tree.Seed + 2)
	license := []byte(g.text(1500))
	for i := range max(20, st.cfg.Tree.Files/2) {
		dir := path.Join(src, "vendor", fmt.Sprintf("lib%02d", i%12))
		if err := st.sb.MkdirAll(dir); err != nil {
			return err
		}
		name := path.Join(dir, fmt.Sprintf("gen%03d.go", i))
		if err := st.sb.WriteFile(name, g.source("go", path.Base(dir), g.between(2_000, 20_000)), 0o644); err != nil {
			return err
		}
		if err := st.sb.WriteFile(path.Join(dir, "LICENSE"), license, 0o644); err != nil {
			return err
		}
	}
	for _, f := range files {
		b, err := st.sb.ReadFile(f)
		if err != nil {
			return err
		}
		dst := path.Join(src, strings.TrimPrefix(f, DataDir+"/Projects/"))
		if err := st.sb.MkdirAll(path.Dir(dst)); err != nil {
			return err
		}
		if err := st.sb.WriteFile(dst, b, 0o644); err != nil {
			return err
		}
	}
	env := workEnv(st.sb)
	run := func(args ...string) error { return st.progs.RunEnv(ctx, st.sb.Path(src), env, "", "git", args...) }
	if err := run("init", "-q", "-b", "main"); err != nil {
		return err
	}
	if err := run("add", "-A"); err != nil {
		return err
	}
	if err := run("commit", "-q", "-m", "first"); err != nil {
		return err
	}
	all, err := st.sb.Files(src)
	if err != nil {
		return err
	}
	for i, f := range all {
		if i%2 == 0 && !strings.Contains(f, "/.git/") {
			fh, err := st.sb.OpenFile(f, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(fh, "\n// revision 2: %s\n", g.sentence())
			err = errors.Join(err, fh.Close())
			if err != nil {
				return fmt.Errorf("edit %s: %w", f, err)
			}
		}
	}
	if err := run("commit", "-q", "-a", "-m", "second"); err != nil {
		return err
	}
	if err := st.progs.RunEnv(ctx, st.sb.Root(), env, "", "git", "clone", "-q", "--bare", src, path.Join(WorkDir, "origin.git")); err != nil {
		return err
	}
	return st.progs.RunEnv(ctx, st.sb.Root(), env, "", "git", "clone", "-q", path.Join(WorkDir, "origin.git"), path.Join(WorkDir, "old"))
}

// startGit switches the clone made before the watcher started to the
// first commit and back (git deletes each changed file and writes it
// anew), then clones the bare repository (copying objects, as from a
// server), does the same there, and runs gc.
func startGit(ctx context.Context, st *stage) (*exec.Cmd, error) {
	return st.shell(ctx, `(cd work/old && git checkout -q HEAD~1 && git checkout -q main)
git clone -q --no-local work/origin.git work/clone
cd work/clone
git checkout -q HEAD~1
git checkout -q main
git gc -q`)
}

// prepareGo writes a module of generated packages, offline and without
// dependencies.
func prepareGo(ctx context.Context, st *stage) error {
	mod := path.Join(WorkDir, "gomod")
	g := newGen(st.cfg.Tree.Seed + 3)
	var imports, calls strings.Builder
	for i := range 8 {
		pkg := fmt.Sprintf("pkg%d", i)
		dir := path.Join(mod, pkg)
		if err := st.sb.MkdirAll(dir); err != nil {
			return err
		}
		for j := range 4 {
			src := g.source("go", pkg, g.between(4_000, 16_000))
			if j == 0 {
				src = append(src, fmt.Sprintf("// Run is the package's entry point.\nfunc Run(n int) int { return n + %d }\n", i)...)
			}
			if err := st.sb.WriteFile(path.Join(dir, fmt.Sprintf("f%d.go", j)), src, 0o644); err != nil {
				return err
			}
		}
		fmt.Fprintf(&imports, "\t%q\n", "example.invalid/drillapp/"+pkg)
		fmt.Fprintf(&calls, "\tn = %s.Run(n)\n", pkg)
	}
	main := fmt.Sprintf("package main\n\nimport (\n%s)\n\nfunc main() {\n\tn := 1\n%s\tprintln(n)\n}\n", imports.String(), calls.String())
	if err := st.sb.WriteFile(path.Join(mod, "main.go"), []byte(main), 0o644); err != nil {
		return err
	}
	return st.sb.WriteFile(path.Join(mod, "go.mod"), []byte("module example.invalid/drillapp\n\ngo 1.22\n"), 0o644)
}

// startGo builds the module with an empty build cache inside the sandbox.
func startGo(ctx context.Context, st *stage) (*exec.Cmd, error) {
	return st.progs.Command(ctx, st.sb.Path(path.Join(WorkDir, "gomod")), workEnv(st.sb), "go", "build", "-o", "../bin/app", ".")
}

// prepareSQLite writes the SQL the workload feeds sqlite3.
func prepareSQLite(ctx context.Context, st *stage) error {
	rows := max(20_000, st.cfg.Tree.Files*500)
	load := fmt.Sprintf(`PRAGMA journal_mode=WAL;
CREATE TABLE events(id INTEGER PRIMARY KEY, ts TEXT, office TEXT, kind TEXT, payload TEXT);
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < %[1]d)
INSERT INTO events(ts, office, kind, payload) SELECT datetime('2024-01-01', '+' || x || ' seconds'), 'office ' || (x %% 83), 'kind' || (x %% 17), printf('request %%d by user %%d: %%s', x, x %% 1000, substr('lorem ipsum dolor sit amet consectetur adipiscing elit', 1 + x %% 20)) FROM c;
COMMIT;
CREATE INDEX events_office ON events(office, ts);
BEGIN;
UPDATE events SET kind = 'reviewed' WHERE id %% 10 = 0;
DELETE FROM events WHERE id %% 20 = 1;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
`, rows)
	update := fmt.Sprintf(`BEGIN;
UPDATE citizens SET note = note || ', renewed' WHERE id %% 3 = 0;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < %d)
INSERT INTO citizens(name, city, born, note) SELECT 'newcomer ' || x, 'city ' || (x %% 61), '2001-01-01', 'moved in' FROM c;
COMMIT;
VACUUM;
`, rows/4)
	if err := st.sb.WriteFile(path.Join(WorkDir, "load.sql"), []byte(load), 0o644); err != nil {
		return err
	}
	return st.sb.WriteFile(path.Join(WorkDir, "update.sql"), []byte(update), 0o644)
}

// startSQLite loads a new WAL database and updates and vacuums the
// tree's database.
func startSQLite(ctx context.Context, st *stage) (*exec.Cmd, error) {
	return st.shell(ctx, `sqlite3 work/app.db < work/load.sql >/dev/null
sqlite3 files/Data/records.sqlite < work/update.sql`)
}

// startOffice runs the office-save child: the drill's own binary, saving
// documents the way office programs do.
func startOffice(ctx context.Context, st *stage) (*exec.Cmd, error) {
	return st.child.Command(ctx, "benign", OfficeSave, st.sb.Root()), nil
}

// officeDocs and officeRounds size the office-save workload: every
// document is saved officeRounds times.
const (
	officeDocs   = 12
	officeRounds = 8
)

// saveDocuments saves up to officeDocs Word documents officeRounds times
// each, as LibreOffice does: the new version, with one more paragraph,
// goes to a temporary file in the same folder, is flushed, and renamed
// over the original.
func saveDocuments(ctx context.Context, sb *Sandbox) error {
	all, err := sb.Files(DataDir)
	if err != nil {
		return err
	}
	// The user's reports, not whatever else is named .docx (such as the
	// watcher's canaries, which no user opens).
	var docs []string
	for _, f := range all {
		if ok, _ := path.Match("report-*.docx", path.Base(f)); ok && len(docs) < officeDocs {
			docs = append(docs, f)
		}
	}
	for round := range officeRounds {
		for i, doc := range docs {
			if err := ctx.Err(); err != nil {
				return err
			}
			old, err := sb.ReadFile(doc)
			if err != nil {
				return err
			}
			next, err := addParagraph(old, fmt.Sprintf("Edited in round %d: the %dth revision of this report.", round+1, i))
			if err != nil {
				return fmt.Errorf("edit %s: %w", doc, err)
			}
			tmp := path.Join(path.Dir(doc), fmt.Sprintf("lu%d%03d.tmp", 4711+round, i))
			f, err := sb.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return err
			}
			_, err = f.Write(next)
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("save %s: %w", doc, err)
			}
			if err := sb.Rename(tmp, doc); err != nil {
				return err
			}
		}
	}
	return nil
}

// addParagraph returns the Word document doc with one more paragraph.
func addParagraph(doc []byte, text string) ([]byte, error) {
	zr, err := zip.NewReader(bytes.NewReader(doc), int64(len(doc)))
	if err != nil {
		return nil, err
	}
	var parts [][2]string
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		s := string(b)
		if f.Name == "word/document.xml" {
			s = strings.Replace(s, "</w:body>", `<w:p><w:r><w:t>`+text+`</w:t></w:r></w:p></w:body>`, 1)
		}
		parts = append(parts, [2]string{f.Name, s})
	}
	return zipFile(parts), nil
}

// prepareLogs writes three application logs for log-rotate.
func prepareLogs(ctx context.Context, st *stage) error {
	dir := path.Join(WorkDir, "logs")
	if err := st.sb.MkdirAll(dir); err != nil {
		return err
	}
	g := newGen(st.cfg.Tree.Seed + 4)
	for _, name := range []string{"app", "access", "error"} {
		var b strings.Builder
		for b.Len() < int(st.cfg.BulkBytes/8) {
			fmt.Fprintf(&b, "2024-05-01 %02d:%02d:%02d INFO %s id=%d %s\n", g.between(0, 23), g.between(0, 59), g.between(0, 59), name, g.between(1, 1e6), g.sentence())
		}
		if err := st.sb.WriteFile(path.Join(dir, name+".log"), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// startLogs rotates the logs four times as logrotate does (shift the old
// compressed copies, rename the live log, gzip it) while the application
// starts a new log each time.
func startLogs(ctx context.Context, st *stage) (*exec.Cmd, error) {
	return st.shell(ctx, `cd work/logs
for round in 1 2 3 4; do
	for name in app access error; do
		for i in 4 3 2 1; do
			if [ -f "$name.log.$i.gz" ]; then mv "$name.log.$i.gz" "$name.log.$((i + 1)).gz"; fi
		done
		mv "$name.log" "$name.log.1"
		gzip -6 "$name.log.1"
		seq 1 40000 | sed "s/^/2024-05-0$round 12:00:00 INFO $name request id=/" >"$name.log"
	done
done`)
}

// startMoves reorganises the tree: photos into an archive with one mv,
// notes with one mv process each, whole folders renamed; then, as a
// clean-up script would, every archived file sorted into a folder named
// after where it was, one mv process per file.
func startMoves(ctx context.Context, st *stage) (*exec.Cmd, error) {
	return st.shell(ctx, `cd files
mkdir -p Archive/Pictures Archive/Notes Archive/2024
find Pictures -name '*.jpg' -exec mv -t Archive/Pictures {} +
find Documents Desktop Shared -name '*.txt' 2>/dev/null | while read -r f; do mv "$f" Archive/Notes/; done
for d in Documents/Reports Shared Projects; do
	if [ -d "$d" ]; then mv "$d" "Archive/2024/${d##*/}"; fi
done
find Archive -type f | sort | while read -r f; do
	d="Sorted/${f%/*}"
	[ -d "$d" ] || mkdir -p "$d"
	mv "$f" "$d/"
done`)
}

package detect

import (
	"path"
	"strings"
)

// expected maps a file name extension to the type its content should have.
// Only formats whose first bytes are reliable are listed.
var expected = map[string]Type{
	"docx": "zip", "xlsx": "zip", "pptx": "zip", "odt": "zip", "ods": "zip", "odp": "zip",
	"zip": "zip", "jar": "zip", "epub": "zip", "apk": "zip",
	"pdf": "pdf", "png": "png", "jpg": "jpeg", "jpeg": "jpeg", "gif": "gif",
	"doc": "ole", "xls": "ole", "ppt": "ole", "msg": "ole",
	"gz": "gzip", "tgz": "gzip", "zst": "zstd", "xz": "xz", "bz2": "bzip2", "7z": "7z",
	"sqlite": "sqlite", "sqlite3": "sqlite", "mp3": "mp3", "ogg": "ogg", "flac": "flac",
	"txt": TextType, "md": TextType, "csv": TextType, "tsv": TextType, "log": TextType,
	"json": TextType, "xml": TextType, "html": TextType, "htm": TextType, "yaml": TextType,
	"yml": TextType, "ini": TextType, "conf": TextType, "cfg": TextType, "sql": TextType,
	"go": TextType, "c": TextType, "h": TextType, "py": TextType, "js": TextType,
	"java": TextType, "sh": TextType, "rst": TextType, "tex": TextType, "eml": TextType,
}

// known is the set of extensions a rename may produce without scoring:
// common document, data, code, archive and temporary-file extensions.
var known = func() map[string]bool {
	m := map[string]bool{}
	for e := range expected {
		m[e] = true
	}
	for _, e := range strings.Fields(`
		bak old orig tmp temp swp swo part partial crdownload download lock new prev save sav pid
		pack idx rev keep gitkeep sample
		odg odf ott rtf pages numbers key wpd wps xlsm xlsb docm dotx dot pot potx pps ppsx vsd vsdx
		svg tif tiff bmp webp heic ico psd ai eps raw cr2 nef
		mp4 mov avi mkv webm wav m4a aac wma wmv mpg mpeg
		tar tbz2 txz lz4 rar cab iso img qcow2 vmdk vdi dmg deb rpm whl gem
		db db3 mdb accdb dbf frm ibd myd myi wal shm journal ldb sst
		css scss less ts tsx jsx vue php rb pl pm lua rs cpp cc cxx hpp cs swift kt kts scala
		m mm r jl hs ml ex exs erl clj dart nim zig asm s mod sum toml lock properties gradle
		bat cmd ps1 psm1 vbs mk cmake make in am ac awk sed diff patch po pot mo
		ics vcf msg mbox pst ost eml
		o a so dll exe bin out obj lib pyc class wasm map
		pem crt cer key pub p12 pfx csr der gpg asc sig
		gitignore gitattributes editorconfig env dockerfile
	`) {
		m[e] = true
	}
	return m
}()

// ext returns the lower-case extension of a path without the dot ("" if none).
func ext(p string) string {
	e := path.Ext(path.Base(p))
	if len(e) < 2 {
		return ""
	}
	return strings.ToLower(e[1:])
}

// Ext returns the lower-case extension of the last element of path p,
// without the dot, or "" if it has none.
func Ext(p string) string { return ext(p) }

// Expected returns the type the content of a file with extension e (lower
// case, no dot, as Ext returns it) should have, or Unknown when e promises
// no format whose first bytes are reliable.
func Expected(e string) Type { return expected[e] }

// Known reports whether e (lower case, no dot) is a common document, data,
// code, archive or temporary-file extension: one a rename may produce
// without suspicion.
func Known(e string) bool { return known[e] }

// expectedType is the type a file's name promises, or Unknown.
func expectedType(p string) Type { return expected[ext(p)] }

// suspiciousRename reports whether renaming from old to new changes the
// extension to one that is neither known nor a number (log rotation) nor a
// backup marker (a trailing ~). A rename that only drops old's extension
// ("x.pid.lock" to "x.pid", "f.tmp" to "f") moves a finished file into
// place, the opposite of what ransomware does.
func suspiciousRename(old, new string) bool {
	if ob := path.Base(old); isMaildir(ob) && maildir(ob) == maildir(path.Base(new)) && strings.Contains(path.Base(new), mailInfo) {
		return false
	}
	oe, ne := ext(old), ext(new)
	if ne == oe || ne == "" || known[ne] || strings.HasSuffix(new, "~") || strings.TrimSuffix(old, path.Ext(old)) == new {
		return false
	}
	if strings.Trim(ne, "0123456789") == "" {
		return false
	}
	return true
}

// mailInfo starts the part of a Maildir message's name that holds its
// flags ("1733400000.M1P2.host,S=1234:2,RS"): a mail server renames a
// message when it moves it from new/ to cur/ and whenever its flags change.
const mailInfo = ":2,"

// isMaildir reports whether name is a Maildir message's: it starts with
// its delivery time in Unix seconds (at least nine digits) and a dot.
func isMaildir(name string) bool {
	i := strings.IndexByte(name, '.')
	return i >= 9 && strings.Trim(name[:i], "0123456789") == ""
}

// maildir returns a Maildir message's name without its flags.
func maildir(name string) string {
	if i := strings.LastIndex(name, mailInfo); i >= 0 {
		return name[:i]
	}
	return name
}

// scratch are extensions of files a program makes to throw away: logs,
// temporary and partial files, locks.
var scratch = map[string]bool{"log": true, "tmp": true, "temp": true, "swp": true, "swo": true, "part": true,
	"partial": true, "crdownload": true, "pid": true, "lock": true, "cache": true}

// compressedExt are the extensions compressors append.
var compressedExt = map[string]bool{"gz": true, "xz": true, "zst": true, "bz2": true, "lz4": true, "z": true}

// expendable reports whether p names a file servers delete as a matter of
// course: a log or a temporary file (scratch), a backup marker (a
// trailing ~), or a rotated generation of a log, compressed or not
// ("app.log.3", "app.log.3.gz", "app.log-20241201.gz", "app.log.gz").
// Backups ("x.bak", "db-20241201.sql.gz") are not expendable: ransomware
// deletes them first.
func expendable(p string) bool {
	base := path.Base(p)
	if strings.HasSuffix(base, "~") {
		return true
	}
	e := ext(base)
	if compressedExt[e] {
		base = base[:len(base)-len(e)-1]
		e = ext(base)
	}
	return scratch[e] || e != "" && strings.Trim(e, "0123456789") == "" || strings.HasPrefix(e, "log-") || strings.HasPrefix(e, "log_")
}

package health

import (
	"strings"

	"github.com/kalaja/kalaja/internal/detect"
)

// Kind is a coarse sort of file, from its extension, by which Stats.Kinds
// counts: what a user would call the files that changed.
type Kind uint8

// Kinds, in the order of kindNames.
const (
	Other Kind = iota
	Document
	Spreadsheet
	Presentation
	Image
	Media
	Archive
	Database
	Code
	Text
	Executable
	numKinds
)

// kindNames are the names of the kinds in Stats.Kinds.
var kindNames = [numKinds]string{"other", "document", "spreadsheet", "presentation", "image", "media", "archive", "database", "code", "text", "executable"}

// String returns the kind's name.
func (k Kind) String() string { return kindNames[k] }

// kinds maps a lower-case extension to its kind; others are Other.
var kinds = func() map[string]Kind {
	m := map[string]Kind{}
	for k, exts := range map[Kind]string{
		Document:     "doc docx docm dot dotx odt ott rtf pdf pages wpd wps epub eml msg",
		Spreadsheet:  "xls xlsx xlsm xlsb ods numbers csv tsv",
		Presentation: "ppt pptx pps ppsx pot potx odp key",
		Image:        "jpg jpeg png gif bmp tif tiff webp heic svg ico psd ai eps raw cr2 nef dng",
		Media:        "mp3 mp4 m4a m4v mov avi mkv webm wav flac ogg aac wma wmv mpg mpeg",
		Archive:      "zip 7z rar tar gz tgz bz2 tbz2 xz txz zst lz4 cab iso dmg img vmdk qcow2 vdi",
		Database:     "sqlite sqlite3 db db3 mdb accdb dbf frm ibd myd myi sql wal ldb sst pst ost",
		Code: "go c h cc cpp cxx hpp cs java js jsx ts tsx py rb php pl pm lua rs swift kt kts scala m mm r jl hs ml " +
			"ex exs erl clj dart nim zig asm s sh bash ps1 bat cmd vbs css scss less vue mk cmake gradle",
		Text:       "txt md rst tex log json xml html htm yaml yml ini conf cfg toml properties",
		Executable: "exe dll so o a bin out obj lib msi deb rpm apk jar whl class pyc wasm elf",
	} {
		for _, e := range strings.Fields(exts) {
			m[e] = k
		}
	}
	return m
}()

// KindOf returns the kind of a file called name.
func KindOf(name string) Kind { return kinds[detect.Ext(name)] }

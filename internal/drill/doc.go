// Package drill tests a watcher the way an attack would: it fills a
// sandbox folder with a realistic tree of documents, pictures, source code
// and a database, runs ransomware and wiper simulators and benign
// workloads against it as child processes, and reports for each whether
// the watcher raised an alert, how fast, how many files were damaged
// before the process was stopped, and any false alarms. MeasureOverhead
// times the benign workloads with and without the watcher.
//
// Safety: everything happens inside a Sandbox. Prepare refuses system and
// home folders, their ancestors, symbolic links to them, and non-empty
// folders the drill did not create; every file the attacks touch is
// opened by the kernel beneath the sandbox root (openat2 RESOLVE_BENEATH,
// no symbolic links, no mount crossings, one hard link only), and the raw
// wiper writes only to a loop device whose backing file is in the
// sandbox. Benign workloads are real programs (tar, zstd, gzip, git, go,
// sqlite3, mv) run in the sandbox with relative paths and HOME, TMPDIR and
// caches inside it.
//
// The drill runs attacks as processes so that the watcher can stop them:
// Child says how to re-execute the drill's binary, whose hidden
// subcommands call RunChild. docs/design.md ("Drill") describes the
// simulators, what counts as a damaged file, and how overhead is measured.
package drill

# Helpers the bench scripts share; source it after setting ROOT.

# log MESSAGE: a timestamped progress line, on stderr.
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# fail MESSAGE [LOGFILE]: stop loudly, showing the end of the log.
fail() {
	printf '\n!!! BENCH FAILURE: %s\n' "$1" >&2
	if [[ -n ${2:-} && -f $2 ]]; then
		printf '!!! last lines of %s:\n' "$2" >&2
		tail -n 30 "$2" >&2
	fi
	exit 1
}

# drop_caches: write back and drop the page cache, so the next command
# reads from disk (needs root).
drop_caches() { sync && echo 3 >/proc/sys/vm/drop_caches; }

# tree_bytes DIR: the bytes of the regular files under DIR.
tree_bytes() { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d\n", s }'; }

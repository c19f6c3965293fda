#!/usr/bin/env bash
# Recovery speed ("Back in minutes"), in one run on one corpus, against
# restic and the disk itself:
#  - dd: the disk's write throughput, 1 GiB of zeros with conv=fdatasync;
#  - full: kalaja restore of the whole snapshot into an empty folder, then
#    sync, against dd's throughput (target: at least 90%);
#  - inplace: the corpus with 10% of its text and media files encrypted and
#    renamed by simulated ransomware (corpus -damage, notes in every folder
#    it touched), repaired by kalaja recover --in-place, then sync (target:
#    at most a quarter of full);
#  - restic: the same damage repaired by restic 0.19.1
#    restore latest:SRC --target SRC --overwrite if-changed --delete, then
#    sync (target: kalaja at least 2x faster).
# Both repairs are checked with diff -r against the pristine corpus. Every
# measured command runs after the page cache is dropped, in rotating order,
# BENCH_REPS times; the report shows medians and PASS/FAIL lines.
#
# Knobs (environment): BENCH_SIZE (1GiB), BENCH_REPS (3), BENCH_SEED (1),
# BENCH_FRACTION (0.1), BENCH_DIR (/tmp/kalaja-bench-recover). restic 0.19.1
# is installed into BENCH_DIR/bin with go install when missing.
# BENCH_BASE=REV (a git revision) adds two arms, full0 and inplace0: the
# same full restore and repair in place by kalaja built from REV, set up
# alike (the backups are made by this tree's kalaja in every arm), so that
# a change is measured before and after in one run, under the same load.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/bench/lib.sh"
SIZE=${BENCH_SIZE:-1GiB}
REPS=${BENCH_REPS:-3}
SEED=${BENCH_SEED:-1}
FRACTION=${BENCH_FRACTION:-0.1}

mkdir -p "${BENCH_DIR:-/tmp/kalaja-bench-recover}"
WORK=$(cd "${BENCH_DIR:-/tmp/kalaja-bench-recover}" && pwd -P)
BIN=$WORK/bin
KALAJA=$BIN/kalaja
KALAJA0=$BIN/kalaja0
BASE=${BENCH_BASE:-}
RESTIC=$BIN/restic
CORPUS=$WORK/corpus
SRC=$WORK/src
LOGS=$WORK/logs
RESULTS=$WORK/results.tsv
export KALAJA_PASSWORD=bench-password RESTIC_PASSWORD=bench-password
export KALAJA_STATE_DIR=$WORK/state KALAJA_ALERT_LOG=$WORK/state/alerts.jsonl
RUNNING=

[[ $(id -u) == 0 ]] || fail "run as root: the page cache is dropped before every measurement"
mkdir -p "$BIN" "$LOGS"
log "building kalaja and the corpus generator"
(cd "$ROOT" && go build -o "$BIN/corpus" ./bench/corpus && go build -o "$KALAJA" ./cmd/kalaja) || fail "build"
if [[ -n $BASE ]]; then
	log "building kalaja at $BASE"
	rm -rf "$WORK/base-src" && mkdir -p "$WORK/base-src"
	(cd "$ROOT" && git archive "$BASE") | tar -x -C "$WORK/base-src" || fail "git archive $BASE"
	(cd "$WORK/base-src" && go build -o "$KALAJA0" ./cmd/kalaja) || fail "build $BASE"
fi
if [[ ! -x $RESTIC ]]; then
	log "installing restic 0.19.1"
	GOBIN=$BIN go install github.com/restic/restic/cmd/restic@v0.19.1 || fail "go install restic"
fi
"$RESTIC" version | grep -q '0\.19\.1' || fail "restic is not 0.19.1: $("$RESTIC" version)"

stamp="$SIZE $SEED $(sha256sum "$ROOT"/bench/corpus/*.go | sha256sum | cut -c1-16)"
if [[ ! -f $WORK/corpus.stamp || $(cat "$WORK/corpus.stamp") != "$stamp" ]]; then
	log "generating a $SIZE corpus"
	rm -rf "$CORPUS" && "$BIN/corpus" -out "$CORPUS" -size "$SIZE" -seed "$SEED" >/dev/null || fail "corpus"
	echo "$stamp" >"$WORK/corpus.stamp"
fi
SOURCE_BYTES=$(tree_bytes "$CORPUS")

# measure NAME COMMAND...: run COMMAND then sync, after dropping the page
# cache; record its wall seconds.
measure() {
	local name=$1 t0 t1
	shift
	drop_caches
	t0=$EPOCHREALTIME
	"$@" >"$LOGS/rep$rep-$name.log" 2>&1 || fail "$name (rep $rep): $*" "$LOGS/rep$rep-$name.log"
	sync
	t1=$EPOCHREALTIME
	awk -v n="$name" -v r="$rep" -v a="$t0" -v b="$t1" -v s="$SOURCE_BYTES" 'BEGIN {
		printf "%s\t%s\t%.3f\n", n, r, b - a >> "'"$RESULTS"'"
		printf "    %-8s %8.2f s %8.1f MB/s of the corpus\n", n, b - a, s / 1e6 / (b - a) > "/dev/stderr" }'
}

# fresh_src: the pristine corpus at SRC.
fresh_src() { rm -rf "$SRC" && cp -a "$CORPUS" "$SRC"; }

# damage: SRC encrypted as the ransomware simulator does; the same files
# every time.
damage() { "$BIN/corpus" -damage "$SRC" -fraction "$FRACTION" -seed 3 >"$LOGS/rep$rep-damage.log" || fail "damage"; }

check_src() { # NAME: SRC must be the pristine corpus again
	diff -r --no-dereference "$CORPUS" "$SRC" >"$LOGS/rep$rep-$1-diff.log" 2>&1 ||
		fail "$1 (rep $rep): the repaired tree differs from the corpus" "$LOGS/rep$rep-$1-diff.log"
}

# Each tool repairs the very tree it backed up, as on a host: files the
# attack did not touch keep their inodes and times.
kalaja_backup() {
	"$KALAJA" backup -q --repo "$WORK/kalaja-repo" "$SRC" >"$LOGS/rep$rep-backup.log" 2>&1 || fail "kalaja backup" "$LOGS/rep$rep-backup.log"
}
restic_backup() {
	"$RESTIC" -r "$WORK/restic-repo" backup "$SRC" >"$LOGS/rep$rep-restic-backup.log" 2>&1 || fail "restic backup" "$LOGS/rep$rep-restic-backup.log"
}

dd_run() { dd if=/dev/zero of="$WORK/dd.img" bs=1M count=$((SOURCE_BYTES >> 20)) conv=fdatasync; }
full_run() { "${1:-$KALAJA}" restore -q --repo "$WORK/kalaja-repo" latest --target "$WORK/full"; }
inplace_run() { "${1:-$KALAJA}" recover -q --repo "$WORK/kalaja-repo" "$SRC" --in-place --quarantine "$WORK/quarantine/$rep-$RANDOM"; }
restic_run() { "$RESTIC" -r "$WORK/restic-repo" restore "latest:$SRC" --target "$SRC" --overwrite if-changed --delete; }

: >"$RESULTS"
for ((rep = 1; rep <= REPS; rep++)); do
	log "repetition $rep of $REPS"
	rm -rf "$WORK/kalaja-repo" "$WORK/restic-repo" "$WORK/state" "$WORK/quarantine" "$WORK/full" "$WORK/dd.img"
	fresh_src
	"$KALAJA" init -q --repo "$WORK/kalaja-repo" >"$LOGS/rep$rep-init.log" 2>&1 || fail "kalaja init" "$LOGS/rep$rep-init.log"
	kalaja_backup
	"$RESTIC" -r "$WORK/restic-repo" init >"$LOGS/rep$rep-restic-init.log" 2>&1 || fail "restic init" "$LOGS/rep$rep-restic-init.log"
	order=(dd full kalaja restic)
	[[ -z $BASE ]] || order=(dd full kalaja full0 kalaja0 restic)
	for ((i = 0; i < rep - 1; i++)); do order=("${order[@]:1}" "${order[0]}"); done
	for tool in "${order[@]}"; do
		case $tool in
		dd) rm -f "$WORK/dd.img" && measure dd dd_run && rm -f "$WORK/dd.img" ;;
		full) rm -rf "$WORK/full" && sync && measure full full_run && rm -rf "$WORK/full" ;;
		full0) rm -rf "$WORK/full" && sync && measure full0 full_run "$KALAJA0" && rm -rf "$WORK/full" ;;
		kalaja) fresh_src && kalaja_backup && damage && measure inplace inplace_run && check_src inplace ;;
		kalaja0) fresh_src && kalaja_backup && damage && measure inplace0 inplace_run "$KALAJA0" && check_src inplace0 ;;
		restic) fresh_src && restic_backup && damage && measure restic restic_run && check_src restic ;;
		esac
	done
done
tail -n 1 "$LOGS/rep1-damage.log" >&2

awk -F'\t' -v s="$SOURCE_BYTES" '
	{ v[$1] = v[$1] " " $3 }
	function med(list,   a, n, i, j, t) {
		n = split(list, a, " ")
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	END {
		dd = med(v["dd"]); full = med(v["full"]); inplace = med(v["inplace"]); restic = med(v["restic"])
		printf "\n### Recovery, medians of %d\n\n", split(v["dd"], x, " ")
		printf "| measurement | seconds | MB/s of the corpus |\n|---|---:|---:|\n"
		printf "| dd of the corpus size, with fdatasync | %.2f | %.1f |\n", dd, s / 1e6 / dd
		printf "| kalaja restore (full) + sync | %.2f | %.1f |\n", full, s / 1e6 / full
		printf "| kalaja recover --in-place + sync | %.2f | |\n", inplace
		printf "| restic restore --overwrite if-changed --delete + sync | %.2f | |\n", restic
		if ("full0" in v) {
			full0 = med(v["full0"]); inplace0 = med(v["inplace0"])
			printf "| kalaja at '"$BASE"' restore (full) + sync | %.2f | %.1f |\n", full0, s / 1e6 / full0
			printf "| kalaja at '"$BASE"' recover --in-place + sync | %.2f | |\n", inplace0
		}
		printf "\n"
		r1 = dd / full; r2 = inplace / full; r3 = restic / inplace
		printf "full restore / disk throughput: %.2f (target >= 0.90): %s\n", r1, (r1 >= 0.90 ? "PASS" : "FAIL")
		printf "in-place / full restore time:   %.2f (target <= 0.25): %s\n", r2, (r2 <= 0.25 ? "PASS" : "FAIL")
		printf "restic / kalaja in-place time:  %.2f (target >= 2.00): %s\n", r3, (r3 >= 2 ? "PASS" : "FAIL")
		if ("full0" in v)
			printf "at '"$BASE"': full / disk %.2f, in-place / full %.2f, restic / in-place %.2f\n", dd / full0, inplace0 / full0, restic / inplace0
	}' "$RESULTS" | tee "$WORK/report.md"

#!/usr/bin/env bash
# The index at scale (issue 21, acceptance 1): on repositories whose index
# holds N million chunks (bench/indexgen), in one run and for each N:
#
#   - a backup of a small folder, cold (page cache dropped, local index
#     cache removed when kalaja has one) and then warm: peak RSS, and
#     start-up, from exec to the first open of a file of the folder (strace
#     timestamps of execve and openat);
#   - check (without --read-data): peak RSS and time;
#   - prune of a few packs (indexgen -bait before each, unmeasured): peak
#     RSS and time;
#
# medians of BENCH_REPS, then PASS/FAIL against the targets: backup at most
# 512 MiB and warm start-up under 5 s, check and prune at most 1 GiB (the
# acceptance states them at 100 million; the verdicts apply them at every
# N). With restic on PATH (or in ~/go/bin) and BENCH_RESTIC_FILES set, also
# restic's memory per blob (see below).
#
# Knobs (environment): BENCH_INDEX_N ("10 100", millions of chunks; empty:
# restic only),
# BENCH_AVG (200, average stored chunk in KiB: 20 TiB of small files at 100
# million; 512 is the default chunk size, 2.5 times as many packs),
# BENCH_REPS (3), BENCH_DIR (/tmp/kalaja-bench-index), BENCH_MEM_LIMIT_MIB
# (12288: a command whose RSS passes it is killed and reported as "over",
# so that a build whose index does not fit cannot take the shared machine
# down), BENCH_RESTIC_FILES ("": skip restic; e.g. "250000 1000000").
# Root, for dropping the page cache.
#
# The repositories are generated once per N and average (stamp beside each)
# and kept: 10 million take 1-1.7 GB and a few minutes, 100 million 13 GB
# and 12 minutes of CPU (44 on a busy machine). Do not run two of these on
# one BENCH_DIR at once: they share its results, time and guard files. Prune rewrites their index files (today's prune
# replaces every index file it finds) and the backups add small snapshots;
# neither changes what the next run measures beyond that.
#
# The local index cache: when 'kalaja backup --help' lists --cache-dir,
# every command runs with KALAJA_CACHE_DIR=$BENCH_DIR/cache-N and the cold
# backup starts without it; otherwise (today's in-heap index) cold and warm
# differ only by the page cache.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/bench/lib.sh"
NS=${BENCH_INDEX_N-10 100}
AVG=${BENCH_AVG:-200}
REPS=${BENCH_REPS:-3}
WORK=${BENCH_DIR:-/tmp/kalaja-bench-index}
LIMIT_KIB=$((${BENCH_MEM_LIMIT_MIB:-12288} * 1024))
RESTIC_FILES=${BENCH_RESTIC_FILES:-}
BIN=$WORK/bin
GEN_VERSION=1 # bump when indexgen's output changes, to regenerate

export KALAJA_PASSWORD=bench-index
export KALAJA_STATE_DIR=$WORK/state
export KALAJA_ADMIN_KEY_FILE=$WORK/admin.key

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

mkdir -p "$WORK" "$BIN" "$WORK/logs"
log "building kalaja and indexgen"
(cd "$ROOT" && go build -o "$BIN/kalaja" ./cmd/kalaja && go build -o "$BIN/indexgen" ./bench/indexgen)
K=$BIN/kalaja
CACHE=no
if "$K" backup --help | grep -q -- '--cache-dir'; then CACHE=yes; fi
log "local index cache: $CACHE"

# The small folder: 64 files of 64 KiB, made once.
if [[ ! -d $WORK/src ]]; then
	mkdir -p "$WORK/src.tmp"
	for i in $(seq -w 1 64); do head -c 65536 /dev/urandom >"$WORK/src.tmp/file-$i.dat"; done
	mv "$WORK/src.tmp" "$WORK/src"
fi
[[ -f $WORK/admin.key ]] || "$K" admin keygen --name bench-admin --out "$WORK/admin.key" >/dev/null

RESULTS=$WORK/results.tsv
printf 'n\trep\tphase\tseconds\tpeak_rss_kib\tstartup_s\n' >"$RESULTS"

# guard PID: kill PID's process tree's kalaja (or restic) if its RSS passes
# LIMIT_KIB; leaves a mark in $WORK/over.
guard() {
	local pid=$1 p rss
	while kill -0 "$pid" 2>/dev/null; do
		for p in $(descendants "$pid"); do
			rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
			if ((${rss:-0} > LIMIT_KIB)); then
				echo "$p $rss" >"$WORK/over"
				kill -9 "$p" 2>/dev/null || true
			fi
		done
		sleep 0.5
	done
}

# descendants PID: PID's child processes, recursively.
descendants() {
	local c
	for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		echo "$c"
		descendants "$c"
	done
}

# measure N REP PHASE LOG CMD...: runs CMD under GNU time (and the memory
# guard), appends a row to results.tsv. Start-up is filled in by the
# caller for backups (traced).
measure() {
	local n=$1 rep=$2 phase=$3 out=$4
	shift 4
	rm -f "$WORK/over"
	/usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >"$out" 2>&1 &
	local pid=$!
	guard "$pid" &
	local gpid=$!
	local rc=0
	wait "$pid" || rc=$?
	wait "$gpid" 2>/dev/null || true
	local secs rss
	read -r secs rss < <(tail -n 1 "$WORK/time")
	if [[ -f $WORK/over ]]; then
		log "  $phase: over ${BENCH_MEM_LIMIT_MIB:-12288} MiB, killed"
		secs=over
		rss=over
	elif ((rc != 0)); then
		fail "$phase at N=$n failed (exit $rc)" "$out"
	else
		log "  $phase: ${secs}s, peak ${rss} KiB"
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$rep" "$phase" "$secs" "$rss" - >>"$RESULTS"
}

# startup TRACE: seconds from kalaja's execve to its first open of a file
# (not a directory) of the small folder, from strace -ttt output.
startup() {
	awk -v src="\"$WORK/src/" '
		/execve\(/ && t0 == "" { t0 = $2 }
		/openat\(/ && index($0, src) && !/O_DIRECTORY/ && t1 == "" { t1 = $2 }
		END { if (t0 == "" || t1 == "") print "-"; else printf "%.3f\n", t1 - t0 }' "$1"
}

# backup N REP PHASE: one backup of the small folder, traced for start-up.
backup() {
	local n=$1 rep=$2 phase=$3 trace=$WORK/logs/strace-$1-$2-$3 up
	measure "$n" "$rep" "$phase" "$WORK/logs/$phase-$n-$rep.log" \
		strace -f --seccomp-bpf -e trace=execve,openat -ttt -o "$trace" \
		"$K" backup -q --force --host bench --repo "$WORK/repo-$n" "$WORK/src"
	up=$(startup "$trace")
	# measure wrote the row before start-up was known: fill it in.
	sed -i "\$s/-\$/$up/" "$RESULTS"
	log "  $phase start-up: ${up}s"
}

for n in $NS; do
	repo=$WORK/repo-$n
	stamp="n=$n avg=$AVG v=$GEN_VERSION"
	if [[ ! -f $repo.stamp || $(cat "$repo.stamp") != "$stamp" ]]; then
		log "generating $n million chunks into $repo"
		rm -rf "$repo" "$repo.stamp"
		/usr/bin/time -f '%e s, peak %M KiB' "$BIN/indexgen" -dir "$repo" -n "$n" -avg "$AVG" 2>&1 | tail -n 2
		echo "$stamp" >"$repo.stamp"
	fi
	log "N = $n million: $(du -sh "$repo" | cut -f1) on disk"
	export KALAJA_CACHE_DIR=$WORK/cache-$n
	for rep in $(seq 1 "$REPS"); do
		log "N=$n rep $rep/$REPS"
		[[ $CACHE == no ]] || rm -rf "$KALAJA_CACHE_DIR"
		drop_caches
		backup "$n" "$rep" backup-cold
		backup "$n" "$rep" backup-warm
		measure "$n" "$rep" check "$WORK/logs/check-$n-$rep.log" "$K" check --repo "$repo"
		"$BIN/indexgen" -dir "$repo" -bait 2>>"$WORK/logs/bait.log"
		measure "$n" "$rep" prune "$WORK/logs/prune-$n-$rep.log" "$K" prune --grace 0s --repo "$repo"
	done
done

# restic's memory per blob: one repository, backups of RESTIC_FILES
# (cumulative counts) tiny distinct files in folders of 1000; after each,
# 'restic check' and a backup of the small folder (warm page cache), peak
# RSS; bytes per blob is the slope between the first and the last.
RESTIC=$(command -v restic || echo "$HOME/go/bin/restic")
if [[ -n $RESTIC_FILES && -x $RESTIC ]]; then
	export RESTIC_PASSWORD=bench-index RESTIC_CACHE_DIR=$WORK/restic-cache
	rr=$WORK/restic-repo
	rm -rf "$rr" "$WORK/restic-src" "$RESTIC_CACHE_DIR"
	"$RESTIC" init -q --repository-version 2 --repo "$rr"
	made=0
	for count in $RESTIC_FILES; do
		log "restic: $count tiny files"
		while ((made < count)); do
			d=$WORK/restic-src/$((made / 1000))
			mkdir -p "$d"
			head -c 64000 /dev/urandom | split -b 64 -a 3 - "$d/f"
			made=$((made + 1000))
		done
		"$RESTIC" backup -q --repo "$rr" "$WORK/restic-src" >"$WORK/logs/restic-fill-$count.log" 2>&1
		blobs=$("$RESTIC" stats -q --json --mode raw-data --repo "$rr" | sed -n 's/.*"total_blob_count":\([0-9]*\).*/\1/p')
		log "  $blobs blobs"
		measure "restic-$blobs" 1 check "$WORK/logs/restic-check-$count.log" "$RESTIC" check -q --repo "$rr"
		measure "restic-$blobs" 1 backup-warm "$WORK/logs/restic-backup-$count.log" "$RESTIC" backup -q --force --host bench --repo "$rr" "$WORK/src"
	done
fi

# The report: medians per N and phase, verdicts.
printf '\n%-14s %-12s %10s %14s %11s  %s\n' "N (millions)" phase seconds "peak RSS MiB" "start-up s" "target"
verdicts=()
for n in $(awk -F'\t' 'NR > 1 { print $1 }' "$RESULTS" | awk '!seen[$0]++'); do
	for phase in backup-cold backup-warm check prune; do
		rows=$(awk -F'\t' -v n="$n" -v p="$phase" '$1 == n && $3 == p' "$RESULTS")
		[[ -n $rows ]] || continue
		if grep -q over <<<"$rows"; then
			printf '%-14s %-12s %10s %14s %11s  %s\n' "$n" "$phase" over "> $((LIMIT_KIB / 1024))" - "FAIL (killed)"
			[[ $n == restic-* ]] || verdicts+=("FAIL N=$n $phase: over $((LIMIT_KIB / 1024)) MiB")
			continue
		fi
		secs=$(cut -f4 <<<"$rows" | median)
		rss=$(cut -f5 <<<"$rows" | median)
		up=$(cut -f6 <<<"$rows" | { grep -v '^-$' || true; } | median)
		mib=$(awk -v k="$rss" 'BEGIN { printf "%.0f", k / 1024 }')
		target=
		if [[ $n != restic-* ]]; then
			case $phase in
			backup-*) limit=512 ;;
			*) limit=1024 ;;
			esac
			v=PASS
			((mib <= limit)) || v=FAIL
			target="$v <= $limit MiB"
			verdicts+=("$v N=$n $phase peak $mib MiB (<= $limit)")
			if [[ $phase == backup-warm && $up != - ]]; then
				v=PASS
				awk -v u="$up" 'BEGIN { exit !(u < 5) }' || v=FAIL
				target="$target; $v start-up < 5 s"
				verdicts+=("$v N=$n warm start-up ${up}s (< 5 s)")
			fi
		fi
		printf '%-14s %-12s %10s %14s %11s  %s\n' "$n" "$phase" "$secs" "$mib" "$up" "$target"
	done
done
printf '\nindex cache: %s; %s repetitions; raw rows: %s\n' "$CACHE" "$REPS" "$RESULTS"
printf '%s\n' "${verdicts[@]}"

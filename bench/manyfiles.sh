#!/usr/bin/env bash
# Many tiny files: first backup, incremental backup (nothing changed, then a
# few files changed) and restore of a generated tree of N tiny files
# (bench/manyfiles), for kalaja and restic, each timed under GNU time.
# Prints peak RSS, wall and CPU time, and the incremental's time per
# unchanged file, with PASS/FAIL against a peak RSS of at most 1 GiB and
# against the same tool's incremental on the reference tree (500,000 files).
#
# Knobs (environment):
#   MANYFILES_N        files in the tree (10000000)
#   MANYFILES_REF_N    files in the reference tree (500000); 0 skips it. Its
#                      results are reused while the binaries are unchanged.
#   MANYFILES_DIR      work directory (/tmp/kalaja-manyfiles): trees, repositories,
#                      restores, logs, results.tsv
#   MANYFILES_IMAGE    if set, an ext4 image file made for the run (sparse, with
#                      inodes for three trees of N files) and loop-mounted on
#                      MANYFILES_DIR: a root disk's inodes do not hold ten million
#                      files twice. Unmounted and deleted at the end unless
#                      MANYFILES_KEEP=1. Needs root.
#   MANYFILES_IMAGE_SIZE  its size (60G)
#   MANYFILES_TOOLS    "kalaja restic" (any subset)
#   MANYFILES_CHANGES  files rewritten before the second incremental (1000)
#   MANYFILES_NICE     niceness of everything measured (10)
#   MANYFILES_RESTORE  false skips the restore and its comparison (true)
#   KALAJA             a kalaja binary to use instead of building cmd/kalaja
#
# The page cache is not dropped: the trees' metadata stays warm, as on a
# host backed up every hour. Restic 0.19.1 is installed with go install when
# missing from PATH and ~/go/bin.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/bench/lib.sh"
N=${MANYFILES_N:-10000000}
REF_N=${MANYFILES_REF_N:-500000}
WORK=${MANYFILES_DIR:-/tmp/kalaja-manyfiles}
IMAGE=${MANYFILES_IMAGE:-}
IMAGE_SIZE=${MANYFILES_IMAGE_SIZE:-60G}
read -ra TOOLS <<<"${MANYFILES_TOOLS:-kalaja restic}"
CHANGES=${MANYFILES_CHANGES:-1000}
NICE=${MANYFILES_NICE:-10}
RESTORE=${MANYFILES_RESTORE:-true}
LIMIT_KIB=$((1024 * 1024)) # 1 GiB
TOLERANCE=1.10             # per-file incremental time may be 10% above the reference (noise)
RESTIC_VERSION=0.19.1

export KALAJA_PASSWORD=bench-password RESTIC_PASSWORD=bench-password

mount_image() {
	mkdir -p "$WORK"
	if mountpoint -q "$WORK"; then
		fail "$WORK is already a mount point; unmount it or choose another MANYFILES_DIR"
	fi
	local inodes=$((3 * (N > REF_N ? N : REF_N) + 1000000))
	log "making an ext4 image $IMAGE ($IMAGE_SIZE, $inodes inodes) on $WORK"
	truncate -s "$IMAGE_SIZE" "$IMAGE"
	mkfs.ext4 -q -F -O inline_data -I 256 -N "$inodes" "$IMAGE"
	mount -o loop,noatime "$IMAGE" "$WORK"
	if [[ ${MANYFILES_KEEP:-0} != 1 ]]; then
		trap 'cd /; umount "$WORK" && rm -f "$IMAGE"' EXIT
	fi
}

build() {
	local bin=$WORK/bin
	mkdir -p "$bin"
	(cd "$ROOT" && go build -o "$bin/manyfiles" ./bench/manyfiles) || fail "cannot build bench/manyfiles"
	GEN=$bin/manyfiles
	if [[ " ${TOOLS[*]} " == *" kalaja "* ]]; then
		if [[ -n ${KALAJA:-} ]]; then
			KALAJA_BIN=$KALAJA
		else
			(cd "$ROOT" && go build -o "$bin/kalaja" ./cmd/kalaja) || fail "cannot build kalaja"
			KALAJA_BIN=$bin/kalaja
		fi
	fi
	if [[ " ${TOOLS[*]} " == *" restic "* ]]; then
		RESTIC_BIN=$(command -v restic || true)
		[[ -z $RESTIC_BIN && -x $HOME/go/bin/restic ]] && RESTIC_BIN=$HOME/go/bin/restic
		if [[ -z $RESTIC_BIN ]] || ! "$RESTIC_BIN" version | grep -q "restic $RESTIC_VERSION"; then
			log "installing restic $RESTIC_VERSION"
			GOBIN=$bin go install "github.com/restic/restic/cmd/restic@v$RESTIC_VERSION" || fail "cannot install restic"
			RESTIC_BIN=$bin/restic
		fi
	fi
}

# binary_of tool: the binary measured, for reusing the reference's results.
binary_of() {
	case $1 in
	kalaja) echo "$KALAJA_BIN" ;;
	restic) echo "$RESTIC_BIN" ;;
	esac
}

# tree n: the tree of n files, generated once per generator.
tree() {
	local n=$1 dir=$WORK/src-$1 stamp
	stamp="n=$n generator=$(sha256sum "$GEN" | cut -c1-16)"
	if [[ ! -f $dir.stamp || $(<"$dir.stamp") != "$stamp" ]]; then
		log "generating $n files in $dir"
		rm -rf "$dir" "$dir.stamp"
		nice -n "$NICE" "$GEN" -n "$n" -dir "$dir"
		echo "$stamp" >"$dir.stamp"
	fi
	SRC=$dir
}

# measure n tool phase cmd...: run cmd under GNU time, record and print a row.
measure() {
	local n=$1 tool=$2 phase=$3
	shift 3
	local log=$WORK/logs/$n-$tool-$phase.log timing=$WORK/logs/time.out secs rss user sys
	if ! nice -n "$NICE" /usr/bin/time -f '%e %M %U %S' -o "$timing" "$@" >"$log" 2>&1; then
		fail "$tool $phase ($n files): $*" "$log"
	fi
	read -r secs rss user sys <"$timing"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$tool" "$phase" "$secs" "$rss" "$user" "$sys" "$(sha256sum "$(binary_of "$tool")" | cut -c1-16)" >>"$RESULTS"
	awk -v n="$n" -v t="$tool" -v p="$phase" -v s="$secs" -v m="$rss" -v u="$user" -v y="$sys" 'BEGIN {
		printf "    %9d files  %-7s %-13s %8.1f s wall %8.1f s CPU %6.0f MiB RSS\n", n, t, p, s, u + y, m / 1024 }'
}

# change n k: append to k files of the tree (every n/k-th), so that their
# size, mtime and content differ; unchange undoes it (but for the times).
change() {
	local step=$(($1 / $2 > 0 ? $1 / $2 : 1))
	find "$SRC" -type f | awk -v s="$step" 'NR % s == 1' | head -n "$2" >"$WORK/changed.list"
	while read -r f; do printf 'changed' >>"$f"; done <"$WORK/changed.list"
}

unchange() {
	while read -r f; do truncate -s -7 "$f"; done <"$WORK/changed.list"
}

run_tool() { # n tool
	local n=$1 tool=$2 repo=$WORK/repo-$2 target=$WORK/restore-$2 restored files
	rm -rf "$repo" "$target" "$WORK/cache-$tool"
	export KALAJA_CACHE_DIR=$WORK/cache-kalaja RESTIC_CACHE_DIR=$WORK/cache-restic
	case $tool in
	kalaja)
		"$KALAJA_BIN" init --repo "$repo" >"$WORK/logs/$n-$tool-init.log" 2>&1 || fail "kalaja init" "$WORK/logs/$n-$tool-init.log"
		measure "$n" kalaja backup "$KALAJA_BIN" backup --repo "$repo" "$SRC"
		measure "$n" kalaja incremental "$KALAJA_BIN" backup --repo "$repo" "$SRC"
		change "$n" "$CHANGES"
		measure "$n" kalaja changed "$KALAJA_BIN" backup --repo "$repo" "$SRC"
		[[ $RESTORE != true ]] || measure "$n" kalaja restore "$KALAJA_BIN" restore latest --repo "$repo" --target "$target"
		;;
	restic)
		"$RESTIC_BIN" init --repo "$repo" >"$WORK/logs/$n-$tool-init.log" 2>&1 || fail "restic init" "$WORK/logs/$n-$tool-init.log"
		measure "$n" restic backup "$RESTIC_BIN" --repo "$repo" backup "$SRC"
		measure "$n" restic incremental "$RESTIC_BIN" --repo "$repo" backup "$SRC"
		change "$n" "$CHANGES"
		measure "$n" restic changed "$RESTIC_BIN" --repo "$repo" backup "$SRC"
		[[ $RESTORE != true ]] || measure "$n" restic restore "$RESTIC_BIN" --repo "$repo" restore latest --target "$target"
		;;
	esac
	if [[ $RESTORE != true ]]; then
		unchange
		rm -rf "$repo"
		return
	fi
	restored=$target$SRC
	files=$(find "$restored" -type f | wc -l)
	[[ $files == "$n" ]] || fail "$tool restored $files files of $n"
	# A full diff of ten million files costs more than the restore: compare
	# the first and the last folder byte for byte, and count the rest.
	for d in $(find "$SRC" -type f -printf '%h\n' | sed -n '1p;$p'); do
		diff -rq --no-dereference "$d" "$target$d" >/dev/null || fail "RESTORE MISMATCH: $tool, folder $d"
	done
	unchange
	rm -rf "$repo" "$target"
}

# reuse n tool: whether results.tsv already holds all of tool's phases at
# n files with the same binary.
reuse() {
	local sum
	sum=$(sha256sum "$(binary_of "$2")" | cut -c1-16)
	[[ $(awk -v n="$1" -v t="$2" -v s="$sum" '$1 == n && $2 == t && $8 == s' "$RESULTS" 2>/dev/null | wc -l) -ge $([[ $RESTORE == true ]] && echo 4 || echo 3) ]]
}

report() {
	echo
	echo "Peak RSS limit 1 GiB; incremental time per unchanged file against $REF_N files (tolerance ${TOLERANCE}x):"
	awk -v N="$N" -v R="$REF_N" -v L="$LIMIT_KIB" -v tol="$TOLERANCE" -F'\t' '
		$1 == N || $1 == R { last[$1 FS $2 FS $3] = $0 }
		END {
			for (k in last) {
				split(last[k], f, FS)
				if (f[1] != N) continue
				printf "  %-7s %-12s %7.1f s  %6.0f MiB  %s\n", f[2], f[3], f[4], f[5] / 1024, (f[5] <= L ? "PASS" : "FAIL (> 1 GiB)")
				if (f[3] == "incremental") {
					per = f[4] / N * 1e6
					cpu = (f[6] + f[7]) / N * 1e6
					line = "  " f[2] " incremental per unchanged file: " sprintf("%.2f us wall, %.2f us CPU", per, cpu)
					if (R > 0 && (R FS f[2] FS "incremental") in last) {
						split(last[R FS f[2] FS "incremental"], g, FS)
						ref = g[4] / R * 1e6
						refcpu = (g[6] + g[7]) / R * 1e6
						line = line sprintf(" (at %d files: %.2f us wall, %.2f us CPU; wall ratio %.2f) %s", R, ref, refcpu, per / ref, (per <= ref * tol ? "PASS" : "FAIL"))
					}
					inc[f[2]] = line
				}
			}
			for (t in inc) print inc[t]
		}' "$RESULTS" | sort
}

main() {
	[[ -n $IMAGE ]] && mount_image
	mkdir -p "$WORK/logs"
	build
	RESULTS=$WORK/results.tsv
	[[ -f $RESULTS ]] || printf 'files\ttool\tphase\tseconds\tpeak_rss_kib\tuser_s\tsys_s\tbinary\n' >"$RESULTS"
	local n
	for n in $REF_N $N; do
		[[ $n == 0 ]] && continue
		[[ $n == "$REF_N" && $n == "$N" && -n ${done_ref:-} ]] && continue
		done_ref=1
		tree "$n"
		for tool in "${TOOLS[@]}"; do
			if [[ $n == "$REF_N" && $n != "$N" ]] && reuse "$n" "$tool"; then
				log "reusing $tool's results at $n files"
				continue
			fi
			log "$tool, $n files"
			run_tool "$n" "$tool"
		done
	done
	report
}

main "$@"

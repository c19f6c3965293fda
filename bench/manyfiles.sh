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
#   MANYFILES_REF_N    files in the reference tree (500000); 0 skips it
#   MANYFILES_ROUNDS   unchanged incrementals of each tree (3), alternating
#                      between the trees; the report takes the median
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
ROUNDS=${MANYFILES_ROUNDS:-3}
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

# binary_of tool: the binary measured.
binary_of() {
	case $1 in
	kalaja) echo "$KALAJA_BIN" ;;
	restic) echo "$RESTIC_BIN" ;;
	esac
}

# tree n: generate the tree of n files once per generator; prints its path.
tree() {
	local n=$1 dir=$WORK/src-$1 stamp
	stamp="n=$n generator=$(sha256sum "$GEN" | cut -c1-16)"
	if [[ ! -f $dir.stamp || $(<"$dir.stamp") != "$stamp" ]]; then
		log "generating $n files in $dir"
		rm -rf "$dir" "$dir.stamp"
		nice -n "$NICE" "$GEN" -n "$n" -dir "$dir" >&2
		echo "$stamp" >"$dir.stamp"
	fi
	echo "$dir"
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
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$RUN" "$n" "$tool" "$phase" "$secs" "$rss" "$user" "$sys" "$(sha256sum "$(binary_of "$tool")" | cut -c1-16)" >>"$RESULTS"
	awk -v n="$n" -v t="$tool" -v p="$phase" -v s="$secs" -v m="$rss" -v u="$user" -v y="$sys" 'BEGIN {
		printf "    %9d files  %-7s %-13s %8.1f s wall %8.1f s CPU %6.0f MiB RSS\n", n, t, p, s, u + y, m / 1024 }'
}

# change src n k: append to k files of the tree of n files (every n/k-th),
# so that their size, mtime and content differ; unchange undoes it (but
# for the times).
change() {
	local step=$(($2 / $3 > 0 ? $2 / $3 : 1))
	find "$1" -type f | awk -v s="$step" 'NR % s == 1' | head -n "$3" >"$WORK/changed-$2.list"
	while read -r f; do printf 'changed' >>"$f"; done <"$WORK/changed-$2.list"
}

unchange() {
	while read -r f; do truncate -s -7 "$f"; done <"$WORK/changed-$1.list"
}

# backup n tool phase: one backup of the tree of n files into tool's
# repository for it.
backup() {
	local n=$1 tool=$2 repo=$WORK/repo-$2-$1 src=$WORK/src-$1
	export KALAJA_CACHE_DIR=$WORK/cache-kalaja-$n RESTIC_CACHE_DIR=$WORK/cache-restic-$n
	case $tool in
	kalaja) measure "$n" kalaja "$3" "$KALAJA_BIN" backup --repo "$repo" "$src" ;;
	restic) measure "$n" restic "$3" "$RESTIC_BIN" --repo "$repo" backup "$src" ;;
	esac
}

# first n tool: a new repository and the first backup into it.
first() {
	local n=$1 tool=$2 repo=$WORK/repo-$2-$1
	rm -rf "$repo" "$WORK/cache-$tool-$n"
	case $tool in
	kalaja) "$KALAJA_BIN" init --repo "$repo" >"$WORK/logs/$n-$tool-init.log" 2>&1 || fail "kalaja init" "$WORK/logs/$n-$tool-init.log" ;;
	restic) "$RESTIC_BIN" init --repo "$repo" >"$WORK/logs/$n-$tool-init.log" 2>&1 || fail "restic init" "$WORK/logs/$n-$tool-init.log" ;;
	esac
	backup "$n" "$tool" backup
}

# last n tool: a backup after a few changes, the restore and its check,
# and the repository removed.
last() {
	local n=$1 tool=$2 repo=$WORK/repo-$2-$1 target=$WORK/restore-$2 src=$WORK/src-$1 restored files d
	change "$src" "$n" "$CHANGES"
	backup "$n" "$tool" changed
	if [[ $RESTORE == true ]]; then
		rm -rf "$target"
		case $tool in
		kalaja) measure "$n" kalaja restore "$KALAJA_BIN" restore latest --repo "$repo" --target "$target" ;;
		restic) measure "$n" restic restore "$RESTIC_BIN" --repo "$repo" restore latest --target "$target" ;;
		esac
		restored=$target$src
		files=$(find "$restored" -type f | wc -l)
		[[ $files == "$n" ]] || fail "$tool restored $files files of $n"
		# A full diff of ten million files costs more than the restore:
		# compare the first and the last folder byte for byte, and count
		# the rest.
		for d in $(find "$src" -type f -printf '%h\n' | sed -n '1p;$p'); do
			diff -rq --no-dereference "$d" "$target$d" >/dev/null || fail "RESTORE MISMATCH: $tool, folder $d"
		done
	fi
	unchange "$n"
	rm -rf "$repo" "$target"
}

# report: this run's rows; for the incremental, the median of its rounds.
report() {
	echo
	echo "Peak RSS limit 1 GiB; incremental time per unchanged file, median of $ROUNDS rounds, against $REF_N files (tolerance ${TOLERANCE}x):"
	awk -v run="$RUN" -v N="$N" -v R="$REF_N" -v L="$LIMIT_KIB" -v tol="$TOLERANCE" -F'\t' '
		function median(s,   a, k, i, j, t) {
			k = split(s, a, " ")
			for (i = 2; i <= k; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
			return k % 2 ? a[(k+1)/2] : (a[k/2] + a[k/2+1]) / 2
		}
		$1 != run { next }
		{
			k = $2 FS $3 FS $4
			if (!(k in rss) || $6 > rss[k]) rss[k] = $6
			wall[k] = wall[k] " " $5 / $2 * 1e6
			cpu[k] = cpu[k] " " ($7 + $8) / $2 * 1e6
			secs[k] = secs[k] " " $5
			tools[$3] = 1
		}
		END {
			for (t in tools) {
				for (p = 1; p <= 4; p++) {
					phase = p == 1 ? "backup" : p == 2 ? "incremental" : p == 3 ? "changed" : "restore"
					k = N FS t FS phase
					if (!(k in rss)) continue
					printf "  %-7s %-12s %7.1f s  %6.0f MiB  %s\n", t, phase, median(secs[k]), rss[k] / 1024, (rss[k] <= L ? "PASS" : "FAIL (> 1 GiB)")
				}
				k = N FS t FS "incremental"
				if (!(k in wall)) continue
				line = sprintf("  %s incremental per unchanged file: %.2f us wall (rounds:%s), %.2f us CPU", t, median(wall[k]), wall[k], median(cpu[k]))
				r = R FS t FS "incremental"
				if (R > 0 && R != N && (r in wall)) {
					per = median(wall[k]); ref = median(wall[r])
					line = line sprintf("; at %d files %.2f us wall (rounds:%s), %.2f us CPU; wall ratio %.2f %s", R, ref, wall[r], median(cpu[r]), per / ref, (per <= ref * tol ? "PASS" : "FAIL"))
				}
				print line
			}
		}' "$RESULTS" | sort
}

main() {
	[[ -n $IMAGE ]] && mount_image
	mkdir -p "$WORK/logs"
	build
	RESULTS=$WORK/results.tsv
	RUN=$(date +%Y%m%dT%H%M%S)
	[[ -f $RESULTS ]] || printf 'run\tfiles\ttool\tphase\tseconds\tpeak_rss_kib\tuser_s\tsys_s\tbinary\n' >"$RESULTS"
	local sizes=() n tool r
	for n in $REF_N $N; do
		[[ $n == 0 || " ${sizes[*]} " == *" $n "* ]] || sizes+=("$n")
	done
	for n in "${sizes[@]}"; do
		tree "$n" >/dev/null
	done
	for tool in "${TOOLS[@]}"; do
		for n in "${sizes[@]}"; do
			log "$tool, $n files: first backup"
			first "$n" "$tool"
		done
		# The sizes' incrementals alternate, so that each meets the
		# machine and the caches as the other does.
		for r in $(seq "$ROUNDS"); do
			for n in "${sizes[@]}"; do
				log "$tool, $n files: incremental, round $r of $ROUNDS"
				backup "$n" "$tool" incremental
			done
		done
		for n in "${sizes[@]}"; do
			log "$tool, $n files: $CHANGES changed, restore"
			last "$n" "$tool"
		done
	done
	report
}

main "$@"

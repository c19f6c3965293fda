#!/usr/bin/env bash
# Peer benchmark of the vault core: kalaja against restic and borg on a
# generated corpus. First backup, day-2 incremental backup and restore (until
# its data is on disk: the sync after it is timed too), each timed under GNU
# time, every restore verified byte for byte. See README.md.
#
# Knobs (environment): BENCH_SIZE (1GiB), BENCH_REPS (3), BENCH_DIR
# (/tmp/kalaja-bench), BENCH_TOOLS ("kalaja restic borg"), BENCH_SEED (1),
# BENCH_KALAJA_BASE (another kalaja binary, say an older build, measured in
# the same run as the tool "kalaja-base": the report's kalaja / peer table
# then says whether a change made kalaja slower).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/bench/lib.sh"
SIZE=${BENCH_SIZE:-1GiB}
REPS=${BENCH_REPS:-3}
SEED=${BENCH_SEED:-1}
MUTATE_SEED=2
read -ra TOOLS <<<"${BENCH_TOOLS:-kalaja restic borg}"
KALAJA_BASE=${BENCH_KALAJA_BASE:-}
if [[ -n $KALAJA_BASE ]]; then
	[[ -x $KALAJA_BASE ]] || fail "BENCH_KALAJA_BASE: $KALAJA_BASE is not an executable"
	TOOLS+=(kalaja-base)
fi

mkdir -p "${BENCH_DIR:-/tmp/kalaja-bench}"
WORK=$(cd "${BENCH_DIR:-/tmp/kalaja-bench}" && pwd -P)
CORPUS=$WORK/corpus        # pristine day-1 corpus, reused while its stamp matches
SRC=$WORK/src              # what gets backed up; the same path every repetition
STATE=$WORK/state          # repositories and caches, new every repetition
RESTORE=$WORK/restore      # restore targets
LOGS=$WORK/logs
RESULTS=$WORK/results.tsv
BIN=$WORK/bin
KALAJA=$BIN/kalaja

export RESTIC_PASSWORD=bench-password KALAJA_PASSWORD=bench-password BORG_PASSPHRASE=bench-password
export RESTIC_CACHE_DIR=$STATE/cache/restic
export KALAJA_CACHE_DIR=$STATE/cache/kalaja
export BORG_BASE_DIR=$STATE/cache/borg
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export BORG_DISPLAY_PASSPHRASE=no

install_tools() {
	local need=()
	for tool in "${TOOLS[@]}"; do
		case $tool in
		restic) command -v restic >/dev/null || need+=(restic) ;;
		borg) command -v borg >/dev/null || need+=(borgbackup) ;;
		kalaja | kalaja-base) ;;
		*) fail "unknown tool '$tool' in BENCH_TOOLS (known: kalaja restic borg)" ;;
		esac
	done
	[[ -x /usr/bin/time ]] || need+=(time)
	if ((${#need[@]})); then
		log "installing ${need[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
	fi
}

build() {
	mkdir -p "$BIN"
	(cd "$ROOT" && go build -o "$BIN/corpus" ./bench/corpus && go build -o "$BIN/report" ./bench/report)
	if [[ " ${TOOLS[*]} " == *" kalaja "* ]]; then
		(cd "$ROOT" && go build -o "$KALAJA" ./cmd/kalaja) ||
			fail "cannot build kalaja; run with BENCH_TOOLS='restic borg' to compare the peers only"
	fi
}

# cold: empty the page cache before a measured phase, when allowed.
cold() { if ((COLD)); then drop_caches; fi; }

# cpu_busy: busy CPU ticks of the whole machine so far (all but idle and iowait).
cpu_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
CLK_TCK=$(getconf CLK_TCK)

source_bytes() { find "$SRC" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d\n", s }'; }

repo_of() { echo "$STATE/$1/repo"; }

# kalaja_of tool: the binary of kalaja or kalaja-base.
kalaja_of() { if [[ $1 == kalaja-base ]]; then echo "$KALAJA_BASE"; else echo "$KALAJA"; fi; }

init_repo() { # tool
	local repo log=$LOGS/rep$rep-$1-init.log
	repo=$(repo_of "$1")
	mkdir -p "$(dirname "$repo")"
	case $1 in
	restic) restic init --repo "$repo" "${RESTIC_INIT_FLAGS[@]}" ;;
	borg) borg init --encryption=repokey-blake2 "$repo" ;;
	kalaja | kalaja-base) "$(kalaja_of "$1")" init --repo "$repo" ;;
	esac >"$log" 2>&1 || fail "$1 init (rep $rep)" "$log"
	[[ -d $repo ]] || fail "$1 init did not create $repo" "$log"
}

# The measured commands are set in CMD, to run in directory CMD_DIR.
backup_cmd() { # tool archive-name
	local repo
	repo=$(repo_of "$1")
	CMD_DIR=$WORK
	case $1 in
	restic) CMD=(restic --repo "$repo" backup "$SRC") ;;
	borg) CMD=(borg create --stats "$repo::$2" src) ;; # relative, from $WORK
	kalaja | kalaja-base) CMD=("$(kalaja_of "$1")" backup --repo "$repo" "$SRC") ;;
	esac
}

restore_cmd() { # tool target
	local repo
	repo=$(repo_of "$1")
	CMD_DIR=$2
	case $1 in
	restic) CMD=(restic --repo "$repo" restore latest --target "$2") ;;
	borg) CMD=(borg extract "$repo::$(borg list --last 1 --short "$repo")") ;;
	kalaja | kalaja-base) CMD=("$(kalaja_of "$1")" restore latest --repo "$repo" --target "$2") ;;
	esac
	# A restore is done when what it wrote is on disk: timed with the
	# sync after it, for every tool alike. Without it, a tool that leaves
	# the whole restore dirty in the page cache (1 GiB is below the
	# kernel's dirty threshold here) is timed before its writes begin,
	# and one that starts them as each file completes (kalaja) pays
	# them within its time.
	CMD=(sh -c '"$@" && sync' restore "${CMD[@]}")
}

# restored_root tool target: where the copy of $SRC lands under target.
restored_root() {
	case $1 in
	borg) echo "$2/src" ;;
	*) echo "$2$SRC" ;; # restic and kalaja recreate the absolute path
	esac
}

list_snapshots() { # tool: a sanity check, not measured
	local repo log=$LOGS/rep$rep-$1-snapshots.log
	repo=$(repo_of "$1")
	case $1 in
	restic) restic --repo "$repo" snapshots --json ;;
	borg) borg list --json "$repo" ;;
	kalaja | kalaja-base) "$(kalaja_of "$1")" snapshots --repo "$repo" --json ;;
	esac >"$log" 2>&1 || fail "$1 snapshots (rep $rep)" "$log"
}

# measure tool phase source-bytes: run CMD under GNU time, record a row.
measure() {
	local tool=$1 phase=$2 src_bytes=$3
	local log=$LOGS/rep$rep-$tool-$phase.log timing=$LOGS/time.out
	local secs rss user sys busy0 busy1 other repo_bytes
	cold
	busy0=$(cpu_busy)
	if ! (cd "$CMD_DIR" && /usr/bin/time -f '%e %M %U %S' -o "$timing" "${CMD[@]}") >"$log" 2>&1; then
		fail "$tool $phase (rep $rep): ${CMD[*]}" "$log"
	fi
	busy1=$(cpu_busy)
	read -r secs rss user sys <"$timing"
	# Cores kept busy by anything else while the command ran: a noise gauge.
	other=$(awk -v b0="$busy0" -v b1="$busy1" -v u="$user" -v s="$sys" -v e="$secs" -v hz="$CLK_TCK" \
		'BEGIN { o = ((b1 - b0) / hz - u - s) / (e > 0 ? e : 1); printf "%.2f\n", (o > 0 ? o : 0) }')
	repo_bytes=$(du -sb "$(repo_of "$tool")" | cut -f1)
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$rep" "$phase" "$secs" "$rss" "$repo_bytes" "$src_bytes" "$other" >>"$RESULTS"
	awk -v t="$tool" -v p="$phase" -v s="$secs" -v m="$rss" -v r="$repo_bytes" -v b="$src_bytes" -v o="$other" 'BEGIN {
		printf "    %-7s %-8s %8.2f s %8.1f MB/s %6.0f MiB RSS   repo %8.1f MiB   other CPU %s\n",
			t, p, s, (s > 0 ? b / 1e6 / s : 0), m / 1024, r / 1048576, o }'
}

verify() { # tool target
	local root log=$LOGS/rep$rep-$1-verify.log
	root=$(restored_root "$1" "$2")
	diff -rq --no-dereference "$SRC" "$root" >"$log" 2>&1 ||
		fail "RESTORE MISMATCH: $1 (rep $rep) restored $root differs from $SRC" "$log"
}

versions() {
	for tool in "${TOOLS[@]}"; do
		case $tool in
		restic) echo "- restic: $(restic version | head -n1); repository ${RESTIC_REPO_NOTE}" ;;
		borg) echo "- borg: $(borg --version); repokey-blake2, default compression lz4" ;;
		kalaja) echo "- kalaja: built from $ROOT (sha256 $(sha256sum "$KALAJA" | cut -c1-12)), default settings" ;;
		kalaja-base) echo "- kalaja-base: $KALAJA_BASE (sha256 $(sha256sum "$KALAJA_BASE" | cut -c1-12)), default settings" ;;
		esac
	done
}

main() {
	local start=$SECONDS
	install_tools
	build
	mkdir -p "$LOGS"

	RESTIC_INIT_FLAGS=()
	RESTIC_REPO_NOTE="format v1 (no compression: this restic cannot make v2)"
	if [[ " ${TOOLS[*]} " == *" restic "* ]] && restic init --help 2>/dev/null | grep -q -- --repository-version; then
		RESTIC_INIT_FLAGS=(--repository-version 2)
		RESTIC_REPO_NOTE="format v2, compression auto"
	fi

	COLD=0
	if (drop_caches) 2>/dev/null; then COLD=1; fi

	local stamp
	stamp="$SIZE seed=$SEED corpus=$(sha256sum "$BIN/corpus" | cut -c1-16)"
	if [[ ! -f $WORK/corpus.stamp || $(<"$WORK/corpus.stamp") != "$stamp" ]]; then
		log "generating corpus ($SIZE, seed $SEED)"
		rm -rf "$CORPUS" "$WORK/corpus.stamp"
		"$BIN/corpus" -out "$CORPUS" -size "$SIZE" -seed "$SEED"
		echo "$stamp" >"$WORK/corpus.stamp"
	else
		log "reusing corpus in $CORPUS ($stamp)"
	fi

	printf 'tool\trep\tphase\tseconds\tpeak_rss_kib\trepo_bytes\tsource_bytes\tother_cpu\n' >"$RESULTS"
	local n=${#TOOLS[@]} day1 day2 target order i
	for ((rep = 1; rep <= REPS; rep++)); do
		order=()
		for ((i = 0; i < n; i++)); do order+=("${TOOLS[(i + rep - 1) % n]}"); done
		log "repetition $rep/$REPS, order: ${order[*]}"
		rm -rf "$STATE" "$RESTORE" "$SRC"
		cp -a "$CORPUS" "$SRC"
		day1=$(source_bytes)
		for tool in "${order[@]}"; do init_repo "$tool"; done

		log "  first backup ($((day1 / 1048576)) MiB)"
		for tool in "${order[@]}"; do
			backup_cmd "$tool" day1
			measure "$tool" first "$day1"
		done

		"$BIN/corpus" -mutate "$SRC" -seed "$MUTATE_SEED" | sed 's/^/    /'
		day2=$(source_bytes)
		log "  incremental backup ($((day2 / 1048576)) MiB)"
		for tool in "${order[@]}"; do
			backup_cmd "$tool" day2
			measure "$tool" incr "$day2"
			list_snapshots "$tool"
		done

		log "  restore latest and verify"
		for tool in "${order[@]}"; do
			target=$RESTORE/$tool
			mkdir -p "$target"
			restore_cmd "$tool" "$target"
			measure "$tool" restore "$day2"
			verify "$tool" "$target"
			rm -rf "$target"
		done
	done

	{
		echo "## Kalaja peer benchmark"
		echo
		echo "- corpus: $SIZE, seed $SEED, mutation seed $MUTATE_SEED; $REPS repetition(s); tools: ${TOOLS[*]}"
		echo "- machine: $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM, $(uname -r), work dir $WORK on $(df -T "$WORK" | awk 'NR == 2 { print $2 }')"
		if ((COLD)); then
			echo "- page cache: dropped before every measured phase (cold cache)"
		else
			echo "- page cache: could not be dropped; warm-cache numbers"
		fi
		versions
		echo
		"$BIN/report" "$RESULTS"
	} | tee "$WORK/report.md"
	echo
	log "raw measurements: $RESULTS; logs: $LOGS; report: $WORK/report.md"
	log "benchmark took $((SECONDS - start)) s"

	if [[ -d $ROOT/bench/stages ]]; then
		echo
		log "pipeline stage benchmarks (bench/stages)"
		(cd "$ROOT" && go test -run '^$' -bench . -benchtime 2x ./bench/stages/ 2>/dev/null) ||
			echo "stage benchmarks failed (exit $?)"
	fi
}

main "$@"

#!/usr/bin/env bash
# Cost of the ledger (issue 3), in one run:
#  1. backup throughput of kalaja at HEAD against the same source built with
#     the tag kalaja_noledger, whose backups neither check nor append to the
#     ledger (everything else equal, so the ratio is the ledger's cost alone),
#     on the peer benchmark's generated corpus: first backup and day-2
#     incremental, page cache dropped before each, the two builds
#     alternating, BENCH_REPS times; medians and the ratio;
#  2. 'kalaja verify' (no --read-data) of a repository with BENCH_SNAPSHOTS
#     snapshots, each logged by its own append (bench/ledgergen): median of 3.
#
# Knobs (environment): BENCH_SIZE (1GiB), BENCH_REPS (9), BENCH_SNAPSHOTS
# (10000), BENCH_DIR (/tmp/kalaja-bench-ledger).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/bench/lib.sh"
SIZE=${BENCH_SIZE:-1GiB}
REPS=${BENCH_REPS:-9}
SNAPS=${BENCH_SNAPSHOTS:-10000}
WORK=${BENCH_DIR:-/tmp/kalaja-bench-ledger}
BIN=$WORK/bin
export KALAJA_PASSWORD=bench-password

median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

mkdir -p "$WORK" "$BIN"
rm -rf "$WORK/results" && mkdir -p "$WORK/results"

log "building kalaja with and without the ledger"
(cd "$ROOT" && go build -o "$BIN/kalaja-head" ./cmd/kalaja && go build -tags kalaja_noledger -o "$BIN/kalaja-base" ./cmd/kalaja &&
	go build -o "$BIN/corpus" ./bench/corpus && go build -o "$BIN/ledgergen" ./bench/ledgergen)

if [[ ! -f $WORK/corpus.stamp || $(cat "$WORK/corpus.stamp") != "$SIZE" ]]; then
	log "generating a $SIZE corpus"
	rm -rf "$WORK/corpus"
	"$BIN/corpus" -out "$WORK/corpus" -size "$SIZE" -seed 1 >/dev/null
	echo "$SIZE" >"$WORK/corpus.stamp"
fi

# timed BUILD PHASE REPO: one backup of $WORK/src, its wall time recorded.
timed() {
	drop_caches
	local t0 t1
	t0=$(date +%s.%N)
	KALAJA_STATE_DIR=$WORK/state-$1 "$BIN/kalaja-$1" backup -q --repo "$3" "$WORK/src"
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc >>"$WORK/results/$1-$2"
}

for rep in $(seq 1 "$REPS"); do
	order=(head base)
	((rep % 2)) || order=(base head)
	log "rep $rep/$REPS (${order[*]})"
	rm -rf "$WORK/src" "$WORK/repo-"* "$WORK/state-"*
	cp -a "$WORK/corpus" "$WORK/src"
	for b in "${order[@]}"; do
		"$BIN/kalaja-$b" init -q --repo "$WORK/repo-$b"
		timed "$b" first "$WORK/repo-$b"
	done
	"$BIN/corpus" -mutate "$WORK/src" -seed 2 >/dev/null
	for b in "${order[@]}"; do timed "$b" incremental "$WORK/repo-$b"; done
	KALAJA_STATE_DIR=$WORK/state-head "$BIN/kalaja-head" verify -q --repo "$WORK/repo-head" ||
		{ log "verify failed after rep $rep"; exit 1; }
done

log "making a repository of $SNAPS snapshots"
rm -rf "$WORK/many" "$WORK/state-many"
mkdir -p "$WORK/many-src" && cp -a "$ROOT/internal" "$WORK/many-src/"
"$BIN/ledgergen" -repo "$WORK/many" -src "$WORK/many-src" -snapshots "$SNAPS" 2>/dev/null
for i in 1 2 3; do
	t0=$(date +%s.%N)
	KALAJA_STATE_DIR=$WORK/state-many "$BIN/kalaja-head" verify -q --repo "$WORK/many"
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc >>"$WORK/results/verify"
done

printf '\n%-22s %10s %10s %8s\n' "backup ($SIZE, $REPS reps)" "ledger" "no ledger" "ratio"
for phase in first incremental; do
	h=$(median <"$WORK/results/head-$phase")
	b=$(median <"$WORK/results/base-$phase")
	printf '%-22s %9.2fs %9.2fs %8.3f\n' "$phase" "$h" "$b" "$(echo "$h / $b" | bc -l)"
done
printf 'runs: %s\n' "$(for f in "$WORK"/results/{head,base}-*; do printf '%s=[%s] ' "$(basename "$f")" "$(paste -sd' ' "$f")"; done)"
printf '\nverify of %d snapshots (no --read-data): median %.2fs of [%s]\n' "$SNAPS" \
	"$(median <"$WORK/results/verify")" "$(paste -sd' ' "$WORK/results/verify")"

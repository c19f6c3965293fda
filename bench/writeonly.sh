#!/usr/bin/env bash
# Cost of a write-only key (issue 20): backup throughput of one build with a
# full key and with a write-only key (kalaja key add --write-only), each into
# its own new repository (each holding one key file of each kind), on the peer benchmark's generated corpus: first
# backup and day-2 incremental (the write-only host's parent comes from its
# parent cache, the full key's from the repository), page cache dropped
# before each, the two keys alternating which goes first, BENCH_REPS times;
# medians of wall time and of CPU time (user + system, steadier on a busy
# machine) and the ratios write-only / full (target: within 5%).
#
# Knobs (environment): BENCH_SIZE (1GiB), BENCH_REPS (9), BENCH_DIR
# (/tmp/kalaja-bench-writeonly). Root, for dropping the page cache.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/bench/lib.sh"
SIZE=${BENCH_SIZE:-1GiB}
REPS=${BENCH_REPS:-9}
WORK=${BENCH_DIR:-/tmp/kalaja-bench-writeonly}
BIN=$WORK/bin

median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

mkdir -p "$WORK" "$BIN"
rm -rf "$WORK/results" && mkdir -p "$WORK/results"

log "building kalaja"
(cd "$ROOT" && go build -o "$BIN/kalaja" ./cmd/kalaja && go build -o "$BIN/corpus" ./bench/corpus)

if [[ ! -f $WORK/corpus.stamp || $(cat "$WORK/corpus.stamp") != "$SIZE" ]]; then
	log "generating a $SIZE corpus"
	rm -rf "$WORK/corpus"
	"$BIN/corpus" -out "$WORK/corpus" -size "$SIZE" -seed 1 >/dev/null
	echo "$SIZE" >"$WORK/corpus.stamp"
fi
echo "host password" >"$WORK/host-password"

# password KEY: the password the key opens with.
password() { if [[ $1 == full ]]; then echo "recovery password"; else echo "host password"; fi; }

# timed KEY PHASE: one backup of $WORK/src into $WORK/repo-KEY with KEY's
# password, its wall time and CPU time recorded.
timed() {
	drop_caches
	KALAJA_PASSWORD=$(password "$1") KALAJA_STATE_DIR=$WORK/state-$1 /usr/bin/time -f '%e %U %S' -o "$WORK/time" \
		"$BIN/kalaja" backup -q --repo "$WORK/repo-$1" "$WORK/src"
	awk '{ print $1 }' "$WORK/time" >>"$WORK/results/$1-$2"
	awk '{ print $2 + $3 }' "$WORK/time" >>"$WORK/results/$1-$2-cpu"
}

for rep in $(seq 1 "$REPS"); do
	order=(full wo)
	((rep % 2)) || order=(wo full)
	log "rep $rep/$REPS (${order[*]})"
	rm -rf "$WORK/src" "$WORK/repo-"* "$WORK/state-"*
	cp -a "$WORK/corpus" "$WORK/src"
	for k in full wo; do
		KALAJA_PASSWORD="recovery password" "$BIN/kalaja" init -q --repo "$WORK/repo-$k"
	done
	# Both repositories hold a full key and a write-only one, so that both
	# backups find their key among the same number of key files.
	for k in full wo; do
		KALAJA_PASSWORD="recovery password" KALAJA_STATE_DIR=$WORK/state-init "$BIN/kalaja" key add -q --write-only --host bench \
			--repo "$WORK/repo-$k" --new-password-file "$WORK/host-password"
	done
	# Each key finds its key file first from the start, as a host does
	# after its first run (the state directory keeps the key file's name).
	for k in full wo; do
		KALAJA_PASSWORD=$(password "$k") KALAJA_STATE_DIR=$WORK/state-$k "$BIN/kalaja" key list -q --repo "$WORK/repo-$k" >/dev/null
	done
	for k in "${order[@]}"; do timed "$k" first; done
	"$BIN/corpus" -mutate "$WORK/src" -seed 2 >/dev/null
	for k in "${order[@]}"; do timed "$k" incremental; done
	[[ -n $(ls "$WORK/state-wo/"*/parents/ 2>/dev/null) ]] || { log "no parent cache after rep $rep"; exit 1; }
	KALAJA_PASSWORD="recovery password" KALAJA_STATE_DIR=$WORK/state-full "$BIN/kalaja" check -q --repo "$WORK/repo-wo" ||
		{ log "check of the write-only repository failed after rep $rep"; exit 1; }
done

printf '\n%-26s %10s %10s %8s\n' "backup ($SIZE, $REPS reps)" "write-only" "full" "ratio"
for phase in first incremental first-cpu incremental-cpu; do
	w=$(median <"$WORK/results/wo-$phase")
	f=$(median <"$WORK/results/full-$phase")
	printf '%-26s %9.2fs %9.2fs %8.3f\n' "$phase" "$w" "$f" "$(echo "$w / $f" | bc -l)"
done
printf 'runs: %s\n' "$(for f in "$WORK"/results/{wo,full}-*; do printf '%s=[%s] ' "$(basename "$f")" "$(paste -sd' ' "$f")"; done)"

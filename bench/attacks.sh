#!/usr/bin/env bash
# Files damaged per attack, on an idle machine and under load: every attack
# scenario of the drill run ATTACK_REPS times as is and ATTACK_REPS times
# with --load (two CPU-bound processes and a go build -a loop beside it),
# alternating. Prints per scenario and mode the median and worst files
# damaged and the median time to detection, and PASS or FAIL against the
# watcher's bound: every attack detected, worst at most 10 files and median
# at most 3, idle and under load. The method is in docs/design.md
# ("Drill", "Load").
#
# Knobs (environment): ATTACK_DIR (/tmp/kalaja-attack-bench), ATTACK_REPS
# (5), ATTACK_FILES (200), ATTACK_CANARIES (true: the watcher's default;
# false shows what the content signals alone bound), ATTACK_SCENARIOS (every
# attack).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/bench/lib.sh"
REPS=${ATTACK_REPS:-5}
FILES=${ATTACK_FILES:-200}
CANARIES=${ATTACK_CANARIES:-true}
WORK=${ATTACK_DIR:-/tmp/kalaja-attack-bench}
SCENARIOS=${ATTACK_SCENARIOS:-encrypt-rename,encrypt-inplace,intermittent,encode-base64,slow-encrypt,multiprocess,split-setsid,split-detached,wipe-random,wipe-zero,wipe-truncate,wipe-delete,wipe-rm,wipe-find,wipe-unlink,wipe-raw}
KALAJA=$WORK/bin/kalaja

[[ $(id -u) == 0 ]] || fail "run as root: the watcher needs fanotify to stop processes, and wipe-raw needs losetup"
for p in go gcc jq losetup; do
	command -v "$p" >/dev/null || fail "$p is not installed"
done
mkdir -p "$WORK/bin" "$WORK/runs"
rm -f "$WORK"/runs/*.json
(cd "$ROOT" && go build -o "$KALAJA" ./cmd/kalaja) || fail "cannot build kalaja"

for i in $(seq "$REPS"); do
	modes=(idle load)
	((i % 2)) || modes=(load idle)
	for mode in "${modes[@]}"; do
		log "run $i of $REPS, $mode"
		args=(drill --sandbox "$WORK/sandbox" --json --files "$FILES" --slow-interval 1s --settle 2s
			--canaries="$CANARIES" --scenario "$SCENARIOS")
		[[ $mode == idle ]] || args+=(--load)
		"$KALAJA" "${args[@]}" >"$WORK/runs/$mode-$i.json" || true
	done
done

for mode in idle load; do
	cat "$WORK"/runs/"$mode"-*.json | jq -r --arg m "$mode" \
		'.results[] | select(.kind == "attack") | [$m, .scenario, .files_damaged, (.time_to_detection_ms // -1), (if .detected then 1 else 0 end), (.still_running // 0)] | @tsv'
done >"$WORK/damage.tsv"

echo
echo "## Files damaged per attack ($REPS runs each, $FILES files, canaries $CANARIES)"
echo
awk -F'\t' '
function median(list, n,   a, i, j, t) {
	split(list, a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{
	k = $1 SUBSEP $2; n[k]++; d[k] = d[k] " " $3; ms[k] = ms[k] " " $4
	if ($3 + 0 > worst[k]) worst[k] = $3 + 0
	if ($5 == 0) missed[k]++
	if ($6 + 0 > 0) running[k]++
	all[$1] = all[$1] " " $3; na[$1]++
	if (!($2 in seen)) { seen[$2] = 1; order[++ns] = $2 }
}
END {
	printf "| attack | idle: median / worst files | idle: median ms | load: median / worst files | load: median ms |\n|---|---|---|---|---|\n"
	ok = 1
	for (i = 1; i <= ns; i++) {
		s = order[i]; line = "| " s
		for (m = 0; m < 2; m++) {
			mode = m ? "load" : "idle"; k = mode SUBSEP s
			if (!n[k]) { line = line " | - | -"; continue }
			line = line sprintf(" | %g / %d", median(d[k], n[k]), worst[k])
			if (missed[k]) line = line sprintf(" (%d missed)", missed[k])
			if (running[k]) line = line sprintf(" (%d left running)", running[k])
			line = line sprintf(" | %.0f", median(ms[k], n[k]))
			if (worst[k] > 10 || missed[k] || running[k]) ok = 0
		}
		print line " |"
	}
	for (mode in all) {
		med = median(all[mode], na[mode])
		printf "\n%s: median over all attacks %g files", mode, med
		if (med > 3) ok = 0
	}
	printf "\n\n- %s: every attack detected and stopped, worst at most 10 files, median at most 3, idle and under load\n", ok ? "PASS" : "FAIL"
}' "$WORK/damage.tsv"

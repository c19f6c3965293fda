#!/usr/bin/env bash
# The watcher's benchmark: first the drill (every attack and benign workload
# against the real watcher: detected or not, time to detection, files
# damaged, false alarms), then its cost: each benign workload timed
# DRILL_REPS times with and without the watcher (a process of its own),
# medians, slowdown, the watcher's CPU time and peak memory. Prints PASS or
# FAIL against the targets: every attack detected, no false alarm, files
# damaged median at most 3 and worst at most 10, total slowdown and every
# workload's slowdown under 5%. The method is in docs/design.md ("Drill").
#
# Knobs (environment): DRILL_DIR (/tmp/kalaja-drill-bench), DRILL_REPS (5),
# DRILL_FILES (600), DRILL_BULK_MIB (256), DRILL_SLOW (3s), DRILL_WORKLOADS
# (the benign workloads to time, comma-separated; default every one the
# drill has), DRILL_ATTACKS (true; false skips the drill and times the
# workloads only).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/bench/lib.sh"
REPS=${DRILL_REPS:-5}
FILES=${DRILL_FILES:-600}
BULK=${DRILL_BULK_MIB:-256}
SLOW=${DRILL_SLOW:-3s}
WORKLOADS=${DRILL_WORKLOADS:-}
ATTACKS=${DRILL_ATTACKS:-true}
WORK=${DRILL_DIR:-/tmp/kalaja-drill-bench}
KALAJA=$WORK/bin/kalaja
SANDBOX=$WORK/sandbox
MAX_SLOWDOWN=5 # percent

[[ $(id -u) == 0 ]] || fail "run as root: the watcher needs fanotify to stop processes, and wipe-raw needs losetup"
"$ROOT/scripts/drilltools.sh" || fail "the drill's programs are missing (scripts/drilltools.sh)"
command -v go >/dev/null || fail "go is not installed"

mkdir -p "$WORK/bin"
(cd "$ROOT" && go build -o "$KALAJA" ./cmd/kalaja) || fail "cannot build kalaja"

start=$SECONDS
drill_ok=SKIPPED damage_ok=SKIPPED dmed= dworst=
if [[ $ATTACKS == true ]]; then
	log "drill: $FILES files, slow-encrypt one file every $SLOW (sandbox $SANDBOX)"
	drill_ok=PASS
	"$KALAJA" drill --sandbox "$SANDBOX" --files "$FILES" --bulk-mib "$((BULK / 4))" --slow-interval "$SLOW" |
		tee "$WORK/drill.txt" || drill_ok=FAIL
	# The summary line: "attacks: 11/11 detected; files damaged: median M, worst W. ..."
	read -r dmed dworst < <(sed -n 's/.*files damaged: median \([0-9.]*\), worst \([0-9]*\).*/\1 \2/p' "$WORK/drill.txt")
	damage_ok=$(awk -v m="$dmed" -v w="$dworst" 'BEGIN { print (m != "" && m + 0 <= 3 && w + 0 <= 10) ? "PASS" : "FAIL" }')
	echo
fi

log "overhead: $REPS runs of each benign workload with and without the watcher, alternating ($FILES files, $BULK MiB dataset)"
only=()
[[ -z $WORKLOADS ]] || only=(--scenario "$WORKLOADS")
"$KALAJA" drill --sandbox "$SANDBOX" --measure-overhead --reps "$REPS" --files "$FILES" --bulk-mib "$BULK" "${only[@]}" |
	tee "$WORK/overhead.txt" || fail "the overhead measurement failed"

slowdown=$(awk '$1 == "total" { sub(/%/, "", $6); print $6 }' "$WORK/overhead.txt")
# The workload slowed down most: "name +x.y%".
read -r worst_wl worst_slow < <(awk '/^WORKLOAD/ { t = 1; next } /^total/ { t = 0 } t && NF > 1 { v = $6; sub(/%/, "", v); if (w == "" || v + 0 > m) { m = v + 0; w = $1 } } END { print w, m }' "$WORK/overhead.txt")
each_ok=$(awk -v s="$worst_slow" -v m="$MAX_SLOWDOWN" 'BEGIN { print (s != "" && s + 0 < m) ? "PASS" : "FAIL" }')
alarms=$(awk '/^total/ { header = 0 } header && NF > 1 { s += $NF } /^WORKLOAD/ { header = 1 } END { print s + 0 }' "$WORK/overhead.txt")
overhead_ok=$(awk -v s="$slowdown" -v m="$MAX_SLOWDOWN" 'BEGIN { print (s + 0 < m) ? "PASS" : "FAIL" }')
[[ $alarms == 0 ]] || overhead_ok=FAIL

echo
echo "## Per workload (median of $REPS runs with the watcher over $REPS without, minus one)"
echo
# "name without s with s +x% +lo% to +hi% ...": the interval is $7 to $9.
awk -v m="$MAX_SLOWDOWN" '/^WORKLOAD/ { t = 1; next } /^total/ { t = 0 } t && NF > 1 {
	v = $6; sub(/%/, "", v); lo = $7; sub(/%/, "", lo); hi = $9; sub(/%/, "", hi); a = $NF
	note = (lo + 0 < m && hi + 0 >= m) ? ", the interval holds " m "%" : ""
	printf "- %s: %s %s (90%% interval %s to %s%s)%s\n", (v + 0 < m && a == 0) ? "PASS" : "FAIL", $1, $6, $7, $9, note, (a == 0 ? "" : sprintf(", %d false alarms", a))
}' "$WORK/overhead.txt"
echo
echo "## Watcher drill targets"
echo
echo "- $drill_ok: every attack detected, no false alarm on the benign workloads (drill.txt)"
echo "- $damage_ok: files damaged before the stop: median ${dmed:-?} (at most 3), worst ${dworst:-?} (at most 10)"
echo "- $overhead_ok: total slowdown ${slowdown}% < ${MAX_SLOWDOWN}%, $alarms false alarms while timing (overhead.txt)"
echo "- $each_ok: every workload's slowdown < ${MAX_SLOWDOWN}% (most: ${worst_wl:-?} ${worst_slow:-?}%; medians of $REPS runs, intervals above)"
echo "- machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
log "benchmark took $((SECONDS - start)) s; reports in $WORK"
[[ $drill_ok != FAIL && $damage_ok != FAIL && $overhead_ok == PASS && $each_ok == PASS ]]

#!/usr/bin/env bash
# The vault under a fleet's load (issue 19, acceptance 5): one kalaja serve,
# BENCH_HOSTS (200) hosts sending a heartbeat every BENCH_INTERVAL (10s)
# through POST /v1/events, the first BENCH_ALERTERS (10) of them also
# sending BENCH_ALERTS (5) alerts each over the run (bench/vaultload), while
# BENCH_BACKUPS (50) of them back up at once with the real 'kalaja backup'
# through the server. It checks that no alert was lost (every event
# acknowledged, and the server's kalaja_fleet_alerts_total of each host
# equal to what it sent), that every backup succeeded and that 'kalaja
# verify' passes afterwards, and prints the server's memory: VmRSS sampled
# every 2 s, and VmHWM (peak) before the load, at its end and after verify.
#
# Knobs (environment): BENCH_HOSTS (200), BENCH_INTERVAL (10s),
# BENCH_ALERTERS (10), BENCH_ALERTS (5), BENCH_BACKUPS (50),
# BENCH_DURATION (120s: how long the hosts send), BENCH_BACKUP_DELAY (10:
# seconds into the run the backups start), BENCH_TREE_KIB (8192: each
# backed-up host's tree, half of it shared by all), BENCH_DRAIN (60s: how
# long the hosts wait for their last events to be acknowledged after the
# run), BENCH_EVENTS (1; 0 runs
# the backups alone, for a server without /v1/events), BENCH_DIR
# (/tmp/kalaja-bench-vault).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/bench/lib.sh"
HOSTS=${BENCH_HOSTS:-200}
INTERVAL=${BENCH_INTERVAL:-10s}
ALERTERS=${BENCH_ALERTERS:-10}
ALERTS=${BENCH_ALERTS:-5}
BACKUPS=${BENCH_BACKUPS:-50}
DURATION=${BENCH_DURATION:-120s}
BACKUP_DELAY=${BENCH_BACKUP_DELAY:-10}
TREE_KIB=${BENCH_TREE_KIB:-8192}
EVENTS=${BENCH_EVENTS:-1}
DRAIN=${BENCH_DRAIN:-60s}
WORK=${BENCH_DIR:-/tmp/kalaja-bench-vault}
ALERTERS=$((ALERTERS < HOSTS ? ALERTERS : HOSTS))
((BACKUPS <= HOSTS)) || fail "BENCH_BACKUPS ($BACKUPS) > BENCH_HOSTS ($HOSTS)"

BIN=$WORK/bin
KALAJA=$BIN/kalaja
STATE=$WORK/state
LOGS=$WORK/logs
export KALAJA_PASSWORD=bench-password

SERVER_PID=
SAMPLER_PID=
cleanup() {
	[[ -z $SAMPLER_PID ]] || kill "$SAMPLER_PID" 2>/dev/null || true
	[[ -z $SERVER_PID ]] || kill -TERM "$SERVER_PID" 2>/dev/null || true
}
trap cleanup EXIT

vm() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; } # vm PID VmRSS|VmHWM: KiB

rm -rf "$STATE" "$LOGS"
mkdir -p "$BIN" "$STATE/tokens" "$STATE/trees" "$LOGS"
log "build"
(cd "$ROOT" && go build -o "$KALAJA" ./cmd/kalaja && go build -o "$BIN/vaultload" ./bench/vaultload) || fail "build"

log "$HOSTS tokens"
for ((i = 0; i < HOSTS; i++)); do
	"$KALAJA" serve token add "$(printf 'host-%04d' "$i")" --server-dir "$STATE/server" >"$STATE/tokens/$i" ||
		fail "serve token add"
done

log "start kalaja serve"
"$KALAJA" serve --dir "$STATE/repo" --server-dir "$STATE/server" --listen 127.0.0.1:0 >"$STATE/serve.out" \
	2>"$LOGS/server.log" &
SERVER_PID=$!
URL=
for ((i = 0; i < 300; i++)); do
	URL=$(sed -n 's/^serving .* on \(https:.*\)$/\1/p' "$STATE/serve.out" 2>/dev/null || true)
	[[ -n $URL ]] && break
	kill -0 "$SERVER_PID" 2>/dev/null || fail "kalaja serve ended" "$LOGS/server.log"
	sleep 0.1
done
[[ -n $URL ]] || fail "kalaja serve did not start" "$LOGS/server.log"
CERT=$STATE/server/tls/cert.pem

# as_host I CMD...: run CMD as host I of the server.
as_host() {
	local i=$1
	shift
	env "KALAJA_STATE_DIR=$STATE/client-$i" "KALAJA_SERVER_CERT=$CERT" "KALAJA_SERVER_TOKEN_FILE=$STATE/tokens/$i" "$@"
}
as_host 0 "$KALAJA" init -q --repo "$URL" >"$LOGS/init.log" 2>&1 || fail "init through kalaja serve" "$LOGS/init.log"

log "$BACKUPS trees of $TREE_KIB KiB"
half=$((TREE_KIB / 2))
mkdir -p "$STATE/shared"
for ((f = 0; f < 4; f++)); do head -c "$((half / 4))K" /dev/urandom >"$STATE/shared/file-$f"; done
for ((i = 0; i < BACKUPS; i++)); do
	d=$STATE/trees/$i
	mkdir -p "$d/own"
	cp -al "$STATE/shared" "$d/shared"
	for ((f = 0; f < 8; f++)); do head -c "$((half / 8))K" /dev/urandom >"$d/own/file-$f"; done
done

# The sampler: one line "SECONDS RSS_KIB" every 2 s while the server runs.
idle_hwm=$(vm "$SERVER_PID" VmHWM)
(
	t0=$SECONDS
	while kill -0 "$SERVER_PID" 2>/dev/null; do
		echo "$((SECONDS - t0)) $(vm "$SERVER_PID" VmRSS)"
		sleep 2
	done
) >"$STATE/rss" 2>/dev/null &
SAMPLER_PID=$!

LOAD_PID=
if ((EVENTS)); then
	log "$HOSTS hosts send heartbeats every $INTERVAL for $DURATION; $ALERTERS of them $ALERTS alerts each"
	"$BIN/vaultload" -url "$URL" -cert "$CERT" -tokens "$STATE/tokens" -hosts "$HOSTS" -interval "$INTERVAL" \
		-alerters "$ALERTERS" -alerts "$ALERTS" -duration "$DURATION" -drain "$DRAIN" >"$STATE/load.json" 2>"$LOGS/load.log" &
	LOAD_PID=$!
fi

sleep "$BACKUP_DELAY"
log "$BACKUPS backups at once through the server"
began=$(date +%s.%N)
pids=()
for ((i = 0; i < BACKUPS; i++)); do
	as_host "$i" "$KALAJA" backup -q --repo "$URL" --host "$(printf 'host-%04d' "$i")" "$STATE/trees/$i" \
		>"$LOGS/backup-$i.log" 2>&1 &
	pids+=($!)
done
backups_failed=0
for ((i = 0; i < BACKUPS; i++)); do
	if ! wait "${pids[$i]}"; then
		backups_failed=$((backups_failed + 1))
		log "backup of host $i failed: $(tail -n 3 "$LOGS/backup-$i.log")"
	fi
done
backup_s=$(awk -v b="$began" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - b }')

load_rc=0
if [[ -n $LOAD_PID ]]; then
	log "wait for the hosts' events to end and be acknowledged"
	wait "$LOAD_PID" || load_rc=$?
fi
load_hwm=$(vm "$SERVER_PID" VmHWM)

log "verify through the server"
verify_rc=0
as_host 0 "$KALAJA" verify --repo "$URL" >"$LOGS/verify.log" 2>&1 || verify_rc=$?
end_hwm=$(vm "$SERVER_PID" VmHWM)
kill "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=

source_mib=$(awk -v k="$TREE_KIB" -v n="$BACKUPS" 'BEGIN { printf "%.0f", k * n / 1024 }')
echo
echo "== vault load: $HOSTS hosts, heartbeats every $INTERVAL for $DURATION, $ALERTERS x $ALERTS alerts, $BACKUPS backups of $TREE_KIB KiB"
echo "backups: $((BACKUPS - backups_failed)) of $BACKUPS succeeded in ${backup_s}s ($source_mib MiB of sources, half shared)"
if [[ -n $LOAD_PID ]]; then
	echo "events (bench/vaultload, exit $load_rc):"
	cat "$STATE/load.json"
	[[ ! -s $LOGS/load.log ]] || { echo "vaultload said:"; cat "$LOGS/load.log"; }
fi
echo "verify: exit $verify_rc"
awk -v idle="$idle_hwm" -v load="$load_hwm" -v end="$end_hwm" '
	{ n++; if ($2 > max) { max = $2; at = $1 }; last = $2; if ($1 >= 20 && (min == "" || $2 < min)) min = $2 }
	END {
		printf "server VmHWM: %d MiB idle, %d MiB at the end of the load, %d MiB after verify\n", idle / 1024, load / 1024, end / 1024
		printf "server VmRSS: %d samples every 2 s, largest %d MiB at %d s, last %d MiB\n", n, max / 1024, at, last / 1024
	}' "$STATE/rss"
echo "server VmRSS timeline (s MiB):" $(awk '{ printf "%d:%d ", $1, $2 / 1024 }' "$STATE/rss")
echo "server refusals by reason (log $LOGS/server.log):" $(grep 'level=WARN' "$LOGS/server.log" |
	grep -o 'reason=[a-z_]*' | sort | uniq -c | awk '{ printf "%s %d, ", substr($2, 8), $1 }')

if ((backups_failed > 0 || load_rc != 0 || verify_rc != 0)); then
	fail "backups failed: $backups_failed, vaultload exit $load_rc, verify exit $verify_rc"
fi

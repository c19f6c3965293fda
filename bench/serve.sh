#!/usr/bin/env bash
# Backup and restore through kalaja serve (issue 4, "Load"; "Back in
# minutes"), in one run on one corpus:
#  - local: kalaja's first backup of the corpus into a local repository;
#  - serve: the same backup through 'kalaja serve' on loopback, the server's
#    repository on the same disk;
#  - fleet: BENCH_CLIENTS (50) clients at once, each with its own token,
#    backing up its own slice of the corpus through one server: total
#    throughput, wall time, the server's peak RSS and the largest client's;
#  - restore-local: the restore of one snapshot of the corpus from a local
#    repository (made once per run, not measured);
#  - restore-serve: the restore of the same snapshot through 'kalaja serve'
#    serving that same repository directory;
#  - restic into a local repository, and through 'rest-server --append-only'
#    (over TLS with the same certificate), as references when installed.
# Each backup starts from a new repository, each restore from an empty
# target, with the page cache dropped, BENCH_REPS times in rotating order;
# every restore is compared with the corpus. The report shows medians and
# checks that the serve throughput is at least 70% of the local one for a
# backup, 80% for a restore.
#
# Knobs (environment): BENCH_SIZE or SIZE (1GiB), BENCH_REPS or REPS (3),
# BENCH_CLIENTS (50), BENCH_SEED (1), BENCH_DIR (/tmp/kalaja-bench-serve),
# BENCH_SETUPS (all of: local serve fleet restore restic; restore is both
# restore setups, restic both restic ones when installed).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/bench/lib.sh"
SIZE=${BENCH_SIZE:-${SIZE:-1GiB}}
REPS=${BENCH_REPS:-${REPS:-3}}
CLIENTS=${BENCH_CLIENTS:-50}
SEED=${BENCH_SEED:-1}
SETUPS=${BENCH_SETUPS:-local serve fleet restore restic}

mkdir -p "${BENCH_DIR:-/tmp/kalaja-bench-serve}"
WORK=$(cd "${BENCH_DIR:-/tmp/kalaja-bench-serve}" && pwd -P)
CORPUS=$WORK/corpus  # the generated corpus, reused while its stamp matches
SLICES=$WORK/slices  # CLIENTS slices of it (hard links, and the VM image cut in pieces)
STATE=$WORK/state    # repositories, servers and client state, new for every measurement
RESTORE=$WORK/restore # the repository restored from, with its server directory, new for every run
LOGS=$WORK/logs
RESULTS=$WORK/results.tsv
BIN=$WORK/bin
KALAJA=$BIN/kalaja

export KALAJA_PASSWORD=bench-password RESTIC_PASSWORD=bench-password

# The server this script started and has not stopped yet, stopped on any exit.
RUNNING=
trap '[[ -z $RUNNING ]] || kill -TERM "$RUNNING" 2>/dev/null || true' EXIT

cold() { if ((COLD)); then drop_caches; fi; }

# cpu_busy: busy CPU ticks of the whole machine so far (all but idle and iowait).
cpu_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
# proc_cpu PID: user+system ticks of a running process.
proc_cpu() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
# vm_hwm PID: peak resident set of a running process, KiB.
vm_hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
CLK_TCK=$(getconf CLK_TCK)


build() {
	mkdir -p "$BIN"
	(cd "$ROOT" && go build -o "$BIN/corpus" ./bench/corpus && go build -o "$BIN/report" ./bench/report &&
		go build -o "$KALAJA" ./cmd/kalaja) || fail "build"
}

# make_slices: cut the corpus into CLIENTS directories of about equal size:
# the VM image in CLIENTS consecutive pieces, one per slice, then every other
# file, largest first, hard-linked into the slice with the fewest bytes.
make_slices() {
	local i list
	rm -rf "$SLICES"
	for ((i = 0; i < CLIENTS; i++)); do mkdir -p "$(slice "$i")"; done
	if [[ -f $CORPUS/vm/disk.img ]]; then
		split -n "$CLIENTS" -d -a 4 "$CORPUS/vm/disk.img" "$SLICES/part-"
		for ((i = 0; i < CLIENTS; i++)); do
			mkdir -p "$(slice "$i")/vm"
			mv "$(printf '%s/part-%04d' "$SLICES" "$i")" "$(slice "$i")/vm/disk.img.part"
		done
	fi
	(cd "$CORPUS" && find . -type f ! -path ./vm/disk.img -printf '%s\t%P\n') | sort -t$'\t' -k1,1nr |
		awk -F'\t' -v n="$CLIENTS" -v dir="$SLICES" '
			BEGIN { for (i = 0; i < n; i++) load[i] = 0 }
			{
				best = 0
				for (i = 1; i < n; i++) if (load[i] < load[best]) best = i
				load[best] += $1
				printf "%s\n", $2 > sprintf("%s/list-%04d", dir, best)
			}'
	for ((i = 0; i < CLIENTS; i++)); do
		list=$(printf '%s/list-%04d' "$SLICES" "$i")
		[[ -f $list ]] || continue
		(cd "$CORPUS" && xargs -d '\n' cp -l --parents -t "$(slice "$i")" <"$list")
		rm "$list"
	done
}
slice() { printf '%s/%04d' "$SLICES" "$1"; }

# start_server NAME HOSTS: run kalaja serve over $STATE/NAME with a token per
# host (host-0000 ...) and a repository initialised through it; sets
# SERVER_PID, SERVER_URL and SERVER_DIR.
start_server() {
	local dir=$STATE/$1 out i
	SERVER_DIR=$dir
	mkdir -p "$dir/tokens"
	client "$dir" 0
	for ((i = 0; i < $2; i++)); do
		"$KALAJA" serve token add "$(printf 'host-%04d' "$i")" --server-dir "$dir/server" >"$dir/tokens/$i" ||
			fail "serve token add"
	done
	out=$dir/serve.out
	"$KALAJA" serve --dir "$dir/repo" --server-dir "$dir/server" --listen 127.0.0.1:0 >"$out" \
		2>"$LOGS/rep$rep-$1-server.log" &
	SERVER_PID=$!
	RUNNING=$SERVER_PID
	wait_server "$out" "$LOGS/rep$rep-$1-server.log"
	"${CLIENT[@]}" "$KALAJA" init -q --repo "$SERVER_URL" >"$LOGS/rep$rep-$1-init.log" 2>&1 ||
		fail "init through kalaja serve" "$LOGS/rep$rep-$1-init.log"
}

# wait_server OUT LOG: wait until the server SERVER_PID prints its URL on
# OUT, and set SERVER_URL.
wait_server() {
	local i
	SERVER_URL=
	for ((i = 0; i < 300; i++)); do
		# The server's shell may not have created OUT yet.
		SERVER_URL=$(sed -n 's/^serving .* on \(https:.*\)$/\1/p' "$1" 2>/dev/null || true)
		[[ -n $SERVER_URL ]] && break
		kill -0 "$SERVER_PID" 2>/dev/null || fail "kalaja serve ended" "$2"
		sleep 0.1
	done
	[[ -n $SERVER_URL ]] || fail "kalaja serve did not start" "$2"
}

stop_server() { # NAME
	kill -TERM "$SERVER_PID"
	wait "$SERVER_PID" || fail "kalaja serve exited with $?" "$LOGS/rep$rep-$1-server.log"
	RUNNING=
}

# client DIR I: set CLIENT to the env command that runs a program as host I
# of the server in DIR, with a state directory of its own.
client() {
	CLIENT=(env "KALAJA_STATE_DIR=$1/client-$2" "KALAJA_SERVER_CERT=$1/server/tls/cert.pem"
		"KALAJA_SERVER_TOKEN_FILE=$1/tokens/$2")
}

# record TOOL PHASE SECONDS RSS_KIB REPO_DIR OWN_CPU_S BUSY0 BUSY1 SERVER_RSS_KIB
record() {
	local repo_bytes other
	repo_bytes=$(du -sb "$5" | cut -f1)
	other=$(awk -v b0="$7" -v b1="$8" -v own="$6" -v e="$3" -v hz="$CLK_TCK" \
		'BEGIN { o = ((b1 - b0) / hz - own) / (e > 0 ? e : 1); printf "%.2f\n", (o > 0 ? o : 0) }')
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$rep" "$2" "$3" "$4" "$repo_bytes" "$SOURCE_BYTES" "$other" "$9" >>"$RESULTS"
	awk -v t="$1 $2" -v s="$3" -v m="$4" -v r="$repo_bytes" -v b="$SOURCE_BYTES" -v o="$other" -v srv="$9" 'BEGIN {
		printf "    %-18s %8.2f s %8.1f MB/s %6.0f MiB client RSS %6s server RSS   repo %8.1f MiB   other CPU %s\n",
			t, s, (s > 0 ? b / 1e6 / s : 0), m / 1024, (srv > 0 ? sprintf("%.0f MiB", srv / 1024) : "-"), r / 1048576, o }'
}

# timed TOOL PHASE REPO_DIR SERVER_PID COMMAND...: run one measured command
# (SERVER_PID - when no server takes part).
timed() {
	local tool=$1 phase=$2 repo=$3 spid=$4
	shift 4
	local log=$LOGS/rep$rep-$tool-$phase.log timing=$LOGS/time.out busy0 busy1 s0=0 s1=0 secs rss user sys hwm=0
	cold
	busy0=$(cpu_busy)
	[[ $spid == - ]] || s0=$(proc_cpu "$spid")
	"/usr/bin/time" -f '%e %M %U %S' -o "$timing" "$@" >"$log" 2>&1 || fail "$tool $phase (rep $rep): $*" "$log"
	busy1=$(cpu_busy)
	[[ $spid == - ]] || { s1=$(proc_cpu "$spid") && hwm=$(vm_hwm "$spid"); }
	read -r secs rss user sys <"$timing"
	record "$tool" "$phase" "$secs" "$rss" "$repo" "$(awk -v u="$user" -v s="$sys" -v t="$((s1 - s0))" -v hz="$CLK_TCK" \
		'BEGIN { print u + s + t / hz }')" "$busy0" "$busy1" "$hwm"
}

kalaja_local() {
	local repo=$STATE/local/repo
	local run=(env "KALAJA_STATE_DIR=$STATE/local/client" "$KALAJA")
	mkdir -p "$STATE/local"
	"${run[@]}" init -q --repo "$repo" >"$LOGS/rep$rep-local-init.log" 2>&1 || fail "kalaja init" "$LOGS/rep$rep-local-init.log"
	timed kalaja local "$repo" - "${run[@]}" backup -q --repo "$repo" "$CORPUS"
}

kalaja_serve() {
	start_server serve 1
	timed kalaja serve "$SERVER_DIR/repo" "$SERVER_PID" "${CLIENT[@]}" "$KALAJA" backup -q --repo "$SERVER_URL" "$CORPUS"
	stop_server serve
}

# kalaja_fleet: every slice backed up by its own host at the same time.
kalaja_fleet() {
	local i pids=() failed=0 t0 t1 busy0 busy1 s0 s1 hwm rss own
	start_server fleet "$CLIENTS"
	mkdir -p "$LOGS/rep$rep-fleet"
	cold
	busy0=$(cpu_busy)
	s0=$(proc_cpu "$SERVER_PID")
	t0=$EPOCHREALTIME
	for ((i = 0; i < CLIENTS; i++)); do
		client "$SERVER_DIR" "$i"
		"${CLIENT[@]}" /usr/bin/time -f '%e %M %U %S' -o "$LOGS/rep$rep-fleet/$i.time" \
			"$KALAJA" backup -q --host "$(printf 'host-%04d' "$i")" --repo "$SERVER_URL" "$(slice "$i")" \
			>"$LOGS/rep$rep-fleet/$i.log" 2>&1 &
		pids+=($!)
	done
	for i in "${!pids[@]}"; do
		wait "${pids[$i]}" || { failed=$((failed + 1)) && echo "client $i failed: see $LOGS/rep$rep-fleet/$i.log"; }
	done
	t1=$EPOCHREALTIME
	busy1=$(cpu_busy)
	s1=$(proc_cpu "$SERVER_PID")
	hwm=$(vm_hwm "$SERVER_PID")
	((failed == 0)) || fail "$failed of $CLIENTS concurrent backups failed (rep $rep)" "$LOGS/rep$rep-fleet-server.log"
	rss=$(cat "$LOGS/rep$rep-fleet/"*.time | awk '$2 > m { m = $2 } END { print m }')
	own=$(cat "$LOGS/rep$rep-fleet/"*.time | awk -v s="$((s1 - s0))" -v hz="$CLK_TCK" '{ c += $3 + $4 } END { print c + s / hz }')
	client "$SERVER_DIR" 0
	[[ $("${CLIENT[@]}" "$KALAJA" snapshots --json --repo "$SERVER_URL" | grep -o '"hostname"' | wc -l) == "$CLIENTS" ]] ||
		fail "the server does not list $CLIENTS snapshots (rep $rep)"
	record kalaja fleet "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f\n", b - a }')" "$rss" "$SERVER_DIR/repo" "$own" "$busy0" "$busy1" "$hwm"
	stop_server fleet
}

# make_restore_repo: back the corpus up into a local repository once per
# run, and make the directory of the server that serves it, with one host's
# token; the restore setups read from it.
make_restore_repo() {
	local repo=$RESTORE/repo
	rm -rf "$RESTORE"
	mkdir -p "$RESTORE/tokens"
	env "KALAJA_STATE_DIR=$RESTORE/client-local" "$KALAJA" init -q --repo "$repo" >"$LOGS/restore-init.log" 2>&1 ||
		fail "kalaja init" "$LOGS/restore-init.log"
	env "KALAJA_STATE_DIR=$RESTORE/client-local" "$KALAJA" backup -q --repo "$repo" "$CORPUS" >"$LOGS/restore-backup.log" 2>&1 ||
		fail "kalaja backup of the corpus to restore" "$LOGS/restore-backup.log"
	"$KALAJA" serve token add host-0000 --server-dir "$RESTORE/server" >"$RESTORE/tokens/0" || fail "serve token add"
}

# check_restore TARGET: the restored tree must be the corpus.
check_restore() {
	diff -r "$CORPUS" "$1$CORPUS" >"$LOGS/rep$rep-diff.log" 2>&1 || fail "RESTORE MISMATCH (rep $rep)" "$LOGS/rep$rep-diff.log"
	rm -rf "$1"
}

kalaja_restore_local() {
	local target=$STATE/target
	timed kalaja restore-local "$RESTORE/repo" - env "KALAJA_STATE_DIR=$RESTORE/client-local" "$KALAJA" restore -q latest \
		--repo "$RESTORE/repo" --target "$target"
	check_restore "$target"
}

# kalaja_restore_serve: the same restore through a server over the same
# repository directory, started for the measurement.
kalaja_restore_serve() {
	local target=$STATE/target out
	out=$STATE/serve.out
	mkdir -p "$STATE"
	"$KALAJA" serve --dir "$RESTORE/repo" --server-dir "$RESTORE/server" --listen 127.0.0.1:0 >"$out" \
		2>"$LOGS/rep$rep-restore-serve-server.log" &
	SERVER_PID=$!
	RUNNING=$SERVER_PID
	wait_server "$out" "$LOGS/rep$rep-restore-serve-server.log"
	client "$RESTORE" 0
	timed kalaja restore-serve "$RESTORE/repo" "$SERVER_PID" "${CLIENT[@]}" "$KALAJA" restore -q latest \
		--repo "$SERVER_URL" --target "$target"
	stop_server restore-serve
	check_restore "$target"
}

restic_local() {
	local repo=$STATE/restic/repo run=(env "RESTIC_CACHE_DIR=$STATE/restic/cache" restic)
	"${run[@]}" init --repo "$repo" "${RESTIC_INIT_FLAGS[@]}" >"$LOGS/rep$rep-restic-init.log" 2>&1 ||
		fail "restic init" "$LOGS/rep$rep-restic-init.log"
	timed restic local "$repo" - "${run[@]}" --repo "$repo" backup "$CORPUS"
}

# restic_rest: rest-server --append-only over TLS with an ECDSA P-256
# certificate like the one kalaja serve makes, so that both servers pay for
# TLS.
restic_rest() {
	local dir=$STATE/rest port pid i repo run
	mkdir -p "$dir"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
		-addext subjectAltName=IP:127.0.0.1 -keyout "$dir/key.pem" -out "$dir/cert.pem" >"$LOGS/rep$rep-rest-cert.log" 2>&1 ||
		fail "openssl req" "$LOGS/rep$rep-rest-cert.log"
	for ((port = 18000 + RANDOM % 1000; ; port++)); do (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break; done
	rest-server --path "$dir/repo" --listen "127.0.0.1:$port" --append-only --no-auth \
		--tls --tls-cert "$dir/cert.pem" --tls-key "$dir/key.pem" >"$LOGS/rep$rep-rest-server.log" 2>&1 &
	pid=$!
	RUNNING=$pid
	for ((i = 0; i < 300; i++)); do
		(: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		kill -0 "$pid" 2>/dev/null || fail "rest-server ended" "$LOGS/rep$rep-rest-server.log"
		sleep 0.1
	done
	repo=rest:https://127.0.0.1:$port/
	run=(env "RESTIC_CACHE_DIR=$dir/cache" restic --cacert "$dir/cert.pem" --repo "$repo")
	"${run[@]}" init "${RESTIC_INIT_FLAGS[@]}" >"$LOGS/rep$rep-rest-init.log" 2>&1 ||
		fail "restic init through rest-server" "$LOGS/rep$rep-rest-init.log"
	timed restic rest-server "$dir/repo" "$pid" "${run[@]}" backup "$CORPUS"
	kill -TERM "$pid"
	wait "$pid" || true # rest-server exits with the signal
	RUNNING=
}

main() {
	local start=$SECONDS stamp n order i s setups=()
	for s in $SETUPS; do
		case $s in
		local | serve | fleet) setups+=("kalaja_$s") ;;
		restore) setups+=(kalaja_restore_local kalaja_restore_serve) ;;
		restic) ;;
		*) fail "BENCH_SETUPS: unknown setup $s (want local, serve, fleet, restore, restic)" ;;
		esac
	done
	[[ -x /usr/bin/time ]] || fail "GNU time is missing: apt-get install time"
	build
	rm -rf "$LOGS" && mkdir -p "$LOGS"

	RESTIC_INIT_FLAGS=()
	RESTIC_NOTE="not installed: no restic columns"
	if [[ " $SETUPS " != *" restic "* ]]; then
		RESTIC_NOTE="not selected in BENCH_SETUPS"
	elif command -v restic >/dev/null; then
		setups+=(restic_local)
		RESTIC_NOTE="$(restic version | head -n1), repository format v1"
		if restic init --help 2>/dev/null | grep -q -- --repository-version; then
			RESTIC_INIT_FLAGS=(--repository-version 2)
			RESTIC_NOTE="$(restic version | head -n1), repository format v2, compression auto"
		fi
		if command -v rest-server >/dev/null && command -v openssl >/dev/null; then
			setups+=(restic_rest)
			RESTIC_NOTE+="; $(rest-server --version 2>&1 | head -n1) --append-only over TLS"
		else
			RESTIC_NOTE+="; rest-server (or openssl) not found: no rest-server column"
		fi
	fi

	COLD=0
	if (drop_caches) 2>/dev/null; then COLD=1; fi

	stamp="$SIZE seed=$SEED corpus=$(sha256sum "$BIN/corpus" | cut -c1-16) clients=$CLIENTS"
	if [[ ! -f $WORK/corpus.stamp || $(<"$WORK/corpus.stamp") != "$stamp" ]]; then
		log "generating corpus ($SIZE, seed $SEED) and $CLIENTS slices of it"
		rm -rf "$CORPUS" "$WORK/corpus.stamp"
		"$BIN/corpus" -out "$CORPUS" -size "$SIZE" -seed "$SEED" >/dev/null
		make_slices
		echo "$stamp" >"$WORK/corpus.stamp"
	else
		log "reusing corpus and slices in $WORK ($stamp)"
	fi
	SOURCE_BYTES=$(tree_bytes "$CORPUS")
	[[ $(tree_bytes "$SLICES") == "$SOURCE_BYTES" ]] || fail "the slices do not add up to the corpus: rm $WORK/corpus.stamp"

	if [[ " ${setups[*]} " == *" kalaja_restore_local "* ]]; then
		log "backing the corpus up into $RESTORE/repo to restore from"
		make_restore_repo
	fi

	printf 'tool\trep\tphase\tseconds\tpeak_rss_kib\trepo_bytes\tsource_bytes\tother_cpu\tserver_rss_kib\n' >"$RESULTS"
	n=${#setups[@]}
	for ((rep = 1; rep <= REPS; rep++)); do
		order=()
		for ((i = 0; i < n; i++)); do order+=("${setups[(i + rep - 1) % n]}"); done
		log "repetition $rep/$REPS ($((SOURCE_BYTES / 1048576)) MiB), order: ${order[*]}"
		for s in "${order[@]}"; do
			rm -rf "$STATE"
			"$s"
		done
	done
	rm -rf "$STATE" "$RESTORE"

	{
		echo "## Backup and restore through kalaja serve"
		echo
		echo "- corpus: $SIZE ($SOURCE_BYTES bytes), seed $SEED; $REPS repetition(s); $CLIENTS concurrent clients, one slice each"
		echo "- setups: $SETUPS"
		echo "- machine: $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM, $(uname -r), work dir $WORK on $(df -T "$WORK" | awk 'NR == 2 { print $2 }')"
		if ((COLD)); then
			echo "- page cache: dropped before every measurement (cold cache)"
		else
			echo "- page cache: could not be dropped; warm-cache numbers"
		fi
		echo "- kalaja: built from $ROOT (sha256 $(sha256sum "$KALAJA" | cut -c1-12)); serve on 127.0.0.1 over TLS, repository on the same disk"
		echo "- restic: $RESTIC_NOTE"
		echo
		"$BIN/report" -serve "$RESULTS"
	} | tee "$WORK/report.md"
	echo
	log "raw measurements: $RESULTS; logs: $LOGS; report: $WORK/report.md"
	log "benchmark took $((SECONDS - start)) s"
}

main "$@"

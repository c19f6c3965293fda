#!/usr/bin/env bash
# A MinIO server on loopback for the S3 tests (internal/store/s3, cmd/kalaja).
#
#   scripts/minio.sh start   install MinIO if needed, start it, wait until it
#                            serves, and print the variables the tests read
#                            as export lines: eval "$(scripts/minio.sh start)"
#   scripts/minio.sh env     print those lines for a server already running
#   scripts/minio.sh stop    stop the server this script started, drop its data
#
# MinIO is built from source with 'go install' (about three minutes the first
# time) into $KALAJA_CACHE/bin (default ~/.cache/kalaja/bin) and reused after.
# The server listens on 127.0.0.1:$KALAJA_MINIO_PORT (default 19000), keeps
# its data in a temporary directory, and has fixed test-only credentials. The
# tests make their own buckets, with and without Object Lock.
#
# KALAJA_MINIO_DRIVES=4 starts MinIO in erasure-coded mode instead: one server
# over four drives (directories $state/d1 ... d4, one erasure set with two
# parity shards, EC:2), the way a distributed deployment stores objects. The
# export lines then also name the drives, KALAJA_TEST_S3_DRIVES="d1 d2 d3 d4"
# (absolute paths), for the test that takes one away.
# Progress goes to stderr; only the export lines go to stdout.
set -euo pipefail

# The MinIO release the tests were written against; MINIO_VERSION=latest
# tries the newest.
version=${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}
cache=${KALAJA_CACHE:-${HOME:-/tmp}/.cache/kalaja}
port=${KALAJA_MINIO_PORT:-19000}
drives=${KALAJA_MINIO_DRIVES:-1}
state=${TMPDIR:-/tmp}/kalaja-minio-$port
user=kalaja-test
secret=kalaja-test-secret

bin=$cache/bin/minio

say() { echo "minio.sh: $*" >&2; }

exports() {
	echo "export KALAJA_TEST_S3_ENDPOINT=http://127.0.0.1:$port"
	echo "export AWS_ACCESS_KEY_ID=$user"
	echo "export AWS_SECRET_ACCESS_KEY=$secret"
	if [ -d "$state/d1" ]; then
		echo "export KALAJA_TEST_S3_DRIVES=\"$(echo "$state"/d[0-9]*)\""
	fi
}

# live reports whether a MinIO answers its health check on the port.
live() {
	(
		exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
		printf 'GET /minio/health/live HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
		read -r -t 2 line <&3 || exit 1
		[[ $line == *" 200 "* ]]
	) 2>/dev/null
}

running() {
	[ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null
}

install() {
	if [ -x "$bin" ] && [ "$(cat "$cache/bin/minio.version" 2>/dev/null)" = "$version" ]; then
		return
	fi
	say "installing MinIO $version with go install (a few minutes, once)"
	local start=$SECONDS
	mkdir -p "$cache/bin"
	GOBIN="$cache/bin" GOFLAGS=-buildvcs=false go install "github.com/minio/minio@$version" >&2
	echo "$version" >"$cache/bin/minio.version"
	say "installed in $((SECONDS - start))s"
}

start() {
	if running && live; then
		exports
		return
	fi
	if live; then
		say "something else already serves on 127.0.0.1:$port; set KALAJA_MINIO_PORT"
		exit 1
	fi
	install
	rm -rf "$state"
	local data=$state/data
	case $drives in
	1) mkdir -p "$data" ;;
	4)
		mkdir -p "$state"/d{1..4}
		data="$state/d{1...4}" # MinIO's own expansion, not the shell's
		;;
	*)
		say "KALAJA_MINIO_DRIVES=$drives: want 1 or 4"
		exit 1
		;;
	esac
	MINIO_ROOT_USER=$user MINIO_ROOT_PASSWORD=$secret MINIO_BROWSER=off \
		MINIO_UPDATE=off MINIO_CI_CD=1 \
		nohup "$bin" server --quiet --address "127.0.0.1:$port" \
		--console-address "127.0.0.1:$((port + 1))" "$data" \
		>"$state/log" 2>&1 </dev/null &
	echo $! >"$state/pid"
	for _ in $(seq 300); do
		if live; then
			say "serving on 127.0.0.1:$port (pid $(cat "$state/pid"), log $state/log)"
			exports
			return
		fi
		if ! running; then
			break
		fi
		sleep 0.1
	done
	say "MinIO did not start; its log:"
	cat "$state/log" >&2 || true
	stop
	exit 1
}

stop() {
	if running; then
		local pid
		pid=$(cat "$state/pid")
		kill "$pid"
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -rf "$state"
}

case ${1:-} in
start) start ;;
stop) stop ;;
env)
	if ! live; then
		say "no MinIO on 127.0.0.1:$port: run scripts/minio.sh start"
		exit 1
	fi
	exports
	;;
*)
	echo "usage: $0 start|env|stop" >&2
	exit 2
	;;
esac

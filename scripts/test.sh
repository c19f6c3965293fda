#!/usr/bin/env bash
# The whole test suite: vet, every test, then every fuzz target briefly.
# README.md and .ci/run call exactly this. FUZZTIME (default 100000x) sets
# how long each fuzz target runs; FUZZTIME=0 skips fuzzing. The default is
# a count of inputs, not a duration: with a duration, Go 1.26's fuzzing
# coordinator can report its own deadline as a failure of the target
# ("context deadline exceeded", no failing input; golang/go#75804, fixed
# in Go 1.27), which it did here in CI on FuzzOpenCheckpoint. 100000
# inputs take 1-15 s a target on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-100000x}

echo "== go vet"
go vet ./...

echo "== S3 test server"
# The S3 tests need a MinIO (scripts/minio.sh). Outside CI they skip when it
# cannot start; in CI they fail, and so does this script. A server that was
# already running is used and left running.
if s3env=$(./scripts/minio.sh env 2>/dev/null); then
	eval "$s3env"
elif s3env=$(./scripts/minio.sh start); then
	eval "$s3env"
	trap './scripts/minio.sh stop' EXIT
elif [ -n "${CI:-}" ]; then
	echo "CI: MinIO did not start, and the S3 tests must run" >&2
	exit 1
else
	echo "warning: MinIO did not start; the S3 tests will be skipped" >&2
fi

echo "== go test"
go test -count=1 ./...

if [ "$fuzztime" != "0" ]; then
	echo "== fuzz ($fuzztime each)"
	# Every Fuzz function of every package, found by reading the test files.
	grep -rl --include='*_test.go' '^func Fuzz' internal cmd | while read -r file; do
		pkg="./$(dirname "$file")"
		for fn in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | cut -d' ' -f2); do
			echo "-- $pkg $fn"
			if ! out=$(go test "$pkg" -run '^$' -fuzz "^${fn}\$" -fuzztime "$fuzztime" -fuzzminimizetime 200x 2>&1); then
				echo "$out" | tail -40 >&2
				echo "fuzz: $pkg $fn failed" >&2
				exit 1
			fi
		done
	done
	echo "fuzz: all targets ran without a failure"
fi

#!/usr/bin/env bash
# The whole test suite: vet, staticcheck and errcheck, every test, then every
# fuzz target briefly.
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

echo "== staticcheck, errcheck"
# Pinned versions, installed with go install from the Go module proxy on the
# first run into .cache/tools (ignored by git), in a folder per Go version
# and tool version, so that later runs reuse them and a change of either
# installs anew. The binary is moved into place whole, so an interrupted
# install is not mistaken for a finished one.
tools="$PWD/.cache/tools/$(go env GOVERSION)"
tool() { # tool PACKAGE VERSION: prints the path of the installed binary
	local name=${1##*/}
	local dir="$tools/$name@$2"
	if [ ! -x "$dir/$name" ]; then
		local tmp
		mkdir -p "$dir"
		tmp=$(mktemp -d "$dir/.install-XXXXXX")
		GOBIN="$tmp" go install "$1@$2" >&2
		mv "$tmp/$name" "$dir/$name"
		rmdir "$tmp"
	fi
	echo "$dir/$name"
}
staticcheck=$(tool honnef.co/go/tools/cmd/staticcheck v0.8.2)
errcheck=$(tool github.com/kisielk/errcheck v1.30.0)
# staticcheck with its default checks, no exceptions.
"$staticcheck" ./...
# errcheck on everything but test files, with the exclusions and their
# reasons in scripts/errcheck.excludes. Test files are left out, as kopia
# does: their unchecked calls are set-up, whose failure the test's own
# checks that follow catch, and clean-up, whose failure fails nothing.
"$errcheck" -ignoretests -exclude scripts/errcheck.excludes ./...

# missing WHAT TESTS: something TESTS need is missing. Outside CI they
# skip (or fail) on their own and this script goes on; in CI it fails here.
missing() {
	if [ -n "${CI:-}" ]; then
		echo "CI: $1, and $2 must run" >&2
		exit 1
	fi
	echo "warning: $1; $2 will skip or fail" >&2
}

echo "== S3 test server"
# The S3 tests need a MinIO (scripts/minio.sh). Outside CI they skip when it
# cannot start; in CI they fail, and so does this script. A server that was
# already running is used and left running.
# What this script started is stopped when it exits.
stops=
trap 'eval "$stops"' EXIT
if s3env=$(./scripts/minio.sh env 2>/dev/null); then
	eval "$s3env"
elif s3env=$(./scripts/minio.sh start); then
	eval "$s3env"
	stops="./scripts/minio.sh stop;"
else
	missing "MinIO did not start" "the S3 tests"
fi

echo "== chromium"
# The dashboard's browser test needs Debian's chromium (scripts/chromium.sh
# installs it).
./scripts/chromium.sh || missing "chromium could not be installed" "the dashboard's browser test"

echo "== promtool"
# The test of deploy/prometheus needs promtool (scripts/promtool.sh installs
# Debian's prometheus package).
if promtool=$(./scripts/promtool.sh path); then
	PATH="$(dirname "$promtool"):$PATH"
else
	missing "promtool could not be installed" "the Prometheus rules tests"
fi

echo "== drill tools"
# The drill's benign workloads run logrotate, rsync, clamscan and others
# (scripts/drilltools.sh installs what is missing); without one, the drill
# tests that need it fail.
./scripts/drilltools.sh || missing "some of the drill's programs could not be installed" "the drill"

echo "== go test"
# The drills of cmd/kalaja run alone afterwards: they race real attacks
# against the watcher and use loop devices, which the parallel packages'
# tests (the archiver's health scenarios run the drill's attacks too) would
# compete for.
drills='^TestDrill(Recover)?$'
go test -count=1 -timeout 60m -skip "$drills" ./...
echo "== go test: S3 on erasure-coded MinIO"
# The S3 tests again, against MinIO in erasure-coded mode (one server over
# four drives, EC:2, on the port two above the first), where
# TestS3DriveLost also takes a drive away in the middle of backups. Started
# only for this pass and stopped after it, unless it was already running.
ecport=$((${KALAJA_MINIO_PORT:-19000} + 2))
ec() { KALAJA_MINIO_PORT=$ecport KALAJA_MINIO_DRIVES=4 ./scripts/minio.sh "$@"; }
if ecenv=$(ec env 2>/dev/null) || { ecenv=$(ec start) && stops="$stops ec stop;"; }; then
	(
		eval "$ecenv"
		go test -count=1 ./internal/store/s3/ &&
			go test -count=1 -run 'S3' ./internal/server/ ./cmd/kalaja/ &&
			go test -count=1 -run '^TestAttackStolenCredential$/^s3$' ./cmd/kalaja/
	)
	if [[ $stops == *"ec stop"* ]]; then
		ec stop
		stops=${stops/ ec stop;/}
	fi
else
	missing "the erasure-coded MinIO did not start" "the S3 tests on it"
fi

echo "== go test: the drills"
go test -count=1 -timeout 30m -run "$drills" ./cmd/kalaja/

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

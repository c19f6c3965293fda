#!/usr/bin/env bash
# The main job on embedded defaults: build kalaja, create a local repository,
# back up a sample folder twice (the second run is incremental), check it,
# restore the latest snapshot and compare it with the source.
# DEMO_SOURCE chooses the folder (default: this source tree);
# DEMO_DIR where the repository and restore go (default: /tmp/kalaja-demo).
set -euo pipefail
cd "$(dirname "$0")/.."

src=$(realpath "${DEMO_SOURCE:-.}")
dir=$(realpath -m "${DEMO_DIR:-${TMPDIR:-/tmp}/kalaja-demo}")
rm -rf "$dir"
mkdir -p "$dir"

go build -o "$dir/kalaja" ./cmd/kalaja
kalaja="$dir/kalaja"

umask 077
head -c 24 /dev/urandom | base64 >"$dir/password"
export KALAJA_REPOSITORY="$dir/repo" KALAJA_PASSWORD_FILE="$dir/password"

set -x
"$kalaja" init
"$kalaja" backup --tag demo "$src"
"$kalaja" backup --tag demo "$src"
"$kalaja" snapshots
"$kalaja" check --read-data
"$kalaja" restore latest --target "$dir/restore"
diff -r "$src" "$dir/restore$src"
set +x
echo "demo: restored $src from $KALAJA_REPOSITORY byte for byte (see $dir)"

#!/usr/bin/env bash
# Debian's chromium for the dashboard's browser test (internal/dashboard,
# TestBrowser): installs it with apt-get when it is absent, then prints its
# version. Needs root (as on the project's machines and in CI). Progress
# goes to stderr.
set -euo pipefail

say() { echo "chromium.sh: $*" >&2; }

if ! command -v chromium >/dev/null; then
	if [ "$(id -u)" != 0 ]; then
		say "chromium is not installed and this is not root: apt-get install chromium"
		exit 1
	fi
	say "installing chromium with apt-get (once)"
	start=$SECONDS
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq chromium >&2
	say "installed in $((SECONDS - start))s"
fi
# Debian's wrapper script prints a shell warning on some systems: keep only
# the version line.
chromium --version 2>/dev/null | grep -m1 Chromium >&2

#!/usr/bin/env bash
# The programs the drill's benign workloads run (internal/drill, "kalaja
# drill"; docs/design.md, "Drill"), installed with apt-get (as root, or
# through sudo) without their recommended packages when one is missing:
# tar, zstd, gzip, git, gcc, sqlite3, find, rm, losetup and mount come with the base
# system or earlier steps; logrotate, rsync and ClamAV's clamscan are the
# ones a fresh machine lacks. ClamAV's signature database is not needed:
# the drill scans with a database of its own. Progress goes to stderr.
#
#   scripts/drilltools.sh     install what is missing, or fail
set -euo pipefail

say() { echo "drilltools.sh: $*" >&2; }

declare -A pkg=([tar]=tar [zstd]=zstd [gzip]=gzip [git]=git [sqlite3]=sqlite3 [losetup]=mount [mount]=mount
	[logrotate]=logrotate [rsync]=rsync [clamscan]=clamav [iconv]=libc-bin [awk]=mawk [gcc]=gcc [find]=findutils [rm]=coreutils)
missing=()
for p in "${!pkg[@]}"; do
	command -v "$p" >/dev/null || missing+=("${pkg[$p]}")
done
[ ${#missing[@]} = 0 ] && exit 0
sudo=
if [ "$(id -u)" != 0 ]; then
	if ! command -v sudo >/dev/null; then
		say "missing ${missing[*]}, and installing them needs root"
		exit 1
	fi
	sudo=sudo
fi
say "installing ${missing[*]} with apt-get (once)"
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
	{ $sudo apt-get update -qq >&2 && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; }

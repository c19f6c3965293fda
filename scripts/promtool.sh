#!/usr/bin/env bash
# Prometheus's promtool, for the test of the example alerting rules in
# deploy/prometheus (deploy_test.go).
#
#   scripts/promtool.sh path      print the path of promtool, installing it
#                                 first if it is missing
#
# promtool comes with Debian's prometheus package, installed here with
# apt-get (as root, or through sudo) without its recommended packages; the
# server the package also holds is not started by this script (the
# package's own service may be, on a machine that runs systemd). Progress
# goes to stderr; only the path goes to stdout.
set -euo pipefail

say() { echo "promtool.sh: $*" >&2; }

path() {
	if command -v promtool >/dev/null; then
		command -v promtool
		return
	fi
	local sudo=
	if [ "$(id -u)" != 0 ]; then
		if ! command -v sudo >/dev/null; then
			say "promtool is missing, and installing Debian's prometheus package needs root"
			exit 1
		fi
		sudo=sudo
	fi
	say "installing Debian's prometheus package for promtool (once)"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >&2 ||
		{ $sudo apt-get update >&2 && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >&2; }
	command -v promtool
}

case ${1:-} in
path) path ;;
*)
	echo "usage: $0 path" >&2
	exit 2
	;;
esac

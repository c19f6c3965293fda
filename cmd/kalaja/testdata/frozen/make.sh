#!/usr/bin/env bash
# make.sh writes the frozen repositories TestFrozenRepositories reads: one of
# format 1 by the last build before format 2, one of format 2, each with two
# snapshots and a ledger, and golden listings of the two backed-up trees.
# README.md says what it wrote and when. The test suite never runs it: the
# repositories were written once, by the builds named below, and a later
# build must never rewrite them (add a new file for a new format instead).
#
# Usage: cmd/kalaja/testdata/frozen/make.sh OUT
#
# OUT must not exist. Needs git, go, GNU coreutils and tar, and python3 (for
# extended attributes, pseudo-random bytes and the golden listings), and a
# file system with user.* extended attributes at /tmp. The backed-up tree
# lives at the fixed path /tmp/kalaja-frozen/src, which is recorded in the
# snapshots; the script refuses to run if /tmp/kalaja-frozen exists.
set -euo pipefail

# The last commit before format 2 (01b5ada): writes format 1, with the
# ledger (since 7d6c8e7), and the chunk sizes before fa00a34.
v1=4ac9a873bd93e093805ad1654f681f67c65a5fc9
# The commit the frozen repositories were added on: writes format 2.
v2=b499921ff6741083a44921b58a34808bf8568c5b

out=${1:?usage: make.sh OUT}
[ ! -e "$out" ] || { echo "make.sh: $out exists" >&2; exit 1; }
base=/tmp/kalaja-frozen
[ ! -e "$base" ] || { echo "make.sh: $base exists" >&2; exit 1; }
src=$base/src
top=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
mkdir -p "$out" "$base"
out=$(cd "$out" && pwd)

# build COMMIT: builds cmd/kalaja at COMMIT in a throwaway worktree, to
# $base/kalaja-COMMIT.
build() {
	git -C "$top" worktree add --detach "$base/wt" "$1" >/dev/null
	(cd "$base/wt" && go build -o "$base/kalaja-$1" ./cmd/kalaja)
	git -C "$top" worktree remove "$base/wt"
}
build "$v1"
build "$v2"

printf 'frozen repository password\n' >"$out/password"
printf 'second key password\n' >"$out/password2"

# at TIME PATH...: sets the modification (and access) time without following
# symlinks.
at() { local t=$1; shift; touch -h -d "$t" "$@"; }

# Snapshot 1's tree.
mkdir -p "$src"/{docs,bin,data,links,odd,special,empty-dir,shared}
printf 'Kalaja frozen test tree.\nEvery byte and time here is fixed.\n' >"$src/README.txt"
for i in $(seq 1 40); do printf 'line %02d of the notes, which the second snapshot edits\n' "$i"; done >"$src/docs/notes.txt"
for i in $(seq 1 400); do printf '%04d Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n' "$i"; done >"$src/docs/lorem.txt"
printf 'naïve café, 日本語, 🎉\n' >"$src/docs/ünïcödé name.txt"
printf '#!/bin/sh\necho frozen\n' >"$src/bin/tool.sh"
printf 'read only\n' >"$src/data/readonly.txt"
printf 'deleted before the second snapshot\n' >"$src/data/old.txt"
: >"$src/data/empty"
for i in $(seq 0 255); do printf "\\x$(printf %02x "$i")"; done >"$base/bytes"
for i in $(seq 16); do cat "$base/bytes"; done >"$src/data/bytes.bin"
printf 'one inode, two names\n' >"$src/links/hard-a"
ln "$src/links/hard-a" "$src/links/hard-b"
ln -s ../README.txt "$src/links/to-readme"
ln -s does/not/exist "$src/links/dangling"
printf 'a name that is not UTF-8\n' >"$src/odd/"$'name-\xff\xfe.txt'
ln -s $'name-\xff\xfe.txt' "$src/odd/"$'link-\xc3'
mkfifo "$src/special/fifo"
python3 - "$src" <<'EOF'
import hashlib, os, sys
src = sys.argv[1]
# 48 KiB of SHA-256 in counter mode: incompressible, and the same every run.
with open(os.path.join(src, "data/random.bin"), "wb") as f:
    for i in range(48 * 1024 // 32):
        f.write(hashlib.sha256(b"kalaja frozen %d" % i).digest())
os.setxattr(os.path.join(src, "docs/notes.txt"), "user.kalaja.comment", b"frozen in testdata")
os.setxattr(os.path.join(src, "docs/notes.txt"), "user.kalaja.binary", bytes([0, 1, 0xfe, 0xff]))
os.setxattr(os.path.join(src, "docs"), "user.kalaja.dir", b"on a directory")
EOF
chmod 0644 "$src"/README.txt "$src"/docs/*.txt "$src"/data/{empty,bytes.bin,old.txt}
chmod 0600 "$src/docs/notes.txt"
chmod 0755 "$src/bin/tool.sh"
chmod 0640 "$src/data/random.bin"
chmod 0400 "$src/data/readonly.txt"
chmod 0444 "$src/links/hard-a"
chmod 0600 "$src/odd/"$'name-\xff\xfe.txt'
chmod 0620 "$src/special/fifo"
chmod 0755 "$src" "$src"/{docs,bin,data,links,odd,special}
chmod 0700 "$src/empty-dir"
chmod 2775 "$src/shared"
: >"$src/shared/.keep"
chmod 0664 "$src/shared/.keep"
at '2025-01-02 03:04:05.123456789 UTC' "$src/README.txt"
at '2025-02-03 04:05:06 UTC' "$src/docs/notes.txt"
at '2025-02-03 04:05:07.5 UTC' "$src/docs/lorem.txt" "$src/docs/ünïcödé name.txt"
at '2024-12-31 23:59:59.999999999 UTC' "$src/bin/tool.sh"
at '2025-03-04 05:06:07 UTC' "$src"/data/*
at '2025-04-05 06:07:08 UTC' "$src"/links/*
at '1999-12-31 23:00:00 UTC' "$src/odd/"*
at '2025-05-06 07:08:09 UTC' "$src/special/fifo" "$src/shared/.keep"

# dirtimes: the directories' times last, children before parents.
dirtimes() {
	at '2025-06-07 08:09:10 UTC' "$src"/{docs,bin,data,links,odd,special,empty-dir,shared}
	at '2025-06-07 08:09:11.000000001 UTC' "$src"
}
dirtimes

# golden FILE: writes the listing of $src that the test compares restores
# with, one JSON object per entry in depth-first, bytewise order.
golden() {
	python3 - "$src" "$1" <<'EOF'
import base64, hashlib, json, os, stat, sys
src, out = sys.argv[1], sys.argv[2]

def name(b):
    # As a snapshot tree encodes names (docs/design.md, 5.2).
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(b).decode()}

first = {}
entries = []
def walk(rel):
    p = os.path.join(os.fsencode(src), rel) if rel else os.fsencode(src)
    st = os.lstat(p)
    e = {"path": name(rel or b"."), "mode": "%04o" % stat.S_IMODE(st.st_mode),
         "mtime": [st.st_mtime_ns // 10**9, st.st_mtime_ns % 10**9]}
    if stat.S_ISDIR(st.st_mode):
        e["type"] = "dir"
    elif stat.S_ISLNK(st.st_mode):
        e["type"] = "symlink"
        e["target"] = name(os.readlink(p))
    elif stat.S_ISFIFO(st.st_mode):
        e["type"] = "fifo"
    else:
        e["type"] = "file"
        e["size"] = st.st_size
        with open(p, "rb") as f:
            e["sha256"] = hashlib.sha256(f.read()).hexdigest()
        if st.st_nlink > 1:
            k = (st.st_dev, st.st_ino)
            if k in first:
                e["link"] = name(first[k])
            else:
                first[k] = rel
    if not stat.S_ISLNK(st.st_mode):
        x = {n: base64.b64encode(os.getxattr(p, n)).decode() for n in sorted(os.listxattr(p))}
        if x:
            e["xattrs"] = x
    entries.append(e)
    if stat.S_ISDIR(st.st_mode):
        for c in sorted(os.listdir(p)):
            walk(os.path.join(rel, c) if rel else c)

walk(b"")
with open(out, "w") as f:
    for e in entries:
        f.write(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n")
EOF
}
golden "$out/snapshot1.jsonl"

# kalaja N ARGS...: runs the build that writes format N on the repository
# $base/formatN, with the first password and a client state of its own.
kalaja() {
	local n=$1 bin=$base/kalaja-$v1; shift
	[ "$n" = 1 ] || bin=$base/kalaja-$v2
	KALAJA_REPOSITORY=$base/format$n KALAJA_PASSWORD_FILE=$out/password KALAJA_STATE_DIR=$base/state$n "$bin" "$@"
}
for n in 1 2; do
	kalaja $n init
	kalaja $n key add --new-password-file "$out/password2"
	kalaja $n backup --host frozen --tag first "$src"
done

# Snapshot 2's tree: one file edited, one added, one deleted, one chmodded.
printf 'edited for the second snapshot\n' >>"$src/docs/notes.txt"
at '2025-07-08 09:10:11 UTC' "$src/docs/notes.txt"
printf 'added for the second snapshot\n' >"$src/data/added.txt"
chmod 0644 "$src/data/added.txt"
at '2025-07-08 09:10:12 UTC' "$src/data/added.txt"
rm "$src/data/old.txt"
chmod 0750 "$src/bin/tool.sh"
dirtimes
golden "$out/snapshot2.jsonl"
for n in 1 2; do
	kalaja $n backup --host frozen --tag second "$src"
	kalaja $n check --read-data
	kalaja $n verify --read-data
	tar --sort=name --owner=0 --group=0 --numeric-owner -czf "$out/format$n.tar.gz" -C "$base/format$n" .
done

chmod -R u+w "$base"
rm -rf "$base"

#!/usr/bin/env bash
# Compares two builds of hearth-server under one scenario, in one run: the
# current tree's server and the one built from REV (in a git worktree under
# /tmp), both durable on fresh data directories and pinned to CPU 0, the load
# generator pinned to CPU 1. The report calls the second one "floor": read
# "hearth / floor" as "this tree / REV". Traffic stays on 127.0.0.1.
#
#   loadtest/bench-ab.sh REV SCENARIO [hearth-loadtest run flags...]
#   loadtest/bench-ab.sh a0d337e steady --repeat 5 --duration 10s
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: loadtest/bench-ab.sh REV SCENARIO [flags]}
scenario=${2:?usage: loadtest/bench-ab.sh REV SCENARIO [flags]}
shift 2
# shellcheck source=loadtest/bench-common.sh
source loadtest/bench-common.sh
tree=/tmp/hearth-ab-$rev
[ -d "$tree" ] || git worktree add -f -q "$tree" "$rev"
(cd "$tree" && CARGO_TARGET_DIR=/var/tmp/hearth-target-ab cargo build --release -q -p hearth-server)
old=/var/tmp/hearth-target-ab/release
d1=$(mktemp -d); d2=$(mktemp -d)
taskset -c 0 "$bin/hearth-server" --data-dir "$d1" "${load_limits[@]}" --listen 127.0.0.1:7878 2>"$d1/server.log" &
new_pid=$!
# The same lifted limits for REV (which must know their flags: any commit since
# the hardening pass); AB_OLD_FLAGS= runs an older REV without them.
# shellcheck disable=SC2206
old_flags=(${AB_OLD_FLAGS-${load_limits[*]}})
taskset -c 0 "$old/hearth-server" --data-dir "$d2" "${old_flags[@]}" --listen 127.0.0.1:7979 2>"$d2/server.log" &
old_pid=$!
trap 'kill $new_pid $old_pid 2>/dev/null || true; wait $new_pid $old_pid 2>/dev/null || true; rm -rf "$d1" "$d2"' EXIT
wait_for_ports 7878 7979
machine_line "this tree vs $rev"
taskset -c 1 "$bin/hearth-loadtest" run --scenario "$scenario" \
  --url ws://127.0.0.1:7878 --server-pid "$new_pid" --floor-url ws://127.0.0.1:7979 --floor-pid "$old_pid" "$@"

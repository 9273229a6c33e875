#!/usr/bin/env bash
# Runs one load scenario the way BENCHMARKS.md measures it: hearth-server (durable,
# fresh data directory; HEARTH_EPHEMERAL=1 for memory only) and the floor server both pinned to CPU 0, the load
# generator pinned to CPU 1, then prints the report with Hearth's cost beside the
# floor's. Traffic stays on 127.0.0.1; both servers are stopped at the end.
#
#   loadtest/bench.sh SCENARIO [hearth-loadtest run flags...]
#   loadtest/bench.sh steady --json-out steady.json
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:?usage: loadtest/bench.sh SCENARIO [flags]}
shift
cargo build --release -q -p hearth-server -p hearth-loadtest
bin=${CARGO_TARGET_DIR:-target}/release
# Raise this shell's open-files limit (for its children only) as far as allowed.
ulimit -n "$(ulimit -Hn)"
export HEARTH_TOKEN_SECRET=${HEARTH_TOKEN_SECRET:-bench-secret-bench-secret-0123456789}
export RUST_LOG=${RUST_LOG:-warn}
data=$(mktemp -d)
# One generator process makes every member's connection from one address, and
# its senders send far faster than a person: lift the per-connection and
# per-address limits (they are still checked on every request, never refused).
load_limits=(--message-rate 1000000 --message-burst 1000000 --request-rate 1000000 --request-burst 1000000
  --max-in-flight 100000 --connections-per-ip 1000000 --rooms-per-user 1000000)
# LOAD_LIMITS=production keeps the per-connection rates at their defaults (the
# `flood` scenario measures what they protect); only the per-address and
# per-user counts stay lifted.
[ "${LOAD_LIMITS:-lifted}" = production ] && load_limits=(--connections-per-ip 1000000 --rooms-per-user 1000000)
# HEARTH_SERVER_FLAGS passes extra server flags, e.g. "--write-coalesce 500us";
# HEARTH_EPHEMERAL=1 runs the server in memory instead of on a data directory.
storage=(--data-dir "$data")
[ "${HEARTH_EPHEMERAL:-0}" = 1 ] && storage=(--ephemeral)
# shellcheck disable=SC2086
taskset -c 0 "$bin/hearth-server" "${storage[@]}" "${load_limits[@]}" --listen 127.0.0.1:7878 ${HEARTH_SERVER_FLAGS:-} 2>"$data/server.log" &
server=$!
taskset -c 0 "$bin/hearth-loadtest" floor-server --listen 127.0.0.1:7979 2>"$data/floor.log" &
floor=$!
trap 'kill $server $floor 2>/dev/null || true; wait $server $floor 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/7878) 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/7979) 2>/dev/null && break
  sleep 0.1
done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r); $(date -u +%F)"
# The floor has no history and no leave, so reconnect-storm and wander skip it.
floor_flags=(--floor-url ws://127.0.0.1:7979 --floor-pid "$floor")
case "$scenario" in reconnect-storm|wander) floor_flags=() ;; esac
taskset -c 1 "$bin/hearth-loadtest" run --scenario "$scenario" \
  --url ws://127.0.0.1:7878 --server-pid "$server" "${floor_flags[@]}" "$@"

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
# shellcheck source=loadtest/bench-common.sh
source loadtest/bench-common.sh
data=$(mktemp -d)
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
wait_for_ports 7878 7979
machine_line
# The floor has no history and no leave, so reconnect-storm and wander skip it.
floor_flags=(--floor-url ws://127.0.0.1:7979 --floor-pid "$floor")
case "$scenario" in reconnect-storm|wander) floor_flags=() ;; esac
taskset -c 1 "$bin/hearth-loadtest" run --scenario "$scenario" \
  --url ws://127.0.0.1:7878 --server-pid "$server" "${floor_flags[@]}" "$@"

#!/usr/bin/env bash
# Rooms on demand: a node with many stored rooms starts in seconds and its memory
# follows the rooms in use. Creates ROOMS rooms in a fresh durable data directory
# (the `wander` scenario creates them), restarts the server on it and times the
# start, then runs `wander` again over the stored rooms and reports the server's
# memory. Server pinned to CPU 0, load generator to CPU 1; loopback only.
#
#   loadtest/bench-rooms.sh [ROOMS] [hearth-loadtest run flags...]
#   loadtest/bench-rooms.sh 100000 --wanderers 500 --duration 30s
set -euo pipefail
cd "$(dirname "$0")/.."
rooms=${1:-100000}
shift || true
# shellcheck source=loadtest/bench-common.sh
source loadtest/bench-common.sh
data=$(mktemp -d)
server=
stop() { [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true; }
trap 'stop; rm -rf "$data"' EXIT
start() {
  local t0 t1
  t0=$(date +%s.%N)
  taskset -c 0 "$bin/hearth-server" --data-dir "$data" "${load_limits[@]}" \
    --listen 127.0.0.1:7878 --room-idle 10s 2>>"$data/server.log" &
  server=$!
  until (exec 3<>/dev/tcp/127.0.0.1/7878) 2>/dev/null; do sleep 0.01; done  # finer than wait_for_ports: this is the figure
  t1=$(date +%s.%N)
  echo "server up in $(echo "$t1 - $t0" | bc) s; RSS $(awk '/VmRSS/{print $2/1024}' /proc/$server/status) MiB"
}
machine_line
start
# First run: creates the rooms (a short wander after it).
taskset -c 1 "$bin/hearth-loadtest" run --scenario wander --rooms "$rooms" --url ws://127.0.0.1:7878 \
  --server-pid "$server" --quiet --wanderers 50 --duration 5s | grep -E '^wander'
stop
echo "data directory: $(du -sh "$data" | cut -f1) for $rooms rooms"
echo "restart with $rooms stored rooms:"
start
taskset -c 1 "$bin/hearth-loadtest" run --scenario wander --rooms "$rooms" --url ws://127.0.0.1:7878 \
  --server-pid "$server" --quiet "$@"

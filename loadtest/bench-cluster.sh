#!/usr/bin/env bash
# Runs one load scenario on one node (the embedded durable default) and then on
# two cluster-mode nodes sharing a Redis, in one invocation so the two can be
# compared as ratios. Servers and Redis are pinned to CPU 0, the load generator
# to CPU 1; members are spread over both nodes. Redis keeps an append-only file
# fsynced before each reply (REDIS_FSYNC=everysec to compare). Each process's
# CPU per message is reported ("cpu us per message"). Then, on the same Redis,
# the floor of this design: a script that only does XADD + SPUBLISH for
# messages of the same rate and size, to two subscribed connections
# (`hearth-loadtest redis-cost`), so Redis's CPU per message reads as a ratio
# to it. SINGLE=skip leaves out the one-node run; HEARTH_SERVER=PATH runs
# another build's server (e.g. the commit before a change) with this
# build's load generator. Traffic stays on 127.0.0.1;
# everything started here is stopped at the end.
#
#   loadtest/bench-cluster.sh SCENARIO [hearth-loadtest run flags...]
#   loadtest/bench-cluster.sh steady --duration 10s
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:?usage: loadtest/bench-cluster.sh SCENARIO [flags]}
shift
# shellcheck source=loadtest/bench-common.sh
source loadtest/bench-common.sh
command -v redis-server >/dev/null || { echo "needs redis-server: apt-get install -y redis-server" >&2; exit 1; }
data=$(mktemp -d)
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT
machine_line "two nodes + $(redis-server --version | awk '{print $1, $3}') on CPU 0, generator on CPU 1"

if [ "${SINGLE:-run}" != skip ]; then
echo "== one node (embedded store)"
mkdir "$data/single"
taskset -c 0 "$bin/hearth-server" --data-dir "$data/single" "${load_limits[@]}" --listen 127.0.0.1:7880 \
  2>"$data/single.log" &
single=$!
pids+=("$single")
wait_for_ports 7880
taskset -c 1 "$bin/hearth-loadtest" run --scenario "$scenario" --url ws://127.0.0.1:7880 --server-pid "$single" "$@"
kill "$single"
wait "$single" 2>/dev/null || true
fi

echo "== two nodes + Redis (appendfsync ${REDIS_FSYNC:-always})"
taskset -c 0 redis-server --port 7380 --bind 127.0.0.1 --save "" --appendonly yes \
  --appendfsync "${REDIS_FSYNC:-always}" --dir "$data" --logfile "$data/redis.log" &
redis=$!
pids+=("$redis")
wait_for_ports 7380
cluster=(--redis redis://127.0.0.1:7380 --redis-prefix "bench-$$")
server=${HEARTH_SERVER:-$bin/hearth-server}
taskset -c 0 "$server" "${cluster[@]}" "${load_limits[@]}" --listen 127.0.0.1:7881 2>"$data/node1.log" &
node1=$!
taskset -c 0 "$server" "${cluster[@]}" "${load_limits[@]}" --listen 127.0.0.1:7882 2>"$data/node2.log" &
node2=$!
pids+=("$node1" "$node2")
wait_for_ports 7881 7882
taskset -c 1 "$bin/hearth-loadtest" run --scenario "$scenario" --url ws://127.0.0.1:7881 --url ws://127.0.0.1:7882 \
  --server-pid "$node1" --watch-pid "node2=$node2" --watch-pid "redis=$redis" "$@"
kill "$node1" "$node2"
wait "$node1" "$node2" 2>/dev/null || true
echo "   Redis commands per message (INFO commandstats, calls / EVALSHA calls):"
redis-cli -p 7380 INFO commandstats | tr -d '\r' | awk -F'[:=,]' '
  /^cmdstat_/ { name = substr($1, 9); calls[name] = $3 } END {
    for (n in calls) if (calls[n] >= calls["evalsha"] / 10) printf "     %s %.2f\n", n, calls[n] / calls["evalsha"] }' | sort

echo "== floor: XADD + SPUBLISH only, same Redis (appendfsync ${REDIS_FSYNC:-always})"
taskset -c 0 "$bin/hearth-loadtest" redis-cost --scenario "$scenario" --redis redis://127.0.0.1:7380 \
  --redis-pid "$redis" "$@"

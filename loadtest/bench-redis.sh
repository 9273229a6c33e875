#!/usr/bin/env bash
# What a message costs Redis in cluster mode, against the floor of the design,
# with nothing else on Redis's core: Redis alone on CPU 0 (AOF, appendfsync
# REDIS_FSYNC, default everysec), and on CPU 1 `hearth-loadtest redis-cost`
# sending the scenario's messages both ways in turns — `floor` (a script that
# only does XADD + SPUBLISH) and `hearth` (two nodes' brokers: Hearth's order
# path, batches and subscriptions, without sessions or fan-out). Each prints
# Redis's CPU per message. Traffic stays on 127.0.0.1; Redis is stopped at the
# end.
#
#   loadtest/bench-redis.sh [hearth-loadtest run flags...]
#   loadtest/bench-redis.sh --repeat 3 --duration 10s                 # 2,000 msg/s
#   loadtest/bench-redis.sh --repeat 3 --duration 10s --rate 250      # 10,000 msg/s
#   REDIS_PATHS="--path hearth" loadtest/bench-redis.sh --rate 1250     # one path only
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=loadtest/bench-common.sh
source loadtest/bench-common.sh
command -v redis-server >/dev/null || { echo "needs redis-server: apt-get install -y redis-server" >&2; exit 1; }
data=$(mktemp -d)
taskset -c 0 redis-server --port 7381 --bind 127.0.0.1 --save "" --appendonly yes \
  --appendfsync "${REDIS_FSYNC:-everysec}" --dir "$data" --logfile "$data/redis.log" &
redis=$!
trap 'kill $redis 2>/dev/null || true; wait $redis 2>/dev/null || true; rm -rf "$data"' EXIT
wait_for_ports 7381
machine_line "$(redis-server --version | awk '{print $1, $3}') alone on CPU 0 (appendfsync ${REDIS_FSYNC:-everysec}), driver on CPU 1"
taskset -c 1 "$bin/hearth-loadtest" redis-cost --redis redis://127.0.0.1:7381 --redis-pid "$redis" \
  ${REDIS_PATHS:---path floor --path hearth} "$@"

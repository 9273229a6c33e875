#!/usr/bin/env bash
# What a message costs Redis in cluster mode, against the floor of the design,
# with nothing else on Redis's core: Redis's main thread alone on CPU 0 (AOF,
# appendfsync REDIS_FSYNC, default everysec), and on CPU 1 its background
# threads (the AOF's fsync), its AOF rewrite child and `hearth-loadtest redis-cost`
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
#   REDIS_PLACEMENT=one-core loadtest/bench-redis.sh ...   # all of Redis on CPU 0, as before 2026-12-07
#
# The rewrite child forks two or three times in a run at saturation (the AOF
# grows by about 500 bytes a message) and serialises the whole dataset; on
# Redis's own core it took that core from the commands. Redis is deployed with
# its threads apart (server_cpulist, bio_cpulist, aof_rewrite_cpulist), and
# the figure asked for is what the core that runs the commands carries.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=loadtest/bench-common.sh
source loadtest/bench-common.sh
command -v redis-server >/dev/null || { echo "needs redis-server: apt-get install -y redis-server" >&2; exit 1; }
data=$(mktemp -d)
placement=(--server_cpulist 0 --bio_cpulist 1 --aof_rewrite_cpulist 1 --bgsave_cpulist 1)
launch=()
if [ "${REDIS_PLACEMENT:-apart}" = one-core ]; then
  placement=()
  launch=(taskset -c 0)
fi
"${launch[@]}" redis-server --port 7381 --bind 127.0.0.1 --save "" --appendonly yes \
  --appendfsync "${REDIS_FSYNC:-everysec}" "${placement[@]}" --dir "$data" --logfile "$data/redis.log" &
redis=$!
trap 'kill $redis 2>/dev/null || true; wait $redis 2>/dev/null || true; rm -rf "$data"' EXIT
wait_for_ports 7381
where="main thread alone on CPU 0, its background threads and rewrite child on CPU 1"
[ "${REDIS_PLACEMENT:-apart}" = one-core ] && where="alone on CPU 0 (all of it)"
machine_line "$(redis-server --version | awk '{print $1, $3}') $where (appendfsync ${REDIS_FSYNC:-everysec}), driver on CPU 1"
taskset -c 1 "$bin/hearth-loadtest" redis-cost --redis redis://127.0.0.1:7381 --redis-pid "$redis" \
  ${REDIS_PATHS:---path floor --path hearth} "$@"

#!/usr/bin/env bash
# What logins cost the server: one login's time, then bursts of N logins at
# once (unknown names: each still costs a full Argon2id verification against
# the decoy hash), with the server's resident memory after each burst and its
# peak. The server runs --ephemeral on 127.0.0.1:7880 with open registration.
#
#   loadtest/bench-logins.sh [N=50] [BURSTS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-50}
bursts=${2:-3}
# shellcheck source=loadtest/bench-common.sh
source loadtest/bench-common.sh
"$bin/hearth-server" --ephemeral --listen 127.0.0.1:7880 --registration open 2>/dev/null &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
wait_for_ports 7880
machine_line
memory() { grep -E "^(VmRSS|VmHWM)" "/proc/$server/status" | tr -s ' \t' ' ' | tr '\n' ' '; echo; }
echo "idle: $(memory)"
curl -s -o /dev/null -X POST 127.0.0.1:7880/auth/register -d '{"name":"ada","password":"correct horse"}'
for _ in 1 2 3; do
  curl -s -o /dev/null -w "one login: %{http_code} in %{time_total} s\n" -X POST 127.0.0.1:7880/auth/login \
    -d '{"name":"ada","password":"correct horse"}'
done
for burst in $(seq "$bursts"); do
  start=$(date +%s%N)
  pids=()
  for i in $(seq "$n"); do
    curl -s -o /dev/null -X POST 127.0.0.1:7880/auth/login -d "{\"name\":\"x$i\",\"password\":\"correct horse\"}" &
    pids+=($!)
  done
  wait "${pids[@]}"
  echo "burst $burst: $n logins at once in $(( ($(date +%s%N) - start) / 1000000 )) ms; $(memory)"
done

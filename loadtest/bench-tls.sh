#!/usr/bin/env bash
# What TLS costs per delivery: the same scenario against hearth-server over
# ws:// and over wss:// (a certificate made here by a throwaway CA), both
# durable on fresh data directories and pinned to CPU 0, the load generator on
# CPU 1, in one run. The report calls the wss:// server "floor": read
# "hearth / floor" as "ws / wss". Traffic stays on 127.0.0.1.
#
#   loadtest/bench-tls.sh SCENARIO [hearth-loadtest run flags...]
#   loadtest/bench-tls.sh steady --repeat 3 --duration 10s
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:?usage: loadtest/bench-tls.sh SCENARIO [flags]}
shift
# shellcheck source=loadtest/bench-common.sh
source loadtest/bench-common.sh
d1=$(mktemp -d); d2=$(mktemp -d); certs=$(mktemp -d)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench-ca \
  -keyout "$certs/ca.key" -out "$certs/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
  -keyout "$certs/key.pem" -out "$certs/req.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$certs/ext"
openssl x509 -req -in "$certs/req.csr" -CA "$certs/ca.pem" -CAkey "$certs/ca.key" -CAcreateserial -days 1 \
  -extfile "$certs/ext" -out "$certs/cert.pem" 2>/dev/null
taskset -c 0 "$bin/hearth-server" --data-dir "$d1" "${load_limits[@]}" --listen 127.0.0.1:7878 2>"$d1/server.log" &
plain=$!
taskset -c 0 "$bin/hearth-server" --data-dir "$d2" "${load_limits[@]}" --listen 127.0.0.1:7979 \
  --tls-cert "$certs/cert.pem" --tls-key "$certs/key.pem" 2>"$d2/server.log" &
tls=$!
trap 'kill $plain $tls 2>/dev/null || true; wait $plain $tls 2>/dev/null || true; rm -rf "$d1" "$d2" "$certs"' EXIT
wait_for_ports 7878 7979
machine_line "ws:// vs wss:// (TLS 1.3, P-256)"
taskset -c 1 "$bin/hearth-loadtest" run --scenario "$scenario" --ca-file "$certs/ca.pem" \
  --url ws://127.0.0.1:7878 --server-pid "$plain" --floor-url wss://127.0.0.1:7979 --floor-pid "$tls" "$@"

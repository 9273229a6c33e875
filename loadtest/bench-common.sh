# Shared by the bench scripts (sourced, not run): builds the release binaries,
# sets `bin`, raises the open-files limit, and defines `load_limits` and
# `wait_for_ports`. Run from the repository root.

cargo build --release -q -p hearth-server -p hearth-loadtest
bin=${CARGO_TARGET_DIR:-target}/release
# Raise this shell's open-files limit (for its children only) as far as allowed.
ulimit -n "$(ulimit -Hn)"
export HEARTH_TOKEN_SECRET=${HEARTH_TOKEN_SECRET:-bench-secret-bench-secret-0123456789}
export RUST_LOG=${RUST_LOG:-warn}
# One generator process makes every member's connection from one address, and
# its senders send far faster than a person: lift the per-connection and
# per-address limits (they are still checked on every request, never refused).
load_limits=(--message-rate 1000000 --message-burst 1000000 --request-rate 1000000 --request-burst 1000000
  --max-in-flight 100000 --connections-per-ip 1000000 --rooms-per-user 1000000)
# LOAD_LIMITS=production keeps the per-connection rates at their defaults (the
# `flood` scenario measures what they protect); only the per-address and
# per-user counts stay lifted.
if [ "${LOAD_LIMITS:-lifted}" = production ]; then
  load_limits=(--connections-per-ip 1000000 --rooms-per-user 1000000)
fi

# Waits (up to 10 s) until every given loopback port accepts connections.
wait_for_ports() {
  for _ in $(seq 100); do
    local all=1 port
    for port in "$@"; do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || all=0
    done
    [ "$all" = 1 ] && return 0
    sleep 0.1
  done
}

machine_line() {
  echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r); $(date -u +%F)${1:+; $1}"
}

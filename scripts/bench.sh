#!/usr/bin/env bash
# Scale benchmark: for each N (default 10000 100000) generate a cluster state
# (scripts/gen-state.py), start `bindguard serve --state` on it and report peak RSS (VmHWM) and
# the time from process start to /readyz 200; then run the decision benchmark with N = the last
# size loaded (benches/judge.rs). Prints one table. Needs python3 and curl.
# Usage: scripts/bench.sh [N...]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bindguard/target}"
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 100000)
cargo build --release --locked --quiet
BIN="$CARGO_TARGET_DIR/release/bindguard"
WORK="$(mktemp -d)"
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "| N bindings | start to /readyz 200 | peak RSS (VmHWM) |"
echo "|---|---|---|"
for n in "${sizes[@]}"; do
  state="$WORK/state-$n"
  python3 scripts/gen-state.py "$n" "$state"
  cp examples/cluster/*.yaml "$state/"
  admin=$(port); webhook=$(port)
  start=$(date +%s%N)
  "$BIN" serve --state "$state" --addr "127.0.0.1:$webhook" --admin-addr "127.0.0.1:$admin" \
    --drain-delay 0s >"$WORK/serve-$n.log" 2>&1 &
  pid=$!
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin/readyz")" = 200 ]; do
    kill -0 "$pid" 2>/dev/null || { echo "serve died:"; cat "$WORK/serve-$n.log"; exit 1; }
    sleep 0.01
  done
  ready_ms=$(( ($(date +%s%N) - start) / 1000000 ))
  hwm=$(awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  echo "| $n | ${ready_ms} ms | $hwm |"
  last="$state"
done
echo
echo "Decision benchmark with the last state loaded ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)):"
echo
BINDGUARD_BENCH_STATE="$last" cargo bench --locked --quiet --bench judge 2>/dev/null | grep '^|'

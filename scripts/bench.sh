#!/usr/bin/env bash
# Scale benchmark: for each N (default 10000 100000) generate a cluster state
# (scripts/gen-state.py), start `bindguard serve --state` on it and report peak RSS (VmHWM) and
# the time from process start to /readyz 200; then, with the last state loaded, compare HTTPS
# throughput and latency of `bindguard serve` with a constant responder on the same TLS and hyper
# stack (examples/constant_responder.rs) under the same wrk load, side by side, and run the
# decision benchmark (benches/judge.rs) and the latency of both at a fixed rate of half bindguard's
# best (examples/fixed_rate.rs); last, when the end-to-end binaries are built
# (tests/e2e/provision.sh has run, as `./test.sh` does), the live benchmark against a real
# kube-apiserver (tests/e2e/bench.rs) with BENCH_LIVE_N bindings. Prints the tables. Needs python3,
# curl and wrk (Debian: apt-get install wrk).
# Usage: scripts/bench.sh [N...]   (BENCH_SECONDS=10 per wrk run; BENCH_LIVE_N=10000, 0 skips)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bindguard/target}"
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 100000)
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
cargo build --release --locked --quiet --bin bindguard --example constant_responder --example fixed_rate
BIN="$CARGO_TARGET_DIR/release/bindguard"
RESPONDER="$CARGO_TARGET_DIR/release/examples/constant_responder"
FIXED_RATE="$CARGO_TARGET_DIR/release/examples/fixed_rate"
SECONDS_PER_RUN="${BENCH_SECONDS:-10}"
WORK="$(mktemp -d)"
trap 'kill ${pid:-} ${responder:-} 2>/dev/null || true; rm -rf "$WORK"' EXIT
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

# HTTPS: bindguard on the last state and the constant responder, same certificate, same wrk
# settings, runs alternated so both see the same machine.
"$BIN" certs --out "$WORK/certs" --dns localhost >/dev/null
admin=$(port); webhook=$(port); constant=$(port)
"$BIN" serve --state "$last" --addr "127.0.0.1:$webhook" --admin-addr "127.0.0.1:$admin" \
  --tls-cert "$WORK/certs/tls.crt" --tls-key "$WORK/certs/tls.key" --drain-delay 0s \
  >"$WORK/serve-https.log" 2>&1 &
pid=$!
"$RESPONDER" "127.0.0.1:$constant" "$WORK/certs/tls.crt" "$WORK/certs/tls.key" &
responder=$!
until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin/readyz")" = 200 ]; do
  kill -0 "$pid" 2>/dev/null || { echo "serve died:"; cat "$WORK/serve-https.log"; exit 1; }
  sleep 0.01
done
reviews=examples/reviews
mix=(/validate=$reviews/rrb-valid.allow.json /validate=$reviews/rrb-duplicate.deny-403.json
  /mutate=$reviews/rrb-labels.patch.json /validate=$reviews/rrb-cross-project.deny-403.json
  /validate=$reviews/kratix-binding-latest.allow.json /mutate=$reviews/kratix-binding-labels.patch.json)
# wrk prints "Requests/sec: X" and, with --latency, "50% Yms" ... "99% Zms".
run_wrk() { # PORT CONNECTIONS -> "rps p50 p99"
  wrk -t1 -c"$2" -d"${SECONDS_PER_RUN}s" --latency -s scripts/wrk-reviews.lua \
    "https://localhost:$1" -- "${mix[@]}" |
    awk '/Requests\/sec/ {r=$2} $1=="50%" {p50=$2} $1=="99%" {p99=$2} END {print r, p50, p99}'
}
echo
echo "HTTPS with N = $n loaded: wrk 1 thread, ${SECONDS_PER_RUN} s per run, keep-alive, a mix of" \
  "allowed, denied and patched reviews (${#mix[@]} bodies in turn); runs alternated:"
echo
echo "| server | connections | requests/s | p50 | p99 |"
echo "|---|---|---|---|---|"
declare -A best
for round in 1 2; do
  for c in 16 1; do
    for who in constant bindguard; do
      p=$constant; [ "$who" = bindguard ] && p=$webhook
      read -r rps p50 p99 < <(run_wrk "$p" "$c")
      echo "| $who (run $round) | $c | $rps | $p50 | $p99 |"
      key="$who-$c"
      awk -v a="$rps" -v b="${best[$key]:-0}" 'BEGIN {exit !(a > b)}' && best[$key]=$rps
    done
  done
done
for c in 16 1; do
  awk -v b="${best[bindguard-$c]}" -v k="${best[constant-$c]}" -v c="$c" \
    'BEGIN {printf "\nbindguard / constant, best of each, %d connection(s): %.2f\n", c, b / k}'
done
# Latency at a fixed rate, half of bindguard's best rate above, for both servers: wrk is
# closed-loop (it sends when an answer arrives), so its percentiles hide the queue a slower server
# builds; examples/fixed_rate.rs schedules every request and charges the wait.
half=$(awk -v b="${best[bindguard-16]}" 'BEGIN {printf "%d", b / 2}')
echo
echo "Fixed rate of $half requests/s (half of bindguard's best above), 16 connections," \
  "${SECONDS_PER_RUN} s per run, same mix (examples/fixed_rate.rs); runs alternated:"
echo
echo "| server | answered | p50 | p90 | p99 | max | errors |"
echo "|---|---|---|---|---|---|---|"
for round in 1 2; do
  for who in constant bindguard; do
    p=$constant; [ "$who" = bindguard ] && p=$webhook
    read -r answered _ p50 p90 p99 max errors < <("$FIXED_RATE" "127.0.0.1:$p" "$WORK/certs/ca.crt" \
      "$half" "$SECONDS_PER_RUN" 16 "${mix[@]}")
    echo "| $who (run $round) | $answered | $p50 ms | $p90 ms | $p99 ms | $max ms | $errors |"
  done
done

echo
echo "Decision benchmark with the last state loaded ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)):"
echo
BINDGUARD_BENCH_STATE="$last" cargo bench --locked --quiet --bench judge 2>/dev/null | grep '^|'

live_n="${BENCH_LIVE_N:-10000}"
if [ "$live_n" != 0 ] && ls "${XDG_CACHE_HOME:-$HOME/.cache}"/bindguard/e2e-kube-*/kube-apiserver >/dev/null 2>&1; then
  echo
  echo "Live, through a real kube-apiserver and etcd on this machine:"
  echo
  BINDGUARD_LIVE_BENCH="$live_n" cargo test --release --locked --quiet --test e2e 2>/dev/null | grep '^|'
else
  echo
  echo "(live benchmark skipped: run ./test.sh once to build the end-to-end binaries)"
fi

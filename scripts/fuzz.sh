#!/usr/bin/env bash
# Fuzzes review decoding + every policy (target `review`) and schema compile + default + validate
# (target `schema`) with cargo-fuzz and libFuzzer, each for SECONDS (default 300). The committed
# seed corpus under fuzz/corpus/ is copied, never grown in place; findings land in
# fuzz/artifacts/<target>/ (git-ignored). RUSTC_BOOTSTRAP lets the stable toolchain take
# libFuzzer's flags. `scripts/fuzz.sh 10` is a smoke pass.
set -euo pipefail
seconds=${1:-300}
root=$(cd "$(dirname "$0")/.." && pwd)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
target_dir=${BINDGUARD_FUZZ_TARGET:-$HOME/.cache/bindguard/fuzz-target}
cd "$root/fuzz"
for target in review schema; do
  corpus=$(mktemp -d)
  cp corpus/"$target"/* "$corpus"/
  echo "fuzz: $target for ${seconds}s"
  cargo fuzz run --release --target-dir "$target_dir" "$target" "$corpus" -- \
    -max_total_time="$seconds" -max_len=262144 -rss_limit_mb=4096 -timeout=10
  rm -rf "$corpus"
done

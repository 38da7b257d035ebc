#!/usr/bin/env bash
# The test command: unit and integration tests, then the end-to-end suite against a real
# kube-apiserver and etcd (built once from Go modules and cached under ~/.cache/bindguard).
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bindguard/target}"
cargo test --release --locked --lib --bins --test crds --test server --test reviews --test cli --test check
cargo test --release --locked --test e2e

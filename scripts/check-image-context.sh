#!/usr/bin/env bash
# Proves the Dockerfile's build context without a Docker engine: copies exactly what the
# Dockerfile's build stage COPYs (from the repository) into an empty folder and runs the same
# `cargo build --locked` there. A file the build needs but the Dockerfile forgets fails here.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
# `COPY <src>... <dest>` lines of the build stage (not `COPY --from=...`).
while read -r _ args; do
  read -ra parts <<<"$args"
  dest=${parts[-1]}
  unset 'parts[-1]'
  for src in "${parts[@]}"; do
    case "$dest" in
      ./) cp -a "$root/$src" "$context/" ;;
      *) mkdir -p "$context/$dest" && cp -a "$root/$src/." "$context/$dest/" ;;
    esac
  done
done < <(grep -E '^COPY ' "$root/Dockerfile" | grep -v -- '--from=')
build=$(grep -E '^RUN cargo build' "$root/Dockerfile" | sed -e 's/^RUN //' -e 's/ *\\$//')
echo "image context: $(cd "$context" && find . -type f | wc -l) files; running: $build"
(cd "$context" && eval "$build")
bin=${CARGO_TARGET_DIR:-$context/target}/release/bindguard
stripped=$context/bindguard.stripped
cp "$bin" "$stripped"
strip "$stripped"
echo "image context: built $bin: $(du -h "$bin" | cut -f1) unstripped, $(du -h "$stripped" | cut -f1) stripped (as in the image)"

#!/usr/bin/env bash
# Benchmark of `bindguard check --base`: a generated GitOps repository of N objects (default
# 10,000) whose last commit changes 100 of them (40 bindings edited, an Environment and 39
# bindings created, 20 bindings deleted), checked RUNS times (default 5). Prints the median wall
# time and objects per second.
# Usage: scripts/bench-check.sh [N] [RUNS]      (needs git and python3; nothing is committed here)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-10000}"
RUNS="${2:-5}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bindguard/target}"
cargo build --release --locked --quiet
BIN="$CARGO_TARGET_DIR/release/bindguard"
REPO="$(mktemp -d)"
trap 'rm -rf "$REPO"' EXIT

python3 - "$REPO" "$N" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
G = "openchoreo.dev/v1alpha1"
def doc(kind, ns, name, spec, extra=""):
    return f"apiVersion: {G}\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: {ns}\n{extra}spec:\n{spec}"
SCHEMA = ("  environmentConfigs:\n    openAPIV3Schema:\n      type: object\n      properties:\n"
          "        memory: {type: string, default: 512Mi}\n        replicas: {type: integer, minimum: 1}\n")
namespaces = [f"team-{i}" for i in range(10)]
per_ns = n // len(namespaces)
for ns in namespaces:
    d = os.path.join(root, "platform", ns); os.makedirs(d, exist_ok=True)
    docs = [doc("Project", ns, "shop", "  description: shop\n"),
            doc("Environment", ns, "development", "  isProduction: false\n"),
            doc("Environment", ns, "production", "  isProduction: true\n"),
            doc("ResourceType", ns, "postgres", SCHEMA)]
    # Each unit: a Resource, its release and two bindings: four objects.
    units = (per_ns - len(docs)) // 4
    for u in range(units):
        r = f"db-{u}"
        docs.append(doc("Resource", ns, r, f"  owner:\n    projectName: shop\n  type:\n    kind: ResourceType\n    name: postgres\n"))
        docs.append(doc("ResourceRelease", ns, f"{r}-rel1", f"  owner:\n    projectName: shop\n    resourceName: {r}\n  resourceType:\n    kind: ResourceType\n    name: postgres\n    spec:\n  " + SCHEMA.replace("\n  ", "\n    ")))
        for env in ("development", "production"):
            docs.append(doc("ResourceReleaseBinding", ns, f"{r}-{env}",
                f"  owner:\n    projectName: shop\n    resourceName: {r}\n  environment: {env}\n  resourceRelease: {r}-rel1\n  resourceTypeEnvironmentConfigs:\n    replicas: 2\n"))
    # 100 files per namespace, so a change touches a handful of files.
    chunk = max(1, len(docs) // 100)
    for i in range(0, len(docs), chunk):
        with open(os.path.join(d, f"objects-{i // chunk:03}.yaml"), "w") as f:
            f.write("---\n".join(docs[i:i + chunk]))
PY
git -C "$REPO" init -q -b main
git -C "$REPO" -c user.email=b@b -c user.name=bench add -A
git -C "$REPO" -c user.email=b@b -c user.name=bench commit -q -m base
python3 - "$REPO" <<'PY'
import os, re, sys
root = sys.argv[1]; d = os.path.join(root, "platform", "team-0")
files = sorted(os.listdir(d))
edited = created = deleted = 0
for name in files:
    path = os.path.join(d, name); text = open(path).read(); docs = text.split("---\n")
    out = []
    for doc in docs:
        if "kind: ResourceReleaseBinding" in doc and edited < 40:
            doc = doc.replace("replicas: 2", "replicas: 3"); edited += 1
        elif "kind: ResourceReleaseBinding" in doc and "-production" in doc and deleted < 20:
            deleted += 1; continue
        out.append(doc)
    open(path, "w").write("---\n".join(out))
new = ["apiVersion: openchoreo.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: staging\n  namespace: team-1\nspec: {}\n"]
for i in range(39):
    new.append(f"apiVersion: openchoreo.dev/v1alpha1\nkind: ResourceReleaseBinding\nmetadata:\n  name: db-{i}-staging\n  namespace: team-1\nspec:\n  owner:\n    projectName: shop\n    resourceName: db-{i}\n  environment: staging\n")
open(os.path.join(root, "platform", "team-1", "staging.yaml"), "w").write("---\n".join(new))
PY
git -C "$REPO" -c user.email=b@b -c user.name=bench add -A
git -C "$REPO" -c user.email=b@b -c user.name=bench commit -q -m change
objects=$(cd "$REPO" && grep -rh '^kind:' platform | wc -l)
times=()
for _ in $(seq "$RUNS"); do
  start=$(date +%s%N)
  (cd "$REPO" && "$BIN" check --base HEAD~1 platform >/tmp/bench-check.out 2>&1) || true
  times+=($(( ($(date +%s%N) - start) / 1000000 )))
done
median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "bench-check: $(tail -1 /tmp/bench-check.out)"
echo "bench-check: $objects objects, runs (ms): ${times[*]}; median ${median} ms; $(( objects * 1000 / (median > 0 ? median : 1) )) objects/s ($(nproc) cores)"

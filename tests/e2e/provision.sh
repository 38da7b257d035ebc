#!/usr/bin/env bash
# Builds (once) the real Kubernetes parts the end-to-end suite runs against:
# kube-apiserver and kubectl v1.37.2, etcd v3.7.3 and helm v3.22.0, from their Go modules.
# Binaries are cached outside the checkout, keyed by version; a warm machine reuses them.
# Prints the directory that holds them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
KUBE_VERSION=v1.37.2
ETCD_VERSION=v3.7.3
HELM_VERSION=v3.22.0
cache=${BINDGUARD_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bindguard/e2e-kube-${KUBE_VERSION}-etcd-${ETCD_VERSION}}
mkdir -p "$cache"
# Runs that overlap (two suites, or a suite and a warm-up in the background) build one at a time.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache/.lock"
  flock 9
fi

build() { # name module-dir package
  local out=$cache/$1
  [ -x "$out" ] && return 0
  echo "provision: building $1 (first run on this machine; later runs reuse $cache)" >&2
  local start=$SECONDS
  (cd "$here/$2" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out.tmp" "$3")
  mv "$out.tmp" "$out"
  echo "provision: built $1 in $((SECONDS - start))s" >&2
}

# helm has no replaced modules, so it installs straight from its module at a pinned version.
install() { # name module@version
  local out=$cache/$1
  [ -x "$out" ] && return 0
  echo "provision: building $1 (first run on this machine; later runs reuse $cache)" >&2
  local start=$SECONDS tmp
  tmp=$(mktemp -d)
  GOBIN="$tmp" CGO_ENABLED=0 go install -trimpath -ldflags='-s -w' "$2"
  mv "$tmp/$1" "$out"
  rmdir "$tmp"
  echo "provision: built $1 in $((SECONDS - start))s" >&2
}

build kube-apiserver kube k8s.io/kubernetes/cmd/kube-apiserver
build kubectl kube k8s.io/kubernetes/cmd/kubectl
build etcd etcd go.etcd.io/etcd/server/v3
install helm helm.sh/helm/v3/cmd/helm@${HELM_VERSION}
echo "$cache"

#!/usr/bin/env bash
# Build (once) and cache a real Kubernetes control plane: etcd, kube-apiserver,
# kube-scheduler, kube-controller-manager and kubectl.
#
# Order of preference:
#   1. $KUBEBUILDER_ASSETS, when it names a folder holding etcd + kube-apiserver
#      (controller-runtime envtest convention): nothing is built.
#   2. A cache under ${KRIOS_CACHE_DIR:-~/.cache/krios}/k8s-<version>/bin that a
#      previous run completed (marker file .complete): nothing is built.
#   3. Debian's `kubernetes` source package (1.20.2, vendored) built offline
#      with Debian's Go; etcd from Debian's etcd-server package.
#
# Prints the folder with the binaries on its last line of stdout.
set -euo pipefail

K8S_VERSION="${KRIOS_K8S_VERSION:-1.20.2}"
CACHE_ROOT="${KRIOS_CACHE_DIR:-$HOME/.cache/krios}"
DEST="$CACHE_ROOT/k8s-$K8S_VERSION"
BIN="$DEST/bin"

log() { printf '[control-plane] %s\n' "$*" >&2; }

if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/etcd" && -x "$KUBEBUILDER_ASSETS/kube-apiserver" ]]; then
  log "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

if [[ -f "$DEST/.complete" ]]; then
  log "cached: $BIN"
  echo "$BIN"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

need_pkgs=()
command -v go >/dev/null || need_pkgs+=(golang-go)
command -v rsync >/dev/null || need_pkgs+=(rsync)
[[ -x /usr/bin/etcd ]] || need_pkgs+=(etcd-server)
command -v openssl >/dev/null || need_pkgs+=(openssl)
command -v make >/dev/null || need_pkgs+=(make)

SRC_LIST=/etc/apt/sources.list.d/krios-deb-src.sources
if [[ ! -f "$SRC_LIST" ]] && ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  log "adding a deb-src twin of the Debian archive entry"
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    # First stanza only (the main archive), same URIs and suites, Types: deb-src.
    awk 'BEGIN{RS=""; ORS="\n\n"} NR==1 {sub(/Types: deb/, "Types: deb-src"); print}' \
      /etc/apt/sources.list.d/debian.sources | $SUDO tee "$SRC_LIST" >/dev/null
  else
    grep -E '^deb ' /etc/apt/sources.list | head -1 | sed 's/^deb /deb-src /' | $SUDO tee /etc/apt/sources.list.d/krios-deb-src.list >/dev/null
  fi
  APT_UPDATE=1
fi
if [[ ${#need_pkgs[@]} -gt 0 || -n "${APT_UPDATE:-}" ]]; then
  log "apt-get update"
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
fi
if [[ ${#need_pkgs[@]} -gt 0 ]]; then
  log "installing ${need_pkgs[*]}"
  $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${need_pkgs[@]}" >&2
fi

WORK="$CACHE_ROOT/build-k8s-$K8S_VERSION"
rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK"
log "downloading Debian source package kubernetes"
apt-get source --download-only kubernetes >&2
tarball=$(ls kubernetes_*.orig.tar.gz | head -1)
log "unpacking $tarball"
mkdir src
tar -xzf "$tarball" -C src --strip-components=1
cd src
mkdir -p .go/src/k8s.io
ln -s ../../.. .go/src/k8s.io/kubernetes
log "building kube-apiserver kube-scheduler kube-controller-manager kubectl (about 6-10 min on 2 cores)"
start=$(date +%s)
(
  GOPATH=$PWD/.go CGO_ENABLED=0 GOPROXY=off \
    make WHAT="cmd/kube-apiserver cmd/kube-scheduler cmd/kube-controller-manager cmd/kubectl" 2>&1
) | while IFS= read -r line; do printf '[control-plane] [%4ss] %s\n' "$(( $(date +%s) - start ))" "$line" >&2; done
mkdir -p "$BIN"
for b in kube-apiserver kube-scheduler kube-controller-manager kubectl; do
  install -m 0755 "_output/bin/$b" "$BIN/$b"
done
ln -sf /usr/bin/etcd "$BIN/etcd"
echo "$K8S_VERSION" > "$DEST/.complete"
cd /
rm -rf "$WORK"
log "built in $(( $(date +%s) - start ))s: $BIN"
echo "$BIN"

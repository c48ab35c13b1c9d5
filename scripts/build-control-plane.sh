#!/usr/bin/env bash
# Build (once) and cache a real Kubernetes control plane: etcd, kube-apiserver,
# kube-scheduler, kube-controller-manager and kubectl, plus the node binaries
# (kubelet, kubeadm, kube-proxy) that `krios lab` and the `local` artifact
# source of the provisioning roles install on real nodes.
#
# Order of preference:
#   1. $KUBEBUILDER_ASSETS, when it names a folder holding etcd + kube-apiserver
#      (controller-runtime envtest convention): nothing is built.
#   2. A cache under ${KRIOS_CACHE_DIR:-~/.cache/krios}/k8s-<version>/bin that a
#      previous run completed (marker file .complete): nothing is built.
#   3. Debian's `kubernetes` source package (1.20.2, vendored) built offline
#      with Debian's Go; etcd from Debian's etcd-server package (copied into
#      the cache, so the cache is self-contained).
#
# Two builds never run at once: a second caller waits for the first (flock)
# and then finds the cache. Prints the folder with the binaries on its last
# line of stdout; progress goes to stderr.
set -euo pipefail

K8S_VERSION="${KRIOS_K8S_VERSION:-1.20.2}"
CACHE_ROOT="${KRIOS_CACHE_DIR:-$HOME/.cache/krios}"
DEST="$CACHE_ROOT/k8s-$K8S_VERSION"
BIN="$DEST/bin"

log() { printf '[control-plane] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/etcd" && -x "$KUBEBUILDER_ASSETS/kube-apiserver" ]]; then
  log "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

BINARIES=(kube-apiserver kube-scheduler kube-controller-manager kubectl kubelet kubeadm kube-proxy)
# What a complete cache records; a cache from an older recipe (e.g. built with the
# vendored reflect2 1.0.1, whose kubeadm panics under Go >= 1.18) is rebuilt.
RECIPE="$K8S_VERSION reflect2-1.0.2 ${BINARIES[*]}"
cached() {
  [[ -f "$DEST/.complete" && -x "$BIN/etcd" && "$(cat "$DEST/.complete")" == "$RECIPE" ]] || return 1
  local b; for b in "${BINARIES[@]}"; do [[ -x "$BIN/$b" ]] || return 1; done
}

if cached; then
  log "cached: $BIN"
  echo "$BIN"
  exit 0
fi

mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.build-k8s-$K8S_VERSION.lock"
if ! flock -n 9; then
  log "another build of the control plane is running; waiting for it"
  flock 9
fi
if cached; then
  log "cached (built by the other run): $BIN"
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
REFLECT2=/usr/share/gocode/src/github.com/modern-go/reflect2
[[ -d $REFLECT2 ]] || need_pkgs+=(golang-github-modern-go-reflect2-dev)
command -v make >/dev/null || need_pkgs+=(make)

# A deb-src twin of the distribution's archive entry (deb822 .sources or one-line sources.list).
SRC_LIST=/etc/apt/sources.list.d/krios-deb-src.sources
have_deb_src() {
  [[ -f "$SRC_LIST" ]] || grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ \
    || grep -rqs '^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/
}
if ! have_deb_src; then
  log "adding a deb-src twin of the distribution's archive entry"
  main_sources=""
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list.d/ubuntu.sources; do
    [[ -f "$f" ]] && { main_sources="$f"; break; }
  done
  if [[ -n "$main_sources" ]]; then
    # First stanza only (the main archive), same URIs and suites, Types: deb-src.
    awk 'BEGIN{RS=""; ORS="\n\n"} NR==1 {sub(/Types: deb/, "Types: deb-src"); print}' \
      "$main_sources" | $SUDO tee "$SRC_LIST" >/dev/null
  else
    SRC_LIST=/etc/apt/sources.list.d/krios-deb-src.list
    grep -E '^deb ' /etc/apt/sources.list | head -1 | sed 's/^deb /deb-src /' | $SUDO tee "$SRC_LIST" >/dev/null
  fi
fi
# Update when packages are missing or apt does not know the source package yet
# (e.g. the deb-src entry was added by an earlier run whose update failed).
if [[ ${#need_pkgs[@]} -gt 0 ]] || ! apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Package: kubernetes'; then
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
trap 'rm -rf "$WORK"' EXIT   # sources, objects and Go's build cache: about 2 GB
cd "$WORK"
log "downloading Debian source package kubernetes"
apt-get source --download-only kubernetes >&2 \
  || die "no 'kubernetes' source package from apt; set KUBEBUILDER_ASSETS to a folder with etcd and kube-apiserver instead"
tarball=$(ls kubernetes_*.orig.tar.gz | head -1)
log "unpacking $tarball"
mkdir src
tar -xzf "$tarball" -C src --strip-components=1
cd src
# Kubernetes 1.20 vendors modern-go/reflect2 1.0.1, which breaks under Go >= 1.18
# (nil pointer in reflect2.(*frozenConfig).Type2 from json-iterator: `kubeadm init`
# panics at kubelet-start). Debian's golang-github-modern-go-reflect2-dev is 1.0.2,
# the upstream fix, with the same API.
rm -rf vendor/github.com/modern-go/reflect2
cp -a "$REFLECT2" vendor/github.com/modern-go/reflect2
rm -f vendor/github.com/modern-go/reflect2/*_test.go
mkdir -p .go/src/k8s.io
ln -s ../../.. .go/src/k8s.io/kubernetes
log "building ${BINARIES[*]} (about 8-12 min on 2 cores)"
start=$(date +%s)
if ! (
  GOPATH=$PWD/.go GOCACHE=$WORK/.gocache CGO_ENABLED=0 GOPROXY=off \
    make WHAT="${BINARIES[*]/#/cmd/}" 2>&1
) | while IFS= read -r line; do printf '[control-plane] [%4ss] %s\n' "$(( $(date +%s) - start ))" "$line" >&2; done
then
  die "the Kubernetes build failed after $(( $(date +%s) - start ))s (output above); nothing was cached"
fi
mkdir -p "$BIN"
for b in "${BINARIES[@]}"; do
  install -m 0755 "_output/bin/$b" "$BIN/$b"
done
install -m 0755 /usr/bin/etcd "$BIN/etcd"
echo "$RECIPE" > "$DEST/.complete"
cd /
log "built in $(( $(date +%s) - start ))s: $BIN"
echo "$BIN"

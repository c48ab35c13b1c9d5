#!/usr/bin/env bash
# Build (once) and cache the container images a kubeadm 1.20.2 cluster needs,
# without any registry: the files repo of `krios_artifact_source: local`
# (kubespray's offline mode: image archives plus a SHA256SUMS file).
#
#   scripts/build-node-images.sh            # prints the folder on its last stdout line
#
# Output: ${KRIOS_CACHE_DIR:-~/.cache/krios}/k8s-1.20.2/images/
#   pause.tar kube-apiserver.tar kube-controller-manager.tar kube-scheduler.tar
#   kube-proxy.tar etcd.tar   (docker-archive, imported with `ctr -n k8s.io images import`)
#   krios-app.tar             the zone-pinned app (the seed's nginx): Python's http.server on port 80
#   SHA256SUMS                (sha256sum format; the roles check every copy against it)
# Images are tagged registry.krios.local/<name>:<tag>, the imageRepository the
# kubeadm config names. CoreDNS is not built: no registry here has it and
# kubeadm's addon/coredns phase is skipped with the local source.
#
# Made from: the binaries of scripts/build-control-plane.sh (static Go, on
# scratch); Debian's etcd-server (/usr/bin/etcd with the libc it links); pause
# compiled with gcc -static from build/pause/linux/pause.c of Debian's
# `kubernetes` source package; kube-proxy on the Debian 12 debootstrap root
# (the lab nodes' root) with iptables, conntrack and ipset. podman (with runc:
# crun refuses this kernel's hybrid cgroup v1) builds with --timestamp 0, so the
# same inputs give the same archives and checksums.
set -euo pipefail

K8S_VERSION="${KRIOS_K8S_VERSION:-1.20.2}"
CACHE_ROOT="${KRIOS_CACHE_DIR:-$HOME/.cache/krios}"
OUT="$CACHE_ROOT/k8s-$K8S_VERSION/images"
REPO="${KRIOS_IMAGE_REPOSITORY:-registry.krios.local}"
PAUSE_TAG=3.2      # kubeadm 1.20's pause
ETCD_TAG=3.4.23    # Debian 12's etcd-server; the kubeadm config sets etcd.local.imageTag to it
APP_TAG=0.1        # the app the seed ran as nginx: anything that answers HTTP on port 80
IMAGES=(pause kube-apiserver kube-controller-manager kube-scheduler kube-proxy etcd krios-app)
RECIPE="v$K8S_VERSION pause-$PAUSE_TAG etcd-$ETCD_TAG app-$APP_TAG python-3.11 $REPO ${IMAGES[*]}"

log() { printf '[node-images] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

PYTHON_BASE="$REPO/krios-python:3.11-bookworm"
cached() {
  [[ -f "$OUT/.complete" && "$(cat "$OUT/.complete")" == "$RECIPE" && -f "$OUT/SHA256SUMS" ]] \
    && podman image exists "$PYTHON_BASE" 2>/dev/null
}
if cached; then log "cached: $OUT"; echo "$OUT"; exit 0; fi

mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.build-node-images.lock"
flock 9
if cached; then log "cached (built by another run): $OUT"; echo "$OUT"; exit 0; fi

BIN=$(bash "$(dirname "$0")/build-control-plane.sh" | tail -1)
for b in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
  [[ -x "$BIN/$b" ]] || die "$BIN/$b is missing (scripts/build-control-plane.sh builds it)"
done

SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
need=()
for p in podman runc gcc libc6-dev etcd-server debootstrap; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [[ ${#need[@]} -gt 0 ]]; then
  log "installing ${need[*]}"
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${need[@]}" >&2
fi

start=$(date +%s)
W=$(mktemp -d "${TMPDIR:-/tmp}/krios-node-images.XXXXXX")
trap 'rm -rf "$W"' EXIT
P=(podman --runtime runc)
BUILD=(build --timestamp 0 -q)

# The Debian 12 root the lab nodes use (same cache and key as krios.lab.image).
TARBALL=$(cd "$(dirname "$0")/.." && PYTHONPATH=src python3 -c 'from krios.lab.image import root_tarball; print(root_tarball())')
BASE="localhost/krios-kbase:$(basename "$TARBALL" .tar | sed 's/^bookworm-minbase-//')"
"${P[@]}" image exists "$BASE" || "${P[@]}" import -q "$TARBALL" "$BASE" >/dev/null

# pause, from the Kubernetes source (only that file is unpacked).
log "pause $PAUSE_TAG from build/pause/linux/pause.c"
mkdir -p "$W/src" "$W/pause"
( cd "$W/src" && apt-get source --download-only kubernetes >/dev/null 2>&1 ) \
  || die "apt-get source kubernetes failed (scripts/build-control-plane.sh adds the deb-src entry it needs)"
tar -xzf "$(ls "$W"/src/kubernetes_*.orig.tar.gz | head -1)" -C "$W/src" --wildcards '*/build/pause/linux/pause.c'
gcc -Os -static -DVERSION="v$PAUSE_TAG-krios" -o "$W/pause/pause" "$(ls "$W"/src/*/build/pause/linux/pause.c | head -1)"
printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' > "$W/pause/Containerfile"
"${P[@]}" "${BUILD[@]}" -t "$REPO/pause:$PAUSE_TAG" "$W/pause" >/dev/null

# The control plane: static binaries on scratch.
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  log "$c v$K8S_VERSION"
  mkdir -p "$W/$c" && cp "$BIN/$c" "$W/$c/"
  printf 'FROM scratch\nENV PATH=/usr/local/bin:/usr/bin:/bin\nCOPY %s /usr/local/bin/%s\nENTRYPOINT ["/usr/local/bin/%s"]\n' \
    "$c" "$c" "$c" > "$W/$c/Containerfile"
  "${P[@]}" "${BUILD[@]}" -t "$REPO/$c:v$K8S_VERSION" "$W/$c" >/dev/null
done

# etcd: Debian's binary and the libraries ldd names, on scratch.
log "etcd $ETCD_TAG (Debian etcd-server)"
mkdir -p "$W/etcd/root/usr/local/bin" "$W/etcd/root/tmp"
cp /usr/bin/etcd "$W/etcd/root/usr/local/bin/"
[[ -x /usr/bin/etcdctl ]] && cp /usr/bin/etcdctl "$W/etcd/root/usr/local/bin/"
for lib in $(ldd /usr/bin/etcd | grep -o '/[^ ]*'); do
  mkdir -p "$W/etcd/root$(dirname "$lib")" && cp -L "$lib" "$W/etcd/root$lib"
done
printf 'FROM scratch\nENV PATH=/usr/local/bin:/usr/bin:/bin\nCOPY root/ /\n' > "$W/etcd/Containerfile"
"${P[@]}" "${BUILD[@]}" -t "$REPO/etcd:$ETCD_TAG" "$W/etcd" >/dev/null

# kube-proxy: needs iptables (nft backend, like Debian 12 nodes), conntrack and ipset.
log "kube-proxy v$K8S_VERSION on Debian 12"
mkdir -p "$W/kube-proxy" && cp "$BIN/kube-proxy" "$W/kube-proxy/"
cat > "$W/kube-proxy/Containerfile" <<EOF
FROM $BASE
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
      iptables conntrack ipset >/dev/null \\
 && rm -rf /var/lib/apt/lists/* /var/log/* /var/cache/apt/* /var/cache/ldconfig/aux-cache \\
           /var/cache/debconf/*-old /var/lib/dpkg/*-old
COPY kube-proxy /usr/local/bin/kube-proxy
EOF
"${P[@]}" "${BUILD[@]}" -t "$REPO/kube-proxy:v$K8S_VERSION" "$W/kube-proxy" >/dev/null

# The app: anything that answers HTTP (the seed deployed nginx, which no registry here has).
log "krios-app $APP_TAG (python3 -m http.server 80 on Debian 12)"
mkdir -p "$W/app"
printf 'FROM %s\nRUN mkdir -p /srv && echo krios-app > /srv/index.html\nWORKDIR /srv\nEXPOSE 80\nCMD ["python3", "-m", "http.server", "80"]\n' \
  "$BASE" > "$W/app/Containerfile"
"${P[@]}" "${BUILD[@]}" -t "$REPO/krios-app:$APP_TAG" "$W/app" >/dev/null

# The Python base the Krios image builds on where no registry has python:3.11-slim:
# Debian 12's python3 in a venv at /opt/python (pip from the venv; PEP 668 keeps the
# system one closed). Only kept in podman's storage: role krios_images builds on it.
log "krios-python 3.11 (Debian 12 python3 + venv at /opt/python)"
mkdir -p "$W/python"
cat > "$W/python/Containerfile" <<EOF
FROM $BASE
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
      python3-venv >/dev/null \\
 && python3 -m venv /opt/python \\
 && rm -rf /var/lib/apt/lists/* /var/log/* /var/cache/apt/* /var/cache/ldconfig/aux-cache \\
           /var/cache/debconf/*-old /var/lib/dpkg/*-old
ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EOF
"${P[@]}" "${BUILD[@]}" -t "$PYTHON_BASE" "$W/python" >/dev/null

# Archives, written beside the old ones and swapped in whole.
mkdir -p "$OUT.part"
rm -f "$OUT.part"/*
for name in "${IMAGES[@]}"; do
  case $name in pause) tag=$PAUSE_TAG ;; etcd) tag=$ETCD_TAG ;; krios-app) tag=$APP_TAG ;; *) tag=v$K8S_VERSION ;; esac
  "${P[@]}" save -q --format docker-archive -o "$OUT.part/$name.tar" "$REPO/$name:$tag"
done
( cd "$OUT.part" && sha256sum ./*.tar | sed 's#  \./#  #' > SHA256SUMS )
echo "$RECIPE" > "$OUT.part/.complete"
rm -rf "$OUT"
mv "$OUT.part" "$OUT"
log "built in $(( $(date +%s) - start )) s: $OUT"
echo "$OUT"

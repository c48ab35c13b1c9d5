#!/usr/bin/env bash
# Debian packages the test suite and the local control plane need. Idempotent.
# The build tools (Go, rsync, make) and etcd-server are only needed while the
# control-plane binaries are neither cached nor given by KUBEBUILDER_ASSETS;
# build-control-plane.sh installs them itself when it builds.
set -euo pipefail
# debootstrap: the Debian 12 root the provisioning tests run roles in and the lab's node image;
# podman + runc (crun refuses this kernel's hybrid cgroup v1) + ssh: the lab's node containers.
pkgs=(iproute2 openssl debootstrap podman runc openssh-client)
bin="${KRIOS_CACHE_DIR:-$HOME/.cache/krios}/k8s-${KRIOS_K8S_VERSION:-1.20.2}/bin"
assets="${KUBEBUILDER_ASSETS:-}"
if [[ -n "$assets" && -x "$assets/etcd" && -x "$assets/kube-apiserver" ]]; then
  :
elif [[ -x "$bin/kube-apiserver" && -x "$bin/etcd" ]]; then
  :
else
  pkgs+=(etcd-server rsync golang-go make)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo
  echo "[deps] installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
fi

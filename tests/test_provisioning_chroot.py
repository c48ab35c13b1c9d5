"""The node-preparation roles against a real Debian 12 root (debootstrap), over a chroot connection.

What runs for real, twice (the second run must report ``changed=0``):

* ``playbooks/prepare.yml``: krios_os_prep (apt packages from Debian's mirror,
  swap commented out of /etc/fstab, /etc/modules-load.d, /etc/sysctl.d),
  krios_go (its /etc/profile.d file), krios_container_runtime (containerd, or
  containerd + docker.io, from Debian; config.toml checked with
  ``containerd config dump``; daemon.json; units enabled), krios_kubernetes_packages
  (/etc/default/kubelet with --node-ip).
* ``playbooks/reset.yml`` (krios_reset): leftovers removed, nothing left to do the second time.

What does not run here, and why:

* tasks tagged ``upstream`` (``--skip-tags upstream``): the Go tarball (go.dev),
  Docker's and Kubernetes' apt repositories (download.docker.com, pkgs.k8s.io) are
  not reachable from this machine; so the packages come from Debian
  (``krios_container_packages_source=distro``) and kubeadm/kubelet are not installed.
* changes to the running system: the target is a chroot, so ``krios_runtime_changes``
  is false and swapoff, modprobe, live sysctl values and service starts/restarts are
  skipped (they would act on this machine's kernel).

The debootstrap root is cached as a tar in ``~/.cache/krios/debootstrap`` (about a
minute to create on a fresh machine, from deb.debian.org).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from provisioning_helpers import run_playbook, write_inventory

pytestmark = pytest.mark.slow

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
INCLUDE = ("python3", "python3-apt", "systemd")
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "krios" / "debootstrap"


def _root_tarball() -> Path:
    """A tar of a minimal Debian 12 root; created with debootstrap once, then reused."""
    key = hashlib.sha256(f"{SUITE} minbase {','.join(INCLUDE)} {MIRROR}".encode()).hexdigest()[:10]
    tarball = CACHE / f"{SUITE}-minbase-{key}.tar"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.exists():
            return tarball
        if shutil.which("debootstrap") is None:
            subprocess.run(["apt-get", "install", "-y", "-qq", "debootstrap"], check=True,
                           stdout=subprocess.DEVNULL, timeout=600)
        build = CACHE / f"build-{key}"
        shutil.rmtree(build, ignore_errors=True)
        subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(INCLUDE)}", SUITE, str(build), MIRROR],
            check=True, stdout=subprocess.DEVNULL, timeout=1800,
        )
        part = tarball.with_suffix(".tar.part")
        subprocess.run(["tar", "--numeric-owner", "-C", str(build), "-cpf", str(part), "."], check=True)
        part.rename(tarball)
        shutil.rmtree(build, ignore_errors=True)
        return tarball


@pytest.fixture
def debian_root(tmp_path: Path) -> Path:
    """A fresh Debian 12 root for one test (unpacked from the cached tar)."""
    if os.geteuid() != 0:
        pytest.skip("chroot needs root")
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run(["tar", "--numeric-owner", "-C", str(root), "-xpf", str(_root_tarball())], check=True)
    # What image builders do in a chroot: packages must not start services.
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    # A swap line, which krios_os_prep must comment out.
    with open(root / "etc/fstab", "a") as fstab:
        fstab.write("/swapfile none swap sw 0 0\n")
    return root


def _inventory(tmp_path: Path, root: Path, **hostvars: object) -> Path:
    host = {
        "ansible_host": str(root),
        "ansible_connection": "community.general.chroot",
        "ansible_python_interpreter": "/usr/bin/python3",
        "krios_node_ip": "10.10.1.1",
        "krios_node_index": 1,
        "krios_public_ip": "192.0.2.11",
        "krios_scenario": "sf_4workers",
        **hostvars,
    }
    return write_inventory(tmp_path / "chroot.yml", {
        "all": {"children": {"k8s_cluster": {"children": {"krios_control": {"hosts": {"node1": host}}}}}}
    })


def _chroot(root: Path, *cmd: str) -> str:
    return subprocess.run(["chroot", str(root), *cmd], check=True, capture_output=True, text=True).stdout


@pytest.mark.parametrize("runtime", ["containerd", "docker"])
def test_prepare_roles_in_debian12_chroot_are_idempotent(tmp_path: Path, debian_root: Path, runtime: str) -> None:
    inv = _inventory(tmp_path, debian_root)
    extra = {"krios_container_packages_source": "distro", "krios_container_runtime": runtime}
    first = run_playbook("prepare.yml", [inv], extra, options=["--skip-tags", "upstream"])
    assert first.returncode == 0, first.explain()
    assert first.recap["node1"]["changed"] > 0, first.explain()

    second = run_playbook("prepare.yml", [inv], extra, options=["--skip-tags", "upstream"])
    assert second.returncode == 0, second.explain()
    assert second.recap["node1"]["changed"] == 0, second.explain()

    etc = debian_root / "etc"
    # krios_os_prep
    assert "# /swapfile none swap sw 0 0" in (etc / "fstab").read_text()
    assert (etc / "modules-load.d/krios.conf").read_text().split("\n")[-3:] == ["overlay", "br_netfilter", ""]
    sysctl = (etc / "sysctl.d/99-krios.conf").read_text()
    for key in ("net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables", "net.ipv4.ip_forward"):
        assert f"{key}=1" in sysctl
    installed = _chroot(debian_root, "dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n",
                        "conntrack", "socat", "ipset", "ethtool", "python3-debian", "containerd")
    assert sorted(installed.split("\n")[:-1]) == sorted(
        f"{p} installed" for p in ("conntrack", "socat", "ipset", "ethtool", "python3-debian", "containerd"))
    # krios_go (the tarball itself is 'upstream')
    assert "/usr/local/go/bin" in (etc / "profile.d/krios-go.sh").read_text()
    # krios_container_runtime: containerd reads the file and merges it over its defaults
    dump = _chroot(debian_root, "containerd", "--config", "/etc/containerd/config.toml", "config", "dump")
    assert "SystemdCgroup = true" in dump
    assert 'sandbox_image = "registry.k8s.io/pause:3.10"' in dump
    assert "disabled_plugins = []" in dump
    assert (etc / "systemd/system/multi-user.target.wants/containerd.service").is_symlink()
    assert "runtime-endpoint: unix:///run/containerd/containerd.sock" in (etc / "crictl.yaml").read_text()
    if runtime == "docker":
        daemon = json.loads((etc / "docker/daemon.json").read_text())
        assert daemon["exec-opts"] == ["native.cgroupdriver=systemd"]
        assert "docker.io installed" in _chroot(debian_root, "dpkg-query", "-W", "-f",
                                                "${Package} ${db:Status-Status}\n", "docker.io")
    # krios_kubernetes_packages: the kubelet is told the inventory's node IP
    assert 'KUBELET_EXTRA_ARGS="--node-ip=10.10.1.1"' in (etc / "default/kubelet").read_text()
    # the restart handlers run (flush_handlers) BEFORE the runtime is started
    out = first.output
    assert out.index("RUNNING HANDLER [krios_container_runtime : Restart containerd]") < out.index(
        "TASK [krios_container_runtime : Start the container runtime now]"), first.explain()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_local_artifacts_in_debian12_chroot(tmp_path: Path, debian_root: Path) -> None:
    """krios_artifact_source local: binaries and image archives from the controller, checked by SHA256.

    The "binaries" and "archives" are small files (the copy and the checks are
    what is tested, not kubelet itself); containerd does not run in a chroot, so
    the import is skipped there (krios_runtime_changes false).
    """
    bins = tmp_path / "bin"
    bins.mkdir()
    for name in ("kubelet", "kubeadm", "kubectl", "kube-proxy"):
        (bins / name).write_text(f"#!/bin/sh\necho {name}\n")
    images = tmp_path / "images"
    images.mkdir()
    for name in ("pause.tar", "kube-proxy.tar"):
        (images / name).write_bytes(name.encode() * 1000)
    sums = "".join(f"{_sha256(images / n)}  {n}\n" for n in ("pause.tar", "kube-proxy.tar"))
    (images / "SHA256SUMS").write_text(sums)
    inv = _inventory(tmp_path, debian_root)
    extra = {"krios_artifact_source": "local", "krios_kubernetes_version": "1.20", "krios_cni": "bridge",
             "krios_cgroup_driver": "cgroupfs", "krios_kubeadm_image_repository": "registry.krios.local",
             "krios_container_runtime_restrict_oom_score_adj": True,
             "krios_artifact_bin_dir": str(bins), "krios_artifact_dir": str(images)}
    # No --skip-tags upstream: source local downloads nothing upstream.
    first = run_playbook("prepare.yml", [inv], extra)
    assert first.returncode == 0, first.explain()
    second = run_playbook("prepare.yml", [inv], extra)
    assert second.returncode == 0, second.explain()
    assert second.recap["node1"]["changed"] == 0, second.explain()

    for name in ("kubelet", "kubeadm", "kubectl", "kube-proxy"):
        copy = debian_root / "usr/local/bin" / name
        assert _sha256(copy) == _sha256(bins / name) and copy.stat().st_mode & 0o111
    for name in ("pause.tar", "kube-proxy.tar"):
        assert _sha256(debian_root / "var/lib/krios/artifacts/images" / name) == _sha256(images / name)
    etc = debian_root / "etc"
    assert "ExecStart=/usr/local/bin/kubelet" in (etc / "systemd/system/kubelet.service").read_text()
    dropin = (etc / "systemd/system/kubelet.service.d/10-kubeadm.conf").read_text()
    assert "EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env" in dropin
    assert (etc / "systemd/system/multi-user.target.wants/kubelet.service").is_symlink()
    assert "ctr -a" in (debian_root / "usr/local/bin/crictl").read_text()
    assert not (debian_root / "usr/local/go").exists()  # go.dev is upstream: not with source local
    dump = _chroot(debian_root, "containerd", "--config", "/etc/containerd/config.toml", "config", "dump")
    assert "SystemdCgroup = false" in dump and "restrict_oom_score_adj = true" in dump
    assert 'sandbox_image = "registry.krios.local/pause:3.2"' in dump
    assert 'bin_dir = "/usr/lib/cni"' in dump

    # A corrupted archive on the node fails with one line naming it
    (debian_root / "var/lib/krios/artifacts/images/pause.tar").write_bytes(b"tampered")
    (images / "pause.tar").write_bytes(b"other")  # and the controller's copy no longer matches SHA256SUMS
    bad = run_playbook("prepare.yml", [inv], extra)
    assert bad.returncode != 0
    assert "artifacts: node1: pause.tar: SHA256 " in bad.output, bad.explain()
    assert f"is not the {_sha256(images / 'kube-proxy.tar')}" not in bad.output


def test_reset_role_in_debian12_chroot_is_idempotent(tmp_path: Path, debian_root: Path) -> None:
    # The SSH user's home as on CloudLab: /users/<name>, not /home/<name>.
    _chroot(debian_root, "useradd", "--create-home", "--home-dir", "/users/alice", "alice")
    leftovers = [debian_root / "etc/cni/net.d/10-calico.conflist",
                 debian_root / "etc/kubernetes/krios/kubeadm-config.yaml",
                 debian_root / "root/.kube/config",
                 debian_root / "users/alice/.kube/config"]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("left over\n")
    inv = _inventory(tmp_path, debian_root, ansible_user="alice")
    first = run_playbook("reset.yml", [inv], {"reset_confirmed": True})
    assert first.returncode == 0, first.explain()
    assert first.recap["node1"]["changed"] > 0
    assert not any(p.exists() for p in leftovers)
    assert (debian_root / "users/alice/.kube").is_dir()  # only the kubeconfig goes, the user's folder stays
    second = run_playbook("reset.yml", [inv], {"reset_confirmed": True})
    assert second.returncode == 0, second.explain()
    assert second.recap["node1"]["changed"] == 0, second.explain()

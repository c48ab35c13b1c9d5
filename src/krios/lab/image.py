"""The node image: a Debian 12 root from debootstrap, imported into podman.

The root tarball is cached like ``tests/test_provisioning_chroot.py`` caches its
own (``~/.cache/krios/debootstrap/<suite>-minbase-<key>.tar``, the key a hash of
suite, variant, package list and mirror), with the packages a bare CloudLab
Debian host has that Ansible needs: systemd, dbus, sshd, python3, sudo, iproute2.

``podman import`` turns the tarball into an image; a small Containerfile layer
then does what a host image needs and a tarball cannot say (no ``/.dockerenv``
tricks, no host keys baked in: they are made on first boot).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from krios.errors import KriosError

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
INCLUDE = (
    "python3",
    "python3-apt",
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "iproute2",
    "ca-certificates",
    "sudo",
    "procps",
    "kmod",
    "iputils-ping",
    "curl",
)
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "krios" / "debootstrap"

#: Added on top of the imported root (``podman build``).
CONTAINERFILE = """\
FROM {base}
RUN set -e; \\
    rm -f /etc/ssh/ssh_host_*; \\
    u=/etc/systemd/system/ssh-keygen.service; \\
    printf '[Unit]\\nDescription=SSH host keys\\nBefore=ssh.service\\n' > $u; \\
    printf 'ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\\n' >> $u; \\
    printf '[Service]\\nType=oneshot\\nExecStart=/usr/bin/ssh-keygen -A\\n' >> $u; \\
    printf '[Install]\\nWantedBy=multi-user.target\\n' >> $u; \\
    systemctl enable ssh-keygen.service ssh.service; \\
    systemctl mask getty@tty1.service serial-getty@console.service console-getty.service \\
        systemd-resolved.service systemd-networkd-wait-online.service \\
        systemd-timesyncd.service 2>/dev/null || true; \\
    rm -f /etc/machine-id /var/lib/dbus/machine-id; touch /etc/machine-id; \\
    mkdir -p /root/.ssh; chmod 700 /root/.ssh; \\
    printf 'PermitRootLogin prohibit-password\\nPasswordAuthentication no\\nUseDNS no\\n' \\
        > /etc/ssh/sshd_config.d/krios-lab.conf
COPY krios-lab-init /usr/local/sbin/krios-lab-init
STOPSIGNAL SIGRTMIN+3
CMD ["/usr/local/sbin/krios-lab-init"]
"""

#: PID 1 of a node, before systemd. On cgroup v1 podman's systemd mode leaves the HOST's whole name=systemd
#: hierarchy at /sys/fs/cgroup/systemd, so every node's systemd would create (and stop, and kill) the same
#: /system.slice/<unit> cgroups: `systemctl stop kubelet` on one node killed the kubelet of another. Bind
#: the container's own subtree (the cgroup that holds PID 1) over it first, as kind's fix_cgroup does.
ENTRYPOINT_SCRIPT = """\
#!/bin/sh
m=/sys/fs/cgroup/systemd
if [ -f "$m/cgroup.procs" ] && ! grep -qx 1 "$m/cgroup.procs"; then
  own=$(grep -lx 1 $(find "$m" -mindepth 2 -name cgroup.procs 2>/dev/null) 2>/dev/null | head -n 1)
  if [ -n "$own" ]; then
    mount --bind "$(dirname "$own")" "$m" || echo "krios-lab-init: cannot bind $own" >&2
  fi
fi
exec /usr/lib/systemd/systemd "$@"
"""


class LabImageError(KriosError):
    """The node image could not be built."""

    exit_code = 3


def tarball_key(include: tuple[str, ...] = INCLUDE, suite: str = SUITE, mirror: str = MIRROR) -> str:
    """The cache key, with the scheme of ``tests/test_provisioning_chroot.py``."""
    return hashlib.sha256(f"{suite} minbase {','.join(include)} {mirror}".encode()).hexdigest()[:10]


def root_tarball(include: tuple[str, ...] = INCLUDE, cache: Path = CACHE) -> Path:
    """A tar of a minimal Debian 12 root; created with debootstrap once, then reused."""
    key = tarball_key(include)
    tarball = cache / f"{SUITE}-minbase-{key}.tar"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.exists():
            return tarball
        if shutil.which("debootstrap") is None:
            _run(["apt-get", "install", "-y", "-qq", "debootstrap"], timeout=600)
        build = cache / f"build-{key}"
        shutil.rmtree(build, ignore_errors=True)
        try:
            _run(
                ["debootstrap", "--variant=minbase", f"--include={','.join(include)}", SUITE, str(build), MIRROR],
                timeout=1800,
            )
            part = tarball.with_suffix(".tar.part")
            _run(["tar", "--numeric-owner", "-C", str(build), "-cpf", str(part), "."], timeout=600)
            part.rename(tarball)
        finally:
            shutil.rmtree(build, ignore_errors=True)
        return tarball


def image_tag(include: tuple[str, ...] = INCLUDE) -> str:
    """The node image's name: content-addressed by the tarball key and the Containerfile."""
    layer = hashlib.sha256((CONTAINERFILE + ENTRYPOINT_SCRIPT).encode()).hexdigest()[:8]
    return f"localhost/krios-lab-node:{tarball_key(include)}-{layer}"


def image_exists(tag: str) -> bool:
    return subprocess.run(["podman", "image", "exists", tag], check=False).returncode == 0


def ensure_image(tag: str | None = None) -> tuple[str, bool]:
    """Build the node image if absent; return ``(tag, built)``."""
    tag = tag or image_tag()
    if image_exists(tag):
        return tag, False
    tarball = root_tarball()
    base = f"localhost/krios-lab-base:{tarball_key()}"  # the imported tarball, shared by every layer version
    if not image_exists(base):
        _run(["podman", "import", str(tarball), base], timeout=900)
    with tempfile.TemporaryDirectory(prefix="krios-lab-image-") as ctx:
        (Path(ctx) / "Containerfile").write_text(CONTAINERFILE.format(base=base))
        script = Path(ctx) / "krios-lab-init"
        script.write_text(ENTRYPOINT_SCRIPT)
        script.chmod(0o755)
        _run(["podman", "--runtime", "runc", "build", "--network", "none", "-t", tag, ctx], timeout=900)
    return tag, True


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise LabImageError(f"{cmd[0]} failed: {err}", source=" ".join(cmd[:3])) from err
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise LabImageError(f"exited {proc.returncode}: {' | '.join(tail)}", source=" ".join(cmd[:3]))
    return proc

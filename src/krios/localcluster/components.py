"""Command lines, credentials and health checks of the control-plane components.

The flags follow ``CONTROL-PLANE.md`` (the verified recipe): everything binds
to 127.0.0.1 on ports chosen free at start, the apiserver authenticates one
static admin token and authorizes with RBAC, and service-account tokens are
signed with a throwaway RSA key.

kube-controller-manager runs every default controller *except*
``nodelifecycle`` (it would mark the virtual nodes ``Unknown``, taint them and
evict their pods whenever a lease renewal is late, e.g. across an apiserver
restart), ``nodeipam``, ``cloud-node-lifecycle``, ``route`` and ``service``
(no pod network, no cloud). Deployments, ReplicaSets, Jobs, namespaces,
garbage collection and service accounts work as in a real cluster.
"""

from __future__ import annotations

import json
import socket
import ssl
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import yaml

from krios.localcluster.state import write_private

#: Components that ``up`` may start besides etcd, kube-apiserver and the virtual kubelet.
OPTIONAL = ("kube-scheduler", "kube-controller-manager")
#: Every component, in start order.
ALL = ("etcd", "kube-apiserver", *OPTIONAL, "virtual-kubelet")
#: Controllers kube-controller-manager must not run against virtual nodes.
DISABLED_CONTROLLERS = ("nodelifecycle", "nodeipam", "cloud-node-lifecycle", "route", "service")
SERVICE_CIDR = "10.96.0.0/16"
CONTEXT = "krios-local"


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on 127.0.0.1 right now."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def write_sa_key(path: Path) -> None:
    """A throwaway 2048-bit RSA private key (PEM, mode 0600) for service-account tokens."""
    # Imported here: the daemons' image has no cryptography (only the local cluster needs it).
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    write_private(path, pem.decode())


def write_token_file(path: Path, token: str) -> None:
    """The apiserver's static token file: one admin in ``system:masters``."""
    write_private(path, f"{token},admin,admin,system:masters\n")


def write_kubeconfig(path: Path, server: str, token: str) -> None:
    """An admin kubeconfig (mode 0600): bearer token, serving certificate not verified."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": "admin"}}],
        "current-context": CONTEXT,
        "preferences": {},
    }
    write_private(path, yaml.safe_dump(config, sort_keys=False))


def etcd_cmd(binary: Path, data_dir: Path, port: int, peer_port: int) -> list[str]:
    url = f"http://127.0.0.1:{port}"
    return [
        str(binary),
        "--name=krios",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={url}",
        f"--advertise-client-urls={url}",
        f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
        f"--initial-cluster=krios=http://127.0.0.1:{peer_port}",
        "--log-level=warn",
    ]


def apiserver_cmd(binary: Path, state_dir: Path, port: int, etcd_port: int) -> list[str]:
    return [
        str(binary),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        f"--cert-dir={state_dir / 'certs'}",
        f"--secure-port={port}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        # Endpoints may not name a loopback address: leave the `kubernetes` service without them.
        "--endpoint-reconciler-type=none",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-account-key-file={state_dir / 'sa.key'}",
        f"--service-account-signing-key-file={state_dir / 'sa.key'}",
        f"--token-auth-file={state_dir / 'tokens.csv'}",
        "--authorization-mode=RBAC",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allow-privileged=true",
        "--disable-admission-plugins=ServiceAccount",
        "--profiling=false",
        "--v=1",
    ]


def _client_component(binary: Path, kubeconfig: Path, port: int) -> list[str]:
    """Flags kube-scheduler and kube-controller-manager share: one instance, loopback, HTTPS only."""
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        "--port=0",
        "--profiling=false",
        "--v=1",
    ]


def scheduler_cmd(binary: Path, kubeconfig: Path, port: int, *, qps: float | None = None,
                  burst: int | None = None) -> list[str]:
    """kube-scheduler's command line, the one place its flags are written: one instance (no leader
    election), loopback, HTTPS health on ``port`` (0: none); ``qps``/``burst`` its client rate limit."""
    rate = ([f"--kube-api-qps={qps:g}"] if qps is not None else []) + (
        [f"--kube-api-burst={burst}"] if burst is not None else [])
    return [*_client_component(binary, kubeconfig, port), *rate]


def kube_scheduler(kubeconfig: Path, port: int = 0, *, qps: float | None = None, burst: int | None = None,
                   bin_dir: Path | None = None) -> list[str]:
    """:func:`scheduler_cmd` with the cached kube-scheduler binary (never builds; ClusterError if absent)."""
    from krios.localcluster import binaries

    folder = bin_dir if bin_dir is not None else binaries.find_bin_dir(build=False)
    return scheduler_cmd(binaries.binary(folder, "kube-scheduler"), kubeconfig, port, qps=qps, burst=burst)


def controller_manager_cmd(binary: Path, state_dir: Path, kubeconfig: Path, port: int) -> list[str]:
    controllers = ",".join(["*", *(f"-{c}" for c in DISABLED_CONTROLLERS)])
    return [
        *_client_component(binary, kubeconfig, port),
        f"--controllers={controllers}",
        f"--service-account-private-key-file={state_dir / 'sa.key'}",
        f"--root-ca-file={state_dir / 'certs' / 'apiserver.crt'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
    ]


def health_url(name: str, port: int | None) -> str | None:
    """The endpoint that says whether component ``name`` is healthy."""
    if port is None:
        return None
    return {
        "etcd": f"http://127.0.0.1:{port}/health",
        "kube-apiserver": f"https://127.0.0.1:{port}/readyz",
        "kube-scheduler": f"https://127.0.0.1:{port}/healthz",
        "kube-controller-manager": f"https://127.0.0.1:{port}/healthz",
    }.get(name)


_TLS = ssl.create_default_context()
_TLS.check_hostname = False
_TLS.verify_mode = ssl.CERT_NONE


def probe(url: str, token: str | None = None, timeout_s: float = 2.0) -> tuple[bool, str]:
    """GET ``url``; (healthy, short detail). etcd says ``{"health":"true"}``, the others ``ok``."""
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s, context=_TLS) as resp:
            body = resp.read(4096).decode(errors="replace").strip()
    except urllib.error.HTTPError as err:
        return False, f"HTTP {err.code}"
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        return False, str(reason)
    if url.endswith("/health"):
        try:
            ok = json.loads(body).get("health") == "true"
        except (ValueError, AttributeError):
            ok = False
        return ok, "healthy" if ok else body[:80]
    return body == "ok", body[:80]

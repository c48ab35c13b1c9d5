"""One way to get a Kubernetes API client, for every part of krios.

:func:`load_client` looks, in order, at an explicit kubeconfig path,
``$KUBECONFIG``, the local cluster's state folder (``krios cluster up``), and
the in-cluster service account of a pod: the one place krios reads
kubeconfigs. :func:`client_with_pool` gives a component a client with its own
connection pool. Requests go through :class:`krios.kube.client.RawClient`.
"""

from __future__ import annotations

import copy
import math
import os
import time
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import client, config

from krios.config.paths import KUBECONFIG, default_state_dir
from krios.errors import ClusterError

#: Re-read an expiring API token (exec plugins, OIDC) at most this often (s).
API_KEY_REFRESH_S = 10.0


def load_client(kubeconfig: str | os.PathLike[str] | None = None) -> client.ApiClient:
    """A ``kubernetes.client.ApiClient`` for the first configuration found.

    1. ``kubeconfig`` when given (it must exist);
    2. ``$KUBECONFIG`` (``:``-separated lists are merged as kubectl does);
    3. ``<state dir>/kubeconfig`` of the local cluster (``$KRIOS_STATE_DIR`` or
       ``~/.local/state/krios/cluster``);
    4. the in-cluster configuration (service account token of a pod).

    Raises :class:`krios.errors.ClusterError` when none applies or the chosen
    one cannot be read.
    """
    cfg = client.Configuration()
    if kubeconfig is not None:
        path = Path(kubeconfig).expanduser()
        if not path.is_file():
            raise ClusterError("kubeconfig not found", source="kubeconfig", field=str(path))
        _from_file(str(path), cfg, "kubeconfig")
    elif os.environ.get("KUBECONFIG"):
        _from_file(os.environ["KUBECONFIG"], cfg, "KUBECONFIG")
    elif (local := default_state_dir() / KUBECONFIG).is_file():
        _from_file(str(local), cfg, "local cluster")
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            config.load_incluster_config(client_configuration=cfg)
        except config.ConfigException as err:
            raise ClusterError(str(err), source="in-cluster config") from err
    else:
        raise ClusterError(
            "no Kubernetes API configured: pass a kubeconfig, set KUBECONFIG, "
            f"start a local cluster (`krios cluster up`, state in {default_state_dir()}) "
            "or run inside a pod",
            source="kubeconfig",
        )
    if not cfg.verify_ssl:
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    return client.ApiClient(cfg)


def _from_file(path: str, cfg: client.Configuration, source: str) -> None:
    try:
        config.load_kube_config(config_file=path, client_configuration=cfg)
    except (config.ConfigException, OSError, ValueError, yaml.YAMLError) as err:
        reason = " ".join(str(err).split())  # one line, even for a YAML parser error
        raise ClusterError(f"unusable kubeconfig: {reason}", source=source, field=path) from err


def client_with_pool(api: client.ApiClient, maxsize: int) -> client.ApiClient:
    """A new ``ApiClient`` with ``api``'s configuration and its own pool of ``maxsize`` connections.

    Watches hold a connection for minutes: a component's requests must never
    queue behind them, nor open throw-away TLS connections because the pool
    is full. One quick retry covers a pooled connection the server closed;
    longer outages are the caller's business (backoff), not urllib3's.
    """
    cfg = copy.deepcopy(api.configuration)
    cfg.connection_pool_maxsize = maxsize
    cfg.retries = urllib3.Retry(total=1, connect=1, read=0, status=0, redirect=0, other=0)
    hook = cfg.refresh_api_key_hook
    if hook is not None:
        # The kubeconfig loader re-applies the whole configuration (and scans the
        # environment for proxies) before *every* request: a quarter of a request's
        # CPU. Tokens that expire are refreshed by it all the same, at most every 10 s.
        state = {"hook": hook, "last": -math.inf}

        def refresh(c: Any) -> None:
            now = time.monotonic()
            if now - state["last"] >= API_KEY_REFRESH_S:
                state["last"] = now
                state["hook"](c)
                # the loader installs a fresh hook of its own each time: keep ours in front
                if c.refresh_api_key_hook is not refresh:
                    state["hook"] = c.refresh_api_key_hook or state["hook"]
                    c.refresh_api_key_hook = refresh

        cfg.refresh_api_key_hook = refresh
    return client.ApiClient(cfg)

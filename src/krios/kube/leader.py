"""Lease-based leader election (``coordination.k8s.io/v1``), as client-go does it.

Two replicas of a daemon may run; only the holder of the Lease acts. The holder
renews the Lease every ``retry_period_s``; the others try to take it once it
has not been renewed for ``lease_duration_s`` (measured on *their* clock from
when they last saw it change, so clock skew between machines does not matter).
A leader that cannot renew for ``renew_deadline_s`` (< ``lease_duration_s``)
stops acting before anyone else can take over, and goes back to campaigning,
so an apiserver restart pauses the daemon instead of killing it. Updates use
the Lease's ``resourceVersion`` (optimistic concurrency), so two candidates can
never both win.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

from krios.kube.client import RawClient, ensure_namespace, lease_path, status_of
from krios.kube.objects import micro_time

log = logging.getLogger(__name__)


def default_identity(component: str) -> str:
    """``<component>-<hostname>-<pid>-<random>``: unique per process."""
    return f"{component}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class LeaderElector:
    """Campaign for the Lease ``namespace/name`` in a background thread.

    Parameters
    ----------
    client:
        JSON client (give it its own rate limit, as client-go does).
    namespace, name:
        The Lease.
    identity:
        This candidate's ``holderIdentity``.
    lease_duration_s, renew_deadline_s, retry_period_s:
        client-go's defaults (15, 10, 2 s).
    on_started, on_stopped:
        Called (in the elector thread) when this process gains / loses the lead.
    """

    def __init__(
        self,
        client: RawClient,
        namespace: str,
        name: str,
        identity: str,
        *,
        lease_duration_s: float = 15.0,
        renew_deadline_s: float = 10.0,
        retry_period_s: float = 2.0,
        on_started: Callable[[], None] | None = None,
        on_stopped: Callable[[], None] | None = None,
    ) -> None:
        if not retry_period_s < renew_deadline_s < lease_duration_s:
            raise ValueError("need retry_period_s < renew_deadline_s < lease_duration_s")
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration_s = lease_duration_s
        self.renew_deadline_s = renew_deadline_s
        self.retry_period_s = retry_period_s
        self.on_started = on_started
        self.on_stopped = on_stopped
        self._leading = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observed: tuple[Any, Any] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0  # monotonic time it was seen to change
        self._last_renew = 0.0  # monotonic time of our last successful renew
        self._rng = random.Random()

    @property
    def path(self) -> str:
        return lease_path(self.namespace, self.name)

    def is_leader(self) -> bool:
        return self._leading.is_set()

    def wait_leading(self, timeout: float | None = None) -> bool:
        return self._leading.wait(timeout)

    def start(self) -> LeaderElector:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"leader-{self.name}", daemon=True)
            self._thread.start()
        return self

    def stop(self, release: bool = True) -> None:
        """Stop campaigning; if leading, give the Lease up so a standby takes over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.retry_period_s + 10)
        if self._leading.is_set():
            self._set_leading(False)
            if release:
                self._release()

    # -- internals --------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            ok = self._try_acquire_or_renew()
            now = time.monotonic()
            if ok:
                self._last_renew = now
                if not self._leading.is_set():
                    log.info("%s: %s became leader", self.name, self.identity)
                    self._set_leading(True)
            elif self._leading.is_set() and now - self._last_renew >= self.renew_deadline_s:
                log.warning("%s: could not renew the lease for %.0fs; stepping down", self.name,
                            now - self._last_renew)
                self._set_leading(False)
            period = self.retry_period_s if self._leading.is_set() else \
                self.retry_period_s * (1.0 + 0.2 * self._rng.random())
            self._stop.wait(period)

    def _set_leading(self, leading: bool) -> None:
        callback = self.on_started if leading else self.on_stopped
        if leading:
            self._leading.set()
        else:
            self._leading.clear()
        if callback is not None:
            try:
                callback()
            except Exception:
                log.exception("%s: leadership callback failed", self.name)

    def _spec(self, old: dict[str, Any] | None) -> dict[str, Any]:
        now = micro_time()
        old = old or {}
        mine = old.get("holderIdentity") == self.identity
        transitions = int(old.get("leaseTransitions") or 0)
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.lease_duration_s)),
            "acquireTime": old.get("acquireTime") if mine and old.get("acquireTime") else now,
            "renewTime": now,
            "leaseTransitions": transitions if mine or not old else transitions + 1,
        }

    def _try_acquire_or_renew(self) -> bool:
        try:
            lease = self.client.get(self.path, timeout=(2, self.retry_period_s * 2))
        except ApiException as exc:
            if exc.status != 404:
                log.debug("%s: get lease: %s", self.name, exc.status)
                return False
            return self._create()
        except Exception as exc:  # apiserver down
            log.debug("%s: get lease: %s", self.name, exc)
            return False
        spec = lease.get("spec") or {}
        record = (spec.get("holderIdentity"), spec.get("renewTime"))
        mono = time.monotonic()
        if record != self._observed:
            self._observed, self._observed_at = record, mono
        holder = spec.get("holderIdentity")
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration_s)
        if holder and holder != self.identity and mono < self._observed_at + duration:
            return False  # someone else holds a live lease
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "resourceVersion": lease["metadata"]["resourceVersion"],
            },
            "spec": self._spec(spec),
        }
        try:
            self.client.put(self.path, body, timeout=(2, self.retry_period_s * 2))
        except Exception as exc:  # 409: someone else won; or apiserver down
            log.debug("%s: update lease: %s", self.name, status_of(exc) or exc)
            return False
        self._observed = (self.identity, body["spec"]["renewTime"])
        self._observed_at = mono
        return True

    def _create(self, retry: bool = True) -> bool:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": self._spec(None),
        }
        try:
            self.client.post(lease_path(self.namespace), body, timeout=(2, self.retry_period_s * 2))
        except ApiException as exc:
            if exc.status == 404 and retry:  # the namespace itself is missing: try to make it
                self._ensure_namespace()
                return self._create(retry=False)
            log.debug("%s: create lease: %s", self.name, exc.status)
            return False
        except Exception as exc:
            log.debug("%s: create lease: %s", self.name, exc)
            return False
        self._observed = (self.identity, body["spec"]["renewTime"])
        self._observed_at = time.monotonic()
        return True

    def _ensure_namespace(self) -> None:
        try:
            ensure_namespace(self.client, self.namespace, timeout=(2, 5))
        except Exception as exc:  # 403 not allowed, apiserver down: the campaign just retries
            log.debug("create namespace %s: %s", self.namespace, status_of(exc) or exc)

    def _release(self) -> None:
        try:
            lease = self.client.get(self.path, timeout=(2, 5))
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            spec = {**spec, "holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": micro_time()}
            lease["spec"] = spec
            self.client.put(self.path, lease, timeout=(2, 5))
            log.info("%s: released the lease", self.name)
        except Exception as exc:
            log.debug("%s: release lease: %s", self.name, status_of(exc) or exc)

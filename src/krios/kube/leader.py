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

Lease timing follows the emulated clock (:func:`lease_timing`): a controller
must be replaced well within the handover lookahead, which is *emulated*
seconds, so at clock rate ``r`` the lease is ``LEASE_FRACTION`` of the
lookahead in wall seconds (``lookahead_s / r``), at least ``LEASE_FLOOR_S`` and
at most client-go's 15 s, in whole seconds (the Lease stores whole seconds);
renew deadline 2/3 of it (client-go's ratio) and retry period 1/10 (client-go
has 2/15). A standby looks at the Lease again exactly when the holder's lease
runs out (as it saw it), so it takes over at most ``lease + 1.2 retry`` after
the holder's last renewal.

A killed leader never releases its Lease. Each holder therefore writes the
annotation ``krios.io/holder-process`` (``<host>/<pid namespace>/<pid>/<start
ticks>``); a candidate on the same host and in the same PID namespace that
finds that process gone (a crash, ``kill -9``) takes the Lease at once instead
of waiting for it to expire. Elsewhere (another node, another container) it
waits for the lease duration, which the rule above keeps short.
"""

from __future__ import annotations

import logging
import math
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

from krios.config import defaults as D
from krios.kube.client import RawClient, ensure_namespace, lease_path, status_of
from krios.kube.names import ANNOTATION_PREFIX
from krios.kube.objects import micro_time

log = logging.getLogger(__name__)

#: Lease duration as a fraction of the handover lookahead in wall seconds (:func:`lease_timing`).
LEASE_FRACTION = 0.25
#: Shortest lease :func:`lease_timing` gives (wall s): shorter ones step a loaded leader down needlessly.
LEASE_FLOOR_S = 2.0
#: Annotation naming the holder's process (``<host>/<pid namespace>/<pid>/<start ticks>``).
HOLDER_ANNOTATION = f"{ANNOTATION_PREFIX}holder-process"


def lease_timing(lookahead_s: float, clock_rate: float) -> tuple[float, float, float]:
    """Lease duration, renew deadline and retry period (wall s) for a lookahead and a clock rate.

    ``lookahead_s`` is the proactive handover lead in *emulated* seconds and
    ``clock_rate`` emulated seconds per wall second (0 or less: a paused clock,
    treated as real time). The lease is ``LEASE_FRACTION * lookahead_s /
    clock_rate`` rounded down to whole seconds, within ``[LEASE_FLOOR_S,
    LEASE_DURATION_S]`` (client-go's 15 s); renew deadline ``2/3`` and retry
    period ``1/10`` of it. The lease is thus at most a quarter of the
    wall-clock lookahead whenever that is at least ``LEASE_FLOOR_S /
    LEASE_FRACTION`` (8 s); below, the 2 s floor applies.

    >>> lease_timing(30, 10)   # 3 s of wall-clock lookahead: the floor
    (2.0, 1.3333333333333333, 0.2)
    >>> lease_timing(30, 1)[0]
    7.0
    """
    rate = clock_rate if clock_rate > 0 and math.isfinite(clock_rate) else 1.0
    lease = math.floor(LEASE_FRACTION * max(0.0, lookahead_s) / rate)
    lease = float(min(D.LEASE_DURATION_S, max(LEASE_FLOOR_S, lease)))
    return lease, lease * 2.0 / 3.0, lease / 10.0


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return ""


def _start_ticks(pid: int) -> str | None:
    """Field 22 of ``/proc/<pid>/stat`` (start time in clock ticks); ``None`` if there is no such process
    or it is a zombie (killed, not yet reaped by its parent)."""
    try:
        text = open(f"/proc/{pid}/stat").read()  # noqa: SIM115 - one short read
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 and fields[0] != "Z" else None


def holder_process() -> str:
    """This process as :data:`HOLDER_ANNOTATION` names it."""
    return f"{socket.gethostname()}/{_pid_namespace()}/{os.getpid()}/{_start_ticks(os.getpid()) or ''}"


def holder_is_dead(value: str | None) -> bool:
    """Whether the :data:`HOLDER_ANNOTATION` ``value`` names a process that is certainly gone.

    Only a process on this host, in this PID namespace, can be checked: there,
    no process with that pid and start time means it died. Anything else
    (another host, another container, no ``/proc``) is ``False``: not known.
    """
    if not value:
        return False
    host, _, rest = value.partition("/")
    pidns, _, rest = rest.partition("/")
    pid, _, ticks = rest.partition("/")
    if host != socket.gethostname() or not pidns or pidns != _pid_namespace() or not pid.isdigit() or not ticks:
        return False
    return _start_ticks(int(pid)) != ticks


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
        client-go's defaults (15, 10, 2 s); :meth:`set_timing` changes them
        (the daemons follow the emulated clock's rate, :func:`lease_timing`).
    on_started, on_stopped:
        Called (in the elector thread) when this process gains / loses the lead.
    take_over_dead:
        Take the Lease at once from a holder whose process is gone from this
        host (:func:`holder_is_dead`); without it, always wait for the expiry,
        as a candidate on another machine must.
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
        take_over_dead: bool = True,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.set_timing(lease_duration_s, renew_deadline_s, retry_period_s)
        self._process = holder_process()
        self.take_over_dead = take_over_dead
        self.on_started = on_started
        self.on_stopped = on_stopped
        self._leading = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observed: tuple[Any, Any] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0  # monotonic time it was seen to change
        self._last_renew = 0.0  # monotonic time of our last successful renew
        self._expires_at = 0.0  # monotonic time another holder's lease runs out, as seen here
        self._rng = random.Random()

    @property
    def path(self) -> str:
        return lease_path(self.namespace, self.name)

    def set_timing(self, lease_duration_s: float, renew_deadline_s: float, retry_period_s: float) -> None:
        """Use new timing (wall s) from the next renewal on; the Lease carries the duration to the others."""
        if not 0 < retry_period_s < renew_deadline_s < lease_duration_s:
            raise ValueError("need 0 < retry_period_s < renew_deadline_s < lease_duration_s")
        self.lease_duration_s = float(lease_duration_s)
        self.renew_deadline_s = float(renew_deadline_s)
        self.retry_period_s = float(retry_period_s)

    @property
    def timing(self) -> tuple[float, float, float]:
        """Lease duration, renew deadline, retry period (wall s) in use."""
        return self.lease_duration_s, self.renew_deadline_s, self.retry_period_s

    def is_leader(self) -> bool:
        """Leading, and renewed within the renew deadline: a leader frozen (SIGSTOP, a stalled
        machine) past it stops acting the moment it wakes, before its elector thread notices."""
        return self._leading.is_set() and time.monotonic() - self._last_renew < self.renew_deadline_s

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
    def _timeout(self) -> tuple[float, float]:
        """(connect, read) timeout of one Lease request (s): two retry periods, at least half the renew
        deadline (a short lease at a high clock rate must not time out on a merely busy apiserver)."""
        return 2.0, max(self.retry_period_s * 2.0, self.renew_deadline_s / 2.0)

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
            if not self._leading.is_set() and self._expires_at > now:
                # a standby looks again right when the holder's lease runs out, not up to a retry later
                period = min(period, self._expires_at - now + 0.005)
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
            lease = self.client.get(self.path, timeout=self._timeout())
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
        took_over = False
        self._expires_at = self._observed_at + duration if holder and holder != self.identity else 0.0
        if holder and holder != self.identity and mono < self._observed_at + duration:
            notes = lease["metadata"].get("annotations") or {}
            if not (self.take_over_dead and holder_is_dead(notes.get(HOLDER_ANNOTATION))):
                return False  # someone else holds a live lease
            took_over = True  # its holder was killed on this machine: no need to wait for the expiry
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "resourceVersion": lease["metadata"]["resourceVersion"],
                "annotations": {HOLDER_ANNOTATION: self._process},
            },
            "spec": self._spec(spec),
        }
        if took_over:
            log.warning("%s: holder %s is gone (process %s); taking the lease over", self.name, holder,
                        (lease["metadata"].get("annotations") or {}).get(HOLDER_ANNOTATION))
        try:
            self.client.put(self.path, body, timeout=self._timeout())
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
            "metadata": {"name": self.name, "namespace": self.namespace,
                         "annotations": {HOLDER_ANNOTATION: self._process}},
            "spec": self._spec(None),
        }
        try:
            self.client.post(lease_path(self.namespace), body, timeout=self._timeout())
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

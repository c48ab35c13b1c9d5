"""The emulated clock shared by the emulator, the scheduler and the controller.

Satellites move in *emulated* time, which the emulator may run faster than the
wall clock (``rate``) from a chosen start (``epoch_sim``). The emulator
publishes its clock in the ConfigMap ``krios-clock`` (namespace
``krios-system``, key ``clock.json``)::

    {"epoch_wall": <unix s>, "epoch_sim": <unix s>, "rate": <float>}

and every component computes ``now = epoch_sim + (time.time() - epoch_wall) * rate``.
Without the ConfigMap, components run on real time (rate 1).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger(__name__)

NAMESPACE = "krios-system"
NAME = "krios-clock"
KEY = "clock.json"


@dataclass(frozen=True)
class Clock:
    """Emulated time as a linear function of the wall clock (all unix seconds)."""

    epoch_wall: float
    epoch_sim: float
    rate: float = 1.0

    @classmethod
    def real(cls) -> Clock:
        """Real time: emulated now equals the wall clock."""
        return cls(epoch_wall=0.0, epoch_sim=0.0, rate=1.0)

    @classmethod
    def starting(cls, epoch_sim: float | None = None, rate: float = 1.0) -> Clock:
        """A clock whose emulated time is ``epoch_sim`` (default: now) at this instant."""
        wall = time.time()
        return cls(epoch_wall=wall, epoch_sim=wall if epoch_sim is None else float(epoch_sim), rate=rate)

    def now(self) -> float:
        """Emulated unix seconds now."""
        return self.sim_at(time.time())

    def sim_at(self, wall: float) -> float:
        """Emulated time at wall-clock instant ``wall``."""
        return self.epoch_sim + (wall - self.epoch_wall) * self.rate

    def wall_at(self, sim: float) -> float:
        """Wall-clock instant at which emulated time reaches ``sim``.

        A paused clock (``rate == 0``) never reaches any other instant: ``inf``.
        """
        if self.rate == 0:
            return self.epoch_wall if sim == self.epoch_sim else math.inf
        return self.epoch_wall + (sim - self.epoch_sim) / self.rate

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Clock:
        data = json.loads(text)
        return cls(float(data["epoch_wall"]), float(data["epoch_sim"]), float(data.get("rate", 1.0)))

    # --- ConfigMap transport -------------------------------------------------

    def configmap_body(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {"app.kubernetes.io/part-of": "krios"}},
            "data": {KEY: self.to_json()},
        }

    def publish(self, core_v1: Any) -> None:
        """Create or replace the ``krios-clock`` ConfigMap (namespace must exist)."""
        from kubernetes.client.exceptions import ApiException

        body = self.configmap_body()
        try:
            core_v1.replace_namespaced_config_map(NAME, NAMESPACE, body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            core_v1.create_namespaced_config_map(NAMESPACE, body)

    @classmethod
    def from_configmap(cls, core_v1: Any) -> Clock:
        """The published clock, or real time when there is none (or it is unreadable)."""
        from kubernetes.client.exceptions import ApiException

        try:
            cm = core_v1.read_namespaced_config_map(NAME, NAMESPACE)
        except ApiException as exc:
            if exc.status != 404:
                log.warning("cannot read %s/%s: %s; using real time", NAMESPACE, NAME, exc.reason)
            return cls.real()
        try:
            return cls.from_json((cm.data or {})[KEY])
        except (KeyError, ValueError, TypeError) as exc:
            log.warning("ConfigMap %s/%s key %s is invalid (%s); using real time", NAMESPACE, NAME, KEY, exc)
            return cls.real()


class ClusterClock:
    """A :class:`Clock` re-read from the cluster at most every ``refresh_s`` seconds.

    Daemons call :meth:`now`; a restarted emulator (new epoch or rate) is
    picked up within ``refresh_s``. API errors keep the last known clock.
    """

    def __init__(self, core_v1: Any, refresh_s: float = 2.0):
        self._core_v1 = core_v1
        self._refresh_s = refresh_s
        self._clock = Clock.real()
        self._read_at = -float("inf")

    @property
    def clock(self) -> Clock:
        wall = time.time()
        if wall - self._read_at >= self._refresh_s:
            try:
                self._clock = Clock.from_configmap(self._core_v1)
            except Exception as exc:  # API down: keep the last clock
                log.debug("clock refresh failed: %s", exc)
            self._read_at = wall
        return self._clock

    def now(self) -> float:
        return self.clock.now()

    def wall_at(self, sim: float) -> float:
        return self.clock.wall_at(sim)

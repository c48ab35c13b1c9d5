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

from krios.kube.names import CLOCK_CONFIGMAP, CLOCK_KEY, SYSTEM_NAMESPACE

log = logging.getLogger(__name__)

NAMESPACE = SYSTEM_NAMESPACE
NAME = CLOCK_CONFIGMAP
KEY = CLOCK_KEY


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
        from krios.kube.client import configmap_body

        return configmap_body(NAMESPACE, NAME, {KEY: self.to_json()})

    def publish(self, api: Any) -> None:
        """Create or replace the ``krios-clock`` ConfigMap (namespace must exist).

        ``api``: a :class:`krios.kube.client.RawClient` (or an ``ApiClient``).
        """
        from krios.kube.client import as_client, put_configmap

        put_configmap(as_client(api), NAMESPACE, NAME, {KEY: self.to_json()})

    @classmethod
    def from_configmap(cls, api: Any) -> Clock:
        """The published clock, or real time when there is none (or it is unreadable)."""
        from kubernetes.client.exceptions import ApiException

        from krios.kube.client import as_client, configmap_value

        try:
            text = configmap_value(as_client(api), NAMESPACE, NAME, KEY)
        except ApiException as exc:
            log.warning("cannot read %s/%s: %s; using real time", NAMESPACE, NAME, exc.reason)
            return cls.real()
        if text is None:
            return cls.real()
        try:
            return cls.from_json(text)
        except (KeyError, ValueError, TypeError) as exc:
            log.warning("ConfigMap %s/%s key %s is invalid (%s); using real time", NAMESPACE, NAME, KEY, exc)
            return cls.real()

"""Round-trip time between a ground client and the satellites serving its zone.

The model (the original Krios emulator's, made explicit and configurable)::

    d      = slant range from the client to the satellite, km
    hops   = max(1, ceil(d / hop_km))
    RTT_ms = 2 * d / c * 1000  +  hops * per_hop_ms

with ``c = 299792.458 km/s``. ``per_hop_ms`` is the processing (queueing,
switching) added per hop to the round trip; the original used 9 ms per hop.
``per_hop_ms`` and ``hop_km`` come from the scenario's ``latency`` section.

The client may be anywhere in the zone (a disc of ``radius_km`` around the
zone centre), so, as the original did, the model takes the *farthest* client
point: distance to a satellite is a convex function of the ground point, so
its maximum over the disc lies on the boundary circle, the zone's edge ring
(:attr:`krios.orbits.zones.Zone.ring`, 720 points; the centre alone for radius 0).

The farthest of the ring's points is found without measuring all of them
(:func:`farthest_ring_range_km`): going round a circle, the distance from an
outside point rises and falls once, so the farthest of every
:data:`RING_STRIDE`-th point is within ``RING_STRIDE`` points of the farthest
point, and only those neighbours are then compared exactly. The answer is the
brute-force maximum (:func:`farthest_range_km`, the definition) at ~7x less
work; the tests compare the two.

Frames: satellite positions are Earth-fixed ITRS (km); ground points are
WGS84 geodetic and converted to ITRS by skyfield (:mod:`krios.orbits.geometry`), so Earth rotation is
accounted for by the caller's ITRS positions. Between two satellites (the
node-to-node entries of the latency matrix) ``d`` is the straight-line
inter-satellite distance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from krios.errors import ConfigError
from krios.orbits.zones import Zone

#: Speed of light in vacuum, km/s.
C_KM_S = 299_792.458


def farthest_range_km(r_itrs: np.ndarray, ground: np.ndarray) -> np.ndarray:
    """Largest distance (km) from any of the ground points to each satellite.

    ``r_itrs``: satellite ITRS positions, shape ``(..., 3)`` km; ``ground``:
    ITRS ground points, shape ``(n, 3)`` km. Returns shape ``(...)``.
    """
    r = np.asarray(r_itrs, dtype=float)
    diff = r[..., None, :] - ground  # (..., n, 3)
    return np.linalg.norm(diff, axis=-1).max(axis=-1)


#: Coarse spacing (ring points) of :func:`farthest_ring_range_km`'s first search.
RING_STRIDE = 8
#: Satellite positions per chunk in :func:`farthest_ring_range_km` (bounds scratch memory).
RING_CHUNK = 50_000


def farthest_ring_range_km(r_itrs: np.ndarray, ring: np.ndarray, extra: np.ndarray | None = None,
                           stride: int = RING_STRIDE) -> np.ndarray:
    """:func:`farthest_range_km` over ``ring`` and ``extra`` points, by a coarse-then-fine search.

    ``ring``: ITRS points (km) in order around a closed, nearly circular ring
    (:attr:`krios.orbits.zones.Zone.ring`), shape ``(n, 3)``; ``extra``: other ground
    points compared exactly (the zone centre), shape ``(m, 3)``. The distance
    from a point to the points of a circle rises and falls once around it, so the
    farthest of every ``stride``-th ring point lies within ``stride`` points of the
    farthest one: those ``2 stride + 1`` neighbours are compared, then ``extra``.
    ``r_itrs``: satellite positions ``(..., 3)`` km; returns shape ``(...)``.
    """
    r = np.asarray(r_itrs, dtype=float)
    ring = np.asarray(ring, dtype=float)
    flat = r.reshape(-1, 3)
    n = len(ring)
    if n <= 4 * stride:  # too few points to gain anything
        ground = ring if extra is None else np.vstack([ring, np.reshape(extra, (-1, 3))])
        return farthest_range_km(r, ground)
    g2 = np.einsum("ij,ij->i", ring, ring)
    coarse = np.arange(0, n, stride)
    window = np.arange(-stride, stride + 1)
    out = np.empty(len(flat))
    for c0 in range(0, len(flat), RING_CHUNK):
        rc = flat[c0:c0 + RING_CHUNK]
        # |r - g|^2 = |r|^2 + |g|^2 - 2 r.g: only |g|^2 - 2 r.g depends on the ring point.
        score = g2[coarse] - 2.0 * (rc @ ring[coarse].T)
        best = coarse[np.argmax(score, axis=1)]
        idx = (best[:, None] + window) % n  # (S, W) ring indices around the coarse maximum
        score = g2[idx] - 2.0 * np.einsum("sj,swj->sw", rc, ring[idx])
        far = idx[np.arange(len(rc)), np.argmax(score, axis=1)]
        out[c0:c0 + RING_CHUNK] = np.linalg.norm(rc - ring[far], axis=1)
    if extra is not None:
        out = np.maximum(out, farthest_range_km(flat, np.reshape(extra, (-1, 3))))
    return out.reshape(r.shape[:-1])


def hop_count(distance_km: np.ndarray | float, hop_km: float) -> np.ndarray:
    """Hops over ``distance_km``: one per started ``hop_km``, at least one."""
    d = np.asarray(distance_km, dtype=float)
    return np.maximum(1.0, np.ceil(d / hop_km))


def rtt_ms(distance_km: np.ndarray | float, per_hop_ms: float, hop_km: float) -> np.ndarray:
    """Round-trip time (ms) over a one-way path of ``distance_km``.

    ``2 * d / c`` propagation plus ``per_hop_ms`` per hop (see module docs).
    """
    d = np.asarray(distance_km, dtype=float)
    return 2.0 * d / C_KM_S * 1000.0 + hop_count(d, hop_km) * per_hop_ms


@dataclass(frozen=True)
class LatencyModel:
    """The RTT model for one zone.

    Attributes
    ----------
    zone:
        The :class:`krios.orbits.zones.Zone`; the client may be anywhere in its disk.
    per_hop_ms, hop_km:
        Processing per hop (ms, round trip) and path length per hop (km).
    """

    zone: Zone
    per_hop_ms: float = 9.0
    hop_km: float = 1000.0

    def __post_init__(self) -> None:
        for name in ("per_hop_ms", "hop_km"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0) or (
                name == "hop_km" and value == 0
            ):
                raise ConfigError("must be a non-negative number" if name == "per_hop_ms"
                                  else "must be a positive number", source="latency", field=name)  # fmt: skip
        ring, _ups = self.zone.ring
        ground = np.vstack([np.reshape(self.zone.centre_itrs, (1, 3)), ring]) if self.zone.radius_km > 0 \
            else np.reshape(self.zone.centre_itrs, (1, 3))
        object.__setattr__(self, "_ground", ground)

    @classmethod
    def from_scenario(cls, scenario: Any) -> LatencyModel:
        """The model of a :class:`krios.config.scenarios.Scenario` (``zone`` and ``latency`` keys)."""
        lat = scenario.get("latency", {}) or {}
        return cls(Zone.from_scenario(scenario), per_hop_ms=float(lat.get("per_hop_ms", 9.0)),
                   hop_km=float(lat.get("hop_km", 1000.0)))  # fmt: skip

    @property
    def ground(self) -> np.ndarray:
        """ITRS km, ``(n, 3)``: the client points (centre, then the zone's edge ring)."""
        return self._ground  # type: ignore[attr-defined]

    def client_range_km(self, r_itrs: np.ndarray) -> np.ndarray:
        """Slant range (km) from the farthest client point to each satellite ``(..., 3)``:
        ``farthest_range_km(r_itrs, self.ground)``, found by :func:`farthest_ring_range_km`."""
        ground = self.ground
        if len(ground) == 1:
            return farthest_range_km(r_itrs, ground)
        return farthest_ring_range_km(r_itrs, ground[1:], extra=ground[:1])

    def client_rtt_ms(self, r_itrs: np.ndarray) -> np.ndarray:
        """RTT (ms) from the farthest client point to each satellite ``(..., 3)`` ITRS km."""
        return rtt_ms(self.client_range_km(r_itrs), self.per_hop_ms, self.hop_km)

    def link_rtt_ms(self, r_a: np.ndarray, r_b: np.ndarray) -> np.ndarray:
        """RTT (ms) over the straight line between satellites at ITRS ``r_a`` and ``r_b`` (km)."""
        d = np.linalg.norm(np.asarray(r_a, dtype=float) - np.asarray(r_b, dtype=float), axis=-1)
        return rtt_ms(d, self.per_hop_ms, self.hop_km)

    def matrix(self, positions: Mapping[str, np.ndarray], decimals: int = 3) -> dict[str, dict[str, float]]:
        """The ``rtt`` part of the ``krios-latency`` ConfigMap.

        ``positions``: node name -> ITRS position (km, shape ``(3,)``) of the
        satellite it emulates. Returns ``{"client": {node: ms}, node: {node: ms}}``
        (a node's RTT to itself is 0).
        """
        names = sorted(positions)
        if not names:
            return {"client": {}}
        r = np.array([positions[n] for n in names], dtype=float).reshape(len(names), 3)
        client = self.client_rtt_ms(r)
        links = self.link_rtt_ms(r[:, None, :], r[None, :, :])
        out: dict[str, dict[str, float]] = {
            "client": {n: round(float(client[i]), decimals) for i, n in enumerate(names)}
        }
        for i, a in enumerate(names):
            out[a] = {b: (0.0 if i == j else round(float(links[i, j]), decimals)) for j, b in enumerate(names)}
        return out


def matrix_document(updated: float, rtt: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    """The ``matrix.json`` document of ConfigMap ``krios-latency`` (see docs/design/interfaces.md)."""
    return {"updated": float(updated), "unit": "ms", "rtt": {k: dict(v) for k, v in rtt.items()}}

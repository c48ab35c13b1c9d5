"""Round-trip time between a ground client and the satellites serving its zone.

Two models, chosen by name (``latency.rtt_model`` in a scenario, ``--rtt-model``
on the command line; :data:`RTT_MODELS`); docs/guide/fidelity.md compares them.

``physical`` (the default) is krios-testbed's own model, not the original
emulator's::

    d      = slant range from the client to the satellite, km
    hops   = max(1, ceil(d / hop_km))
    RTT_ms = 2 * d / c * 1000  +  hops * per_hop_ms

with ``c = 299792.458 km/s``: free-space propagation at the speed of light over
the straight line, both ways (as in Handley, "Delay is Not an Option: Low
Latency Routing in Space", HotNets 2018, and the Hypatia simulator, Kassing et
al., IMC 2020, which take link delay = distance / c), plus a processing term
(queueing, switching) of ``per_hop_ms`` per started ``hop_km``. That term
borrows the original Krios emulator's figures (9 ms per ~1,000 km band, see
below) but counts hops linearly. ``per_hop_ms`` and ``hop_km`` come from the
scenario's ``latency`` section. The client may be anywhere in the zone (a disc
of ``radius_km`` around the zone centre), so the model takes the *farthest*
client point on the ground: distance to a satellite is a convex function of the
ground point, so its maximum over the disc lies on the boundary circle, the
zone's edge ring (:attr:`krios.orbits.zones.Zone.ring`, 720 points; the centre
alone for radius 0).

``krios-emulator`` is the seed's model, reproduced from the original
krios-emulator (github.com/GTkernel/krios-emulator, ``latency.py``,
``tc_commands.py``, ``script-client.py``, ``utils.py``)::

    theta  = Earth central angle of a 25 deg elevation mask at 550 km
             (WGS72 radius R = 6378.135 km): 8.4508 deg
    edge_k = 2 (R + 550) sin(k theta / 2), k = 1 .. 22   (1020.9, 2036.3, 3040.6, ... km)
    hops   = 2k - 1 for edge_(k-1) <= d < edge_k (1, 3, 5, ... 43), 45 beyond edge_22
    RTT_ms = hops * per_hop_ms                            (9 ms in the original)

No propagation term. ``d`` is measured from client points lifted 550 km up
(WGS72 geodetic height 550 km, as the original's ``geodetic2cartesian(lat, lon,
550000)``): the zone centre and, for a zone with a radius, rings laid out in
degrees, ``lat + r cos(b), lon + r sin(b)`` with ``r = 0.01 k`` deg and ``10 k``
points on ring ``k``, every ring whose largest haversine distance from the
centre (R = 6378.135 km) is within the radius. The farthest of the centre and
the outermost such ring is taken (:func:`seed_client_points`; the tests check it
is the farthest of all the original's points). The band constants are the
original's, whatever the scenario's elevation mask or altitude; ``hop_km`` does
not apply. Between two satellites (which the original did not shape) the same
bands are applied to their distance. One difference is deliberate: the original
fed SGP4's TEME (inertial) positions against Earth-fixed client points; here
both are Earth-fixed (ITRS), as everywhere else in krios. Because the original
chose its satellites by the same distances, every satellite it served was in
the first band: a constant 9 ms. Under krios's in-zone rule a serving satellite
is in the first band too, except within about half a degree of the elevation
mask at the zone's far edge, where it can be in the second (27 ms).

The farthest of a ``physical`` zone's ring points is found without measuring
all of them (:func:`farthest_ring_range_km`): the ring is fitted by an ellipse
once, the few points around the one opposite the satellite are compared, and a
bound on every other point (from the fit and its residual) proves that answer
for all but the satellites within some tens of km of the ring's axis; those go
through a coarse-then-fine search (going round a circle, the distance from an
outside point rises and falls once, so the farthest of every
:data:`RING_STRIDE`-th point is within ``RING_STRIDE`` points of the farthest
point, and only those neighbours are then compared exactly). The answer is the
brute-force maximum (:func:`farthest_range_km`, the definition) at ~1/30 of its
work; the tests compare the two on and off the axis. The ``krios-emulator`` ring (an ellipse in km,
not a circle) is compared point by point, in chunks (:func:`farthest_points_range_km`).

Frames: satellite positions are Earth-fixed ITRS (km); ``physical``'s ground points are
WGS84 geodetic and converted to ITRS by skyfield (:mod:`krios.orbits.geometry`),
``krios-emulator``'s are WGS72 geodetic, 550 km up (:func:`seed_geodetic_km`; metres
from WGS84), so Earth rotation is accounted for by the caller's ITRS positions. Between two satellites (the
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

#: The RTT models by name: krios-testbed's ``physical`` (the default) and the original emulator's.
RTT_MODELS = ("physical", "krios-emulator")

# -- the original krios-emulator's constants (module docs) -------------------------------
#: WGS72 equatorial radius (km) and flattening, as the original's ``utils.py``.
SEED_EARTH_RADIUS_KM = 6378.135
SEED_FLATTENING = 1.0 / 298.26
#: Height of the original's client points and of its band sphere (km).
SEED_ALTITUDE_KM = 550.0
#: Elevation mask (deg) the original's band width comes from.
SEED_ELEVATION_DEG = 25.0
#: Distance bands the original distinguishes; beyond the last, ``2 * SEED_BANDS + 1`` hops.
SEED_BANDS = 22
#: Ring spacing (deg) of the original's client points; ring ``k`` has ``10 k`` points.
SEED_RING_STEP_DEG = 0.01


def seed_band_angle_rad() -> float:
    """Earth central angle (rad) between a ground point and the sub-satellite point of a satellite
    550 km up that it sees at 25 deg elevation (spherical Earth, R = 6378.135 km): 8.4508 deg, the
    original's ``calculate_range_handoffs(0, 550, 25 deg)``."""
    r, h, e = SEED_EARTH_RADIUS_KM, SEED_ALTITUDE_KM, math.radians(SEED_ELEVATION_DEG)
    at_orbit = math.asin(math.sin(math.pi / 2 + e) * r / (r + h))
    return math.pi / 2 - e - at_orbit


#: Upper edges (km, exclusive) of the original's 22 distance bands: chords of ``k * theta`` on the
#: 550 km sphere, 1020.9, 2036.3, ... km.
SEED_BAND_EDGES_KM = np.array([2.0 * (SEED_EARTH_RADIUS_KM + SEED_ALTITUDE_KM) * math.sin(k * seed_band_angle_rad() / 2)
                               for k in range(1, SEED_BANDS + 1)])


def seed_hops(distance_km: np.ndarray | float) -> np.ndarray:
    """The original's hop count: 1, 3, 5, ... for distances in band 1, 2, 3, ...; 45 beyond
    band 22; ``nan`` for a ``nan`` distance (a satellite SGP4 cannot propagate)."""
    d = np.asarray(distance_km, dtype=float)
    band = np.searchsorted(SEED_BAND_EDGES_KM, d, side="right")  # edges <= d
    return np.where(np.isnan(d), np.nan, 2.0 * band + 1.0)


def seed_rtt_ms(distance_km: np.ndarray | float, per_hop_ms: float = 9.0) -> np.ndarray:
    """The original's RTT (ms): ``per_hop_ms`` per hop of :func:`seed_hops`, no propagation term."""
    return seed_hops(distance_km) * per_hop_ms


def seed_geodetic_km(lat_deg: np.ndarray | float, lon_deg: np.ndarray | float,
                     height_km: float = SEED_ALTITUDE_KM) -> np.ndarray:
    """Earth-fixed cartesian (km, ``(..., 3)``) of WGS72 geodetic points ``height_km`` up."""
    lat = np.radians(np.asarray(lat_deg, dtype=float))
    lon = np.radians(np.asarray(lon_deg, dtype=float))
    e2 = 2.0 * SEED_FLATTENING - SEED_FLATTENING**2
    v = SEED_EARTH_RADIUS_KM / np.sqrt(1.0 - e2 * np.sin(lat) ** 2)
    return np.stack([(v + height_km) * np.cos(lat) * np.cos(lon),
                     (v + height_km) * np.cos(lat) * np.sin(lon),
                     (v * (1.0 - e2) + height_km) * np.sin(lat)], axis=-1)


def _haversine_km(lat_deg: np.ndarray, lon_deg: np.ndarray, lat0_deg: float, lon0_deg: float) -> np.ndarray:
    """Great-circle distance (km) on the original's sphere (R = 6378.135 km)."""
    p1, l1 = np.radians(lat_deg), np.radians(lon_deg)
    p0, l0 = math.radians(lat0_deg), math.radians(lon0_deg)
    a = np.sin((p1 - p0) / 2) ** 2 + math.cos(p0) * np.cos(p1) * np.sin((l1 - l0) / 2) ** 2
    return 2.0 * SEED_EARTH_RADIUS_KM * np.arcsin(np.sqrt(a))


def _seed_ring(lat_deg: float, lon_deg: float, k: int) -> np.ndarray:
    """Ring ``k`` of the original's client points: ``10 k`` (lat, lon) deg at ``r = 0.01 k`` deg."""
    r = SEED_RING_STEP_DEG * k
    b = np.linspace(0.0, 2.0 * np.pi, num=10 * k, endpoint=False)
    return np.stack([lat_deg + r * np.cos(b), lon_deg + r * np.sin(b)], axis=-1)


def _seed_ring_within(lat_deg: float, lon_deg: float, k: int, radius_km: float) -> bool:
    pts = _seed_ring(lat_deg, lon_deg, k)
    return float(_haversine_km(pts[:, 0], pts[:, 1], lat_deg, lon_deg).max()) <= radius_km


def seed_ring_count(lat_deg: float, lon_deg: float, radius_km: float) -> int:
    """How many rings the original lays out: ring ``k`` (``r = 0.01 k`` deg) is kept while no
    point of it is more than ``radius_km`` (haversine) from the centre; the first ring that has
    one ends the list. 0 for a radius under ~1.1 km.

    A ring's farthest point is its pure-latitude offset, ``r`` deg of arc, and grows with
    ``k``; the search starts a few rings below that estimate (checking that ring fits).
    """
    step_km = SEED_EARTH_RADIUS_KM * math.radians(SEED_RING_STEP_DEG)
    k = max(1, int(radius_km / step_km) - 3)
    if k > 1 and not _seed_ring_within(lat_deg, lon_deg, k - 1, radius_km):
        k = 1
    while _seed_ring_within(lat_deg, lon_deg, k, radius_km):
        k += 1
    return k - 1


def seed_client_points(zone: Zone, all_rings: bool = False) -> np.ndarray:
    """The original's client points of ``zone`` (Earth-fixed km, ``(n, 3)``), 550 km up.

    The centre, then the outermost ring (:func:`seed_ring_count`; ``all_rings``:
    every ring, as the original listed them, innermost first). The farthest
    point from a satellite is on the centre or the outermost ring, which the
    tests check against all of them.
    """
    n = seed_ring_count(zone.lat_deg, zone.lon_deg, zone.radius_km)
    ks = range(1, n + 1) if all_rings else range(n, n + 1) if n else range(0)
    latlon = np.vstack([np.array([[zone.lat_deg, zone.lon_deg]]),
                        *(_seed_ring(zone.lat_deg, zone.lon_deg, k) for k in ks)])
    return seed_geodetic_km(latlon[:, 0], latlon[:, 1])


#: Scratch entries (positions x points) per chunk in :func:`farthest_points_range_km`.
POINTS_CHUNK = 4_000_000


def farthest_points_range_km(r_itrs: np.ndarray, ground: np.ndarray) -> np.ndarray:
    """:func:`farthest_range_km`, every point compared, in chunks of :data:`POINTS_CHUNK` scratch entries.

    The farthest point maximises ``|g|^2 - 2 r.g`` (one matrix product per
    chunk); its distance is then computed directly. ``r_itrs`` ``(..., 3)`` km,
    ``ground`` ``(n, 3)`` km; returns shape ``(...)``.
    """
    r = np.asarray(r_itrs, dtype=float)
    g = np.asarray(ground, dtype=float).reshape(-1, 3)
    flat = r.reshape(-1, 3)
    g2 = np.einsum("ij,ij->i", g, g)
    out = np.empty(len(flat))
    chunk = max(1, POINTS_CHUNK // max(1, len(g)))
    for c0 in range(0, len(flat), chunk):
        rc = flat[c0:c0 + chunk]
        far = np.argmax(g2[None, :] - 2.0 * (rc @ g.T), axis=1)
        out[c0:c0 + chunk] = np.linalg.norm(rc - g[far], axis=1)
    return out.reshape(r.shape[:-1])


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
#: Half-width (ring points) of the window :func:`farthest_ring_range_km` compares around the
#: point opposite the satellite.
RING_WINDOW = 4
#: Below this many positions :func:`farthest_ring_range_km` skips the opposite-point search
#: (fitting the ring costs about as much as comparing a few dozen positions).
RING_FIT_MIN = 64


@dataclass(frozen=True)
class _RingFit:
    """A ring as an ellipse ``h(t) = c + a cos t + b sin t``, ``t = 2 pi i / n`` at point ``i``,
    and how far any ring point is from it (``eps``, km). ``k0 = (|a|^2 + |b|^2) / 2`` and
    ``|a|^2 cos^2 t + |b|^2 sin^2 t + 2 a.b sin t cos t = k0 + q cos(2 t - gamma)`` (km^2).
    ``win_idx[i]``, ``win_pts[i]``, ``win_g2[i]``: the ring indices, points and ``|g|^2`` of
    the ``2 window + 1`` points around point ``i`` (``i = 0 .. n``, ``n`` being ``0`` again)."""

    c: np.ndarray
    a: np.ndarray
    b: np.ndarray
    eps: float
    k0: float
    q: float
    gamma: float
    window: int
    win_idx: np.ndarray
    win_pts: np.ndarray
    win_g2: np.ndarray


def _fit_ring(ring: np.ndarray, g2: np.ndarray, window: int) -> _RingFit:
    """Least-squares ellipse through ``ring`` (points in order, evenly spaced in parameter)."""
    n = len(ring)
    t = 2.0 * np.pi * np.arange(n) / n
    c = ring.mean(axis=0)
    a = (2.0 / n) * (np.cos(t) @ (ring - c))
    b = (2.0 / n) * (np.sin(t) @ (ring - c))
    model = c + np.cos(t)[:, None] * a + np.sin(t)[:, None] * b
    # The residual, widened for the rounding of the model (km).
    eps = float(np.max(np.linalg.norm(ring - model, axis=1))) * (1.0 + 1e-9) + 1e-9 * float(np.max(np.abs(ring)))
    aa, bb, ab = float(a @ a), float(b @ b), float(a @ b)
    win_idx = (np.arange(n + 1)[:, None] + np.arange(-window, window + 1)) % n
    return _RingFit(c, a, b, eps, (aa + bb) / 2.0, math.hypot((aa - bb) / 2.0, ab), math.atan2(ab, (aa - bb) / 2.0),
                    window, win_idx, np.ascontiguousarray(ring[win_idx]), np.ascontiguousarray(g2[win_idx]))


def _opposite_search(rc: np.ndarray, ring: np.ndarray, fit: _RingFit) -> tuple[np.ndarray, np.ndarray]:
    """Farthest ring point of each position in ``rc`` ``(S, 3)`` among the ``2 window + 1`` points
    around the one opposite it, and whether that is *proven* to be the farthest of all.

    With ``d = r - c``, the squared distance to the ellipse point at parameter ``t`` is
    ``F(t) = |d|^2 + k0 - L cos(t - phi) + q cos(2 t - gamma)``, ``L = 2 |(d.a, d.b)|``,
    ``phi = atan2(d.b, d.a)``, largest near ``t* = phi + pi``. The window is centred on the
    point nearest ``t*``, so every point outside it is at ``|t - t*| >= psi = (window + 1/2)
    2 pi / n``, where ``F <= F(t*) - L (1 - cos psi) + 2 q sin psi`` when ``tan psi >= 2 q / L``
    (``F(t* + s) - F(t*) = -L (1 - cos s) + q (cos(2 s + delta) - cos delta)``, the second
    term at most ``2 q |sin s|`` and the sum decreasing beyond ``psi``), and always
    ``F <= |d|^2 + k0 + L cos psi + q``. A ring point is within ``eps`` of its ellipse point,
    so it is proven when the window's farthest beats ``sqrt(bound) + eps`` by a centimetre.
    Near the ring's axis (``L`` small) nothing is proven; the caller searches those again.
    Returns ``(range_km, proven)``.
    """
    n = len(ring)
    d = rc - fit.c
    pa, pb = d @ fit.a, d @ fit.b
    big_l = 2.0 * np.hypot(pa, pb)
    t_star = np.arctan2(pb, pa) + np.pi  # in [0, 2 pi]
    finite = np.isfinite(t_star)
    i0 = np.rint(np.where(finite, t_star, 0.0) * (n / (2.0 * np.pi))).astype(np.intp)  # 0 .. n
    score = fit.win_g2[i0] - 2.0 * np.einsum("sj,swj->sw", rc, fit.win_pts[i0])
    far = fit.win_idx[i0, np.argmax(score, axis=1)]
    best = np.linalg.norm(rc - ring[far], axis=1)
    psi = (fit.window + 0.5) * 2.0 * np.pi / n
    base = np.einsum("sj,sj->s", d, d) + fit.k0
    with np.errstate(invalid="ignore"):
        f_star = base + big_l + fit.q * np.cos(2.0 * t_star - fit.gamma)
        bound = np.minimum(base + big_l * math.cos(psi) + fit.q,
                           np.where(big_l * math.tan(psi) >= 2.0 * fit.q,
                                    f_star - big_l * (1.0 - math.cos(psi)) + 2.0 * fit.q * math.sin(psi), np.inf))
        outside = np.sqrt(np.maximum(bound, 0.0)) + fit.eps
        proven = finite & (psi < math.pi / 2) & (best > outside * (1.0 + 1e-12) + 1e-5)
    return best, proven


def _coarse_fine_search(rc: np.ndarray, ring: np.ndarray, g2: np.ndarray, stride: int) -> np.ndarray:
    """Farthest ring point of each position by a coarse search (every ``stride``-th point)
    then the ``2 stride + 1`` points around the coarse maximum (see
    :func:`farthest_ring_range_km`)."""
    n = len(ring)
    coarse = np.arange(0, n, stride)
    window = np.arange(-stride, stride + 1)
    # |r - g|^2 = |r|^2 + |g|^2 - 2 r.g: only |g|^2 - 2 r.g depends on the ring point.
    score = g2[coarse] - 2.0 * (rc @ ring[coarse].T)
    best = coarse[np.argmax(score, axis=1)]
    idx = (best[:, None] + window) % n  # (S, W) ring indices around the coarse maximum
    score = g2[idx] - 2.0 * np.einsum("sj,swj->sw", rc, ring[idx])
    far = idx[np.arange(len(rc)), np.argmax(score, axis=1)]
    return np.linalg.norm(rc - ring[far], axis=1)


def farthest_ring_range_km(r_itrs: np.ndarray, ring: np.ndarray, extra: np.ndarray | None = None,
                           stride: int = RING_STRIDE, window: int = RING_WINDOW) -> np.ndarray:
    """:func:`farthest_range_km` over ``ring`` and ``extra`` points, without measuring every point.

    ``ring``: ITRS points (km) in order around a closed, nearly circular ring
    (:attr:`krios.orbits.zones.Zone.ring`), shape ``(n, 3)``; ``extra``: other ground
    points compared exactly (the zone centre), shape ``(m, 3)``.
    ``r_itrs``: satellite positions ``(..., 3)`` km; returns shape ``(...)``.

    First the ``2 window + 1`` ring points around the one opposite the satellite (the
    ring fitted by an ellipse; :func:`_opposite_search`) are compared, and the answer is
    kept where a bound proves that no point outside them is farther -- everywhere except
    within some tens of km of the ring's axis (for a 100 km zone; the bound needs the
    satellite's offset from the axis to outweigh the ring's ellipticity and its
    deviation from the ellipse). Those positions (and any input of fewer than
    :data:`RING_FIT_MIN` positions) take the coarse-then-fine search: the distance from a
    point to the points of a circle rises and falls once around it, so the farthest of
    every ``stride``-th ring point lies within ``stride`` points of the farthest one, and
    those ``2 stride + 1`` neighbours are compared. Then ``extra``.
    """
    r = np.asarray(r_itrs, dtype=float)
    ring = np.asarray(ring, dtype=float)
    flat = r.reshape(-1, 3)
    n = len(ring)
    if n <= 4 * stride:  # too few points to gain anything
        ground = ring if extra is None else np.vstack([ring, np.reshape(extra, (-1, 3))])
        return farthest_range_km(r, ground)
    g2 = np.einsum("ij,ij->i", ring, ring)
    fit = _fit_ring(ring, g2, window) if len(flat) >= RING_FIT_MIN and 0 < window < n // 4 else None
    out = np.empty(len(flat))
    for c0 in range(0, len(flat), RING_CHUNK):
        rc = flat[c0:c0 + RING_CHUNK]
        if fit is None:
            out[c0:c0 + RING_CHUNK] = _coarse_fine_search(rc, ring, g2, stride)
            continue
        best, proven = _opposite_search(rc, ring, fit)
        redo = np.flatnonzero(~proven)
        if len(redo):
            best[redo] = _coarse_fine_search(rc[redo], ring, g2, stride)
        out[c0:c0 + RING_CHUNK] = best
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
        Processing per hop (ms, round trip) and path length per hop (km; ``physical`` only).
    rtt_model:
        ``physical`` or ``krios-emulator`` (:data:`RTT_MODELS`, module docs).
    """

    zone: Zone
    per_hop_ms: float = 9.0
    hop_km: float = 1000.0
    rtt_model: str = "physical"

    def __post_init__(self) -> None:
        for name in ("per_hop_ms", "hop_km"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0) or (
                name == "hop_km" and value == 0
            ):
                raise ConfigError("must be a non-negative number" if name == "per_hop_ms"
                                  else "must be a positive number", source="latency", field=name)  # fmt: skip
        if self.rtt_model not in RTT_MODELS:
            raise ConfigError(f"unknown RTT model (known: {', '.join(RTT_MODELS)})", source="rtt_model",
                              field=str(self.rtt_model))
        if self.rtt_model == "krios-emulator":
            object.__setattr__(self, "_ground", seed_client_points(self.zone))
            return
        ring, _ups = self.zone.ring
        ground = np.vstack([np.reshape(self.zone.centre_itrs, (1, 3)), ring]) if self.zone.radius_km > 0 \
            else np.reshape(self.zone.centre_itrs, (1, 3))
        object.__setattr__(self, "_ground", ground)

    @classmethod
    def from_scenario(cls, scenario: Any, rtt_model: str | None = None) -> LatencyModel:
        """The model of a :class:`krios.config.scenarios.Scenario` (``zone`` and ``latency`` keys);
        ``rtt_model`` (a flag), if given, overrides ``latency.rtt_model``."""
        lat = scenario.get("latency", {}) or {}
        return cls(Zone.from_scenario(scenario), per_hop_ms=float(lat.get("per_hop_ms", 9.0)),
                   hop_km=float(lat.get("hop_km", 1000.0)),
                   rtt_model=rtt_model or str(lat.get("rtt_model", "physical")))  # fmt: skip

    def rtt_of_range_ms(self, distance_km: np.ndarray | float) -> np.ndarray:
        """RTT (ms) over a one-way ``distance_km`` under this model (:func:`rtt_ms` or :func:`seed_rtt_ms`)."""
        if self.rtt_model == "krios-emulator":
            return seed_rtt_ms(distance_km, self.per_hop_ms)
        return rtt_ms(distance_km, self.per_hop_ms, self.hop_km)

    @property
    def ground(self) -> np.ndarray:
        """ITRS km, ``(n, 3)``: the client points (centre, then the zone's edge ring; for
        ``krios-emulator``, :func:`seed_client_points`, 550 km up)."""
        return self._ground  # type: ignore[attr-defined]

    def client_range_km(self, r_itrs: np.ndarray) -> np.ndarray:
        """Slant range (km) from the farthest client point to each satellite ``(..., 3)``:
        ``farthest_range_km(r_itrs, self.ground)``, found by :func:`farthest_ring_range_km`."""
        ground = self.ground
        if len(ground) == 1:
            return farthest_range_km(r_itrs, ground)
        if self.rtt_model == "krios-emulator":
            return farthest_points_range_km(r_itrs, ground)
        return farthest_ring_range_km(r_itrs, ground[1:], extra=ground[:1])

    def client_rtt_ms(self, r_itrs: np.ndarray) -> np.ndarray:
        """RTT (ms) from the farthest client point to each satellite ``(..., 3)`` ITRS km."""
        return self.rtt_of_range_ms(self.client_range_km(r_itrs))

    def link_rtt_ms(self, r_a: np.ndarray, r_b: np.ndarray) -> np.ndarray:
        """RTT (ms) over the straight line between satellites at ITRS ``r_a`` and ``r_b`` (km)."""
        d = np.linalg.norm(np.asarray(r_a, dtype=float) - np.asarray(r_b, dtype=float), axis=-1)
        return self.rtt_of_range_ms(d)

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


def matrix_document(updated: float, rtt: Mapping[str, Mapping[str, float]],
                    rtt_model: str | None = None) -> dict[str, Any]:
    """The ``matrix.json`` document of ConfigMap ``krios-latency`` (see docs/design/interfaces.md);
    ``rtt_model`` (the model's name), if given, is added as key ``model``."""
    doc: dict[str, Any] = {"updated": float(updated), "unit": "ms", "rtt": {k: dict(v) for k, v in rtt.items()}}
    if rtt_model is not None:
        doc["model"] = rtt_model
    return doc

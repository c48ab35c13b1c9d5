"""Ground zones and the in-zone rule.

A :class:`Zone` is a WGS84 ground point, a radius (km) and a minimum elevation
(deg). A satellite is *in the zone* when it is at least ``min_elevation_deg``
above the local horizon as seen from **every** point of the zone disk (for
radius 0, from the centre).

Geometry (``docs/readme/orbits.md`` explains it with the original's intent):

- The disk is the set of ground points whose great-circle distance from the
  centre, on a sphere of the Earth's mean radius, is at most ``radius_km``.
  Its edge is laid out once as :data:`RING_POINTS` WGS84 points.
- Elevation falls monotonically with ground distance from the sub-satellite
  point, so the worst point of the disk is the edge point farthest from the
  sub-satellite point: the one opposite the satellite's azimuth as seen from
  the centre. Its elevation is computed exactly, in the WGS84 east-north-up
  frame of that edge point (:func:`worst_elevation`).
- For fast pre-filters, the rule becomes two cones about the centre's
  geocentric direction (:meth:`Zone.outer_angle`, :meth:`Zone.inner_angle`):
  with geocentric elevations, a satellite at distance ``r`` is at least ``e``
  high from a ground point at distance ``R`` within the Earth central angle
  ``acos(R cos e / r) - e``; the disk edge lies ``delta`` further out; the
  geodetic normal tilts at most :attr:`Zone.tilt_deg` (<= :data:`NORMAL_TILT_DEG`)
  from the geocentric one over the disk. Outside the outer cone a satellite is certainly out, inside the inner
  cone certainly in; only pairs in between need the exact elevation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from krios.errors import ConfigError
from krios.orbits import geometry
from krios.orbits.constellation import Constellation

#: Points laid out on a zone's edge (every 0.5 deg of bearing): the worst point
#: is never more than 0.25 deg of bearing from one of them, which for a 100 km
#: zone moves it < 1 m closer to the satellite than the true worst point.
RING_POINTS = 720

#: Largest angle (deg) between the WGS84 geodetic normal and the geocentric
#: direction (0.1924 deg at 45 deg latitude), rounded up. Elevations measured
#: about the two differ by at most this much; :attr:`Zone.tilt_deg` is the
#: largest over one zone's disk (0 at the equator and the poles).
NORMAL_TILT_DEG = 0.2
#: Extra angle (deg) around the cull cones, for the ring's discretisation (the
#: ring point used is < 1 m from the true worst point: < 0.0001 deg of elevation)
#: and rounding. 0.02 deg of geocentric angle is ~0.07 deg of elevation.
CULL_MARGIN_DEG = 0.02


@dataclass(frozen=True)
class Zone:
    """A ground zone: centre (WGS84 geodetic deg, height km), radius (km), minimum elevation (deg)."""

    lat_deg: float
    lon_deg: float
    radius_km: float = 0.0
    min_elevation_deg: float = 25.0
    height_km: float = 0.0

    def __post_init__(self) -> None:
        checks = (
            ("lat", self.lat_deg, -90.0, 90.0, "latitude must be within [-90, 90] deg"),
            ("lon", self.lon_deg, -180.0, 180.0, "longitude must be within [-180, 180] deg"),
            ("radius_km", self.radius_km, 0.0, 2000.0, "radius must be within [0, 2000] km"),
            ("min_elevation_deg", self.min_elevation_deg, 0.0, 89.0,
             "minimum elevation must be within [0, 89] deg"),
            ("height_km", self.height_km, -1.0, 10.0, "height must be within [-1, 10] km"),
        )
        for name, value, lo, hi, message in checks:
            if not isinstance(value, int | float) or isinstance(value, bool) or not (
                math.isfinite(value) and lo <= value <= hi
            ):
                raise ConfigError(message, source="zone", field=f"{name} {value!r}")

    @classmethod
    def from_scenario(cls, scenario: Any) -> Zone:
        """The zone of a scenario (``zone: {lat, lon, radius_km, min_elevation_deg}``)."""
        z = scenario["zone"] if not isinstance(scenario, dict) or "zone" in scenario else scenario
        where = str(getattr(scenario, "path", "scenario"))
        try:
            return cls(float(z["lat"]), float(z["lon"]), float(z.get("radius_km", 0.0)),
                       float(z.get("min_elevation_deg", 25.0)))
        except ConfigError as err:
            raise ConfigError(err.message, source=where, field=f"zone.{err.field}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"bad zone: {exc}", source=where, field="zone") from None

    @property
    def label(self) -> str:
        """The ``leozone`` label value, ``<lat>_<lon>``."""
        return f"{self.lat_deg:.10g}_{self.lon_deg:.10g}"

    # -- geometry ------------------------------------------------------------------
    @cached_property
    def centre_itrs(self) -> np.ndarray:
        """ITRS position of the centre, km, ``(3,)``."""
        return geometry.ground_itrs(self.lat_deg, self.lon_deg, self.height_km)

    @cached_property
    def basis(self) -> np.ndarray:
        """East, north, up unit vectors at the centre (rows), ``(3, 3)``."""
        return geometry.enu_basis(self.lat_deg, self.lon_deg)

    @cached_property
    def ring(self) -> tuple[np.ndarray, np.ndarray]:
        """Edge points (ITRS km, ``(K, 3)``) at bearings ``360 k / K`` deg and their up vectors.

        For radius 0 every ring point is the centre, so the in-zone rule falls
        back to the elevation from the centre.
        """
        bearing = np.arange(RING_POINTS) * (2 * math.pi / RING_POINTS)
        delta = self.radius_km / geometry.MEAN_RADIUS_KM
        lat1, lon1 = math.radians(self.lat_deg), math.radians(self.lon_deg)
        lat2 = np.arcsin(np.clip(math.sin(lat1) * math.cos(delta)
                                 + math.cos(lat1) * math.sin(delta) * np.cos(bearing), -1, 1))
        lon2 = lon1 + np.arctan2(np.sin(bearing) * math.sin(delta) * math.cos(lat1),
                                 math.cos(delta) - math.sin(lat1) * np.sin(lat2))
        lat_d, lon_d = np.degrees(lat2), (np.degrees(lon2) + 180.0) % 360.0 - 180.0
        points = geometry.ground_itrs(lat_d, lon_d, np.full_like(lat_d, self.height_km))
        ups = geometry.enu_basis(lat_d, lon_d)[:, 2, :]
        return points, ups

    @cached_property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(R_lo, R_hi, delta_lo, delta_hi)``: the smallest and largest geocentric
        distance (km) of the disk's centre and edge points, and the smallest and
        largest geocentric angle (rad) between the centre and an edge point."""
        points, _ = self.ring
        radii = np.append(np.linalg.norm(points, axis=1), np.linalg.norm(self.centre_itrs))
        cosines = np.clip(points @ self.unit / np.linalg.norm(points, axis=1), -1.0, 1.0)
        angles = np.arccos(cosines)
        return (float(radii.min()) - 0.01, float(radii.max()) + 0.01,
                max(float(angles.min()) - 1e-6, 0.0), float(angles.max()) + 1e-6)

    @cached_property
    def tilt_deg(self) -> float:
        """Largest angle (deg) between the geodetic normal and the geocentric direction
        at any point of the disk (it depends on latitude only: the disk's latitude span is
        sampled every 1/1440 of it, + 0.001 deg for the peak between samples)."""
        _, ups = self.ring
        lats = np.degrees(np.arcsin(np.clip(ups[:, 2], -1.0, 1.0)))
        lo, hi = min(float(lats.min()), self.lat_deg), max(float(lats.max()), self.lat_deg)
        reach = math.degrees(self.radius_km / geometry.MEAN_RADIUS_KM)
        if self.lat_deg + reach >= 90.0:
            hi = 90.0
        if self.lat_deg - reach <= -90.0:
            lo = -90.0
        grid = np.linspace(lo, hi, 1441)
        points = geometry.ground_itrs(grid, np.zeros_like(grid), np.full_like(grid, self.height_km))
        up = geometry.enu_basis(grid, np.zeros_like(grid))[:, 2, :]
        cos_t = np.einsum("ij,ij->i", points, up) / np.linalg.norm(points, axis=1)
        tilt = float(np.degrees(np.arccos(np.clip(cos_t, -1.0, 1.0))).max()) + 0.001
        return min(tilt, NORMAL_TILT_DEG)

    def outer_angle(self, r_km: ArrayLike, margin_deg: float = CULL_MARGIN_DEG) -> np.ndarray:
        """Geocentric angle (rad) between satellite and centre beyond which a satellite
        at distance ``r_km`` cannot be in the zone (necessary condition).

        From the geocentric elevation of the disk point opposite the satellite:
        the geodetic normal leans at most :attr:`tilt_deg` from the geocentric one
        over the disk, so in the zone means a geocentric elevation of at least
        ``min_elevation - tilt`` there.
        """
        r_lo, _, d_lo, _ = self.bounds
        e = max(self.min_elevation_deg - self.tilt_deg, 0.0)
        return geometry.coverage_angle(r_km, e, r_lo) - d_lo + math.radians(margin_deg)

    def inner_angle(self, r_km: ArrayLike, margin_deg: float = CULL_MARGIN_DEG) -> np.ndarray:
        """Geocentric angle (rad) within which a satellite at ``r_km`` is certainly in the
        zone (sufficient condition; the mirror image of :meth:`outer_angle`)."""
        _, r_hi, _, d_hi = self.bounds
        e = self.min_elevation_deg + self.tilt_deg
        return geometry.coverage_angle(r_km, e, r_hi) - d_hi - math.radians(margin_deg)

    @cached_property
    def unit(self) -> np.ndarray:
        """Geocentric unit vector of the centre (ITRS), ``(3,)``."""
        return self.centre_itrs / np.linalg.norm(self.centre_itrs)

    def worst_elevation(self, r_itrs: np.ndarray) -> np.ndarray:
        """Lowest elevation (deg) of ITRS points ``r_itrs`` (..., 3) km over the zone disk."""
        r = np.asarray(r_itrs, dtype=float)
        flat = r.reshape(-1, 3)
        zi = np.zeros(len(flat), dtype=np.intp)
        points, ups = self.ring
        out = worst_elevation(flat, zi, self.centre_itrs[None], self.basis[None],
                              points[None], ups[None])
        return out.reshape(r.shape[:-1])

    def contains(self, r_itrs: np.ndarray) -> np.ndarray:
        """Whether ITRS points ``r_itrs`` (..., 3) km are in the zone (bool array)."""
        return self.worst_elevation(r_itrs) >= self.min_elevation_deg

    def look(self, r_itrs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Elevation (deg), azimuth (deg) and range (km) of ``r_itrs`` seen from the centre."""
        return geometry.enu_look(np.asarray(r_itrs, dtype=float) - self.centre_itrs, self.basis)


def worst_elevation(
    r_itrs: np.ndarray,
    zone_index: np.ndarray,
    centres: np.ndarray,
    bases: np.ndarray,
    rings: np.ndarray,
    ring_ups: np.ndarray,
) -> np.ndarray:
    """Lowest elevation (deg) over a zone disk for satellite/zone pairs.

    ``r_itrs`` (P, 3) km are satellite positions, ``zone_index`` (P,) picks the
    zone of each pair from the stacked zone arrays: ``centres`` (Z, 3),
    ``bases`` (Z, 3, 3), ``rings`` and ``ring_ups`` (Z, K, 3).
    """
    k_count = rings.shape[1]
    d = r_itrs - centres[zone_index]
    enu = np.einsum("pj,pij->pi", d, bases[zone_index])
    az = np.arctan2(enu[:, 0], enu[:, 1])
    # The farthest edge point lies opposite the satellite's azimuth; the nearest
    # ring point to it is at most half a ring step away in bearing, which moves
    # it closer to the satellite only to second order (< 1 m for 100 km zones).
    k = np.rint((az / (2 * math.pi) + 0.5) * k_count).astype(np.intp) % k_count
    dd = r_itrs - rings[zone_index, k]
    up = np.einsum("pj,pj->p", dd, ring_ups[zone_index, k])
    dist = np.sqrt(np.einsum("pj,pj->p", dd, dd))
    with np.errstate(invalid="ignore"):
        return np.degrees(np.arcsin(up / dist))


def parse_leozone(
    value: str,
    radius: str | float | None = None,
    min_elevation: str | float | None = None,
    *,
    source: str = "label leozone",
    radius_source: str = "label radius",
    elevation_source: str = "label min-elevation",
) -> Zone:
    """A :class:`Zone` from a ``leozone`` label value ``<lat>_<lon>`` (degrees).

    ``radius`` (km, default 0) and ``min_elevation`` (deg, default 25) may be
    strings from other labels. Bad values raise :class:`ConfigError` naming the
    label (``source``) and the value.
    """
    text = str(value).strip()
    parts = text.split("_")
    example = "expected <lat>_<lon> in degrees, e.g. 37.7749_-122.4194"
    if len(parts) != 2:
        raise ConfigError(example, source=source, field=text)
    try:
        lat, lon = (float(p) for p in parts)
    except ValueError:
        raise ConfigError(example, source=source, field=text) from None
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise ConfigError(example, source=source, field=text)
    rad = _number(radius, 0.0, radius_source, "radius must be a number of km")
    elev = _number(min_elevation, 25.0, elevation_source,
                   "minimum elevation must be a number of degrees")
    try:
        return Zone(lat, lon, rad, elev)
    except ConfigError as err:
        src = {"radius_km": radius_source, "min_elevation_deg": elevation_source}.get(
            (err.field or "").split(" ")[0], source)
        field = text if src == source else str(radius if src == radius_source else min_elevation)
        raise ConfigError(err.message, source=src, field=field) from None


def _number(value: str | float | None, default: float, source: str, message: str) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(message, source=source, field=str(value)) from None
    if not math.isfinite(number):
        raise ConfigError(message, source=source, field=str(value))
    return number


#: Cell size (deg) of the latitude/longitude grid :class:`ZoneSet` bins satellites on.
CELL_DEG = 1.0


class ZoneSet:
    """Decide, tick by tick, which satellites of a constellation are in each of many zones.

    One tick (:meth:`pairs`, :meth:`in_zones`):

    1. propagates every satellite once (``SatrecArray.sgp4``, TEME);
    2. bins each satellite by the geocentric latitude and Earth-fixed longitude
       of its direction (latitude needs no rotation; longitude is the TEME
       longitude minus the sidereal angle) on a :data:`CELL_DEG` grid;
    3. looks up, per cell, the zones whose outer cone (:meth:`Zone.outer_angle`
       at the constellation's largest radius) reaches the cell: a table built
       once, in the Earth-fixed frame where zones do not move;
    4. settles those few satellite/zone pairs with the satellite's own distance
       by the inner and outer cones, and the rest (near a zone's edge) by the
       exact worst-point elevation.

    The work per tick is proportional to the satellites plus the candidate
    pairs, not to satellites x zones. The answer is the same as
    :meth:`Zone.contains` on every satellite.

    For ticks that come in sequences (the emulator's and the scheduler's
    clock), :class:`krios.orbits.zonesequence.ZoneSequence` (built from a ZoneSet) is a stateful engine
    that gives the same answers while propagating only the satellites whose
    decision could have changed since they were last propagated.
    """

    def __init__(self, constellation: Constellation, zones: Sequence[Zone]):
        self.constellation = constellation
        self.zones = list(zones)
        z = len(self.zones)
        _, r_max = constellation.radius_range_km
        self._units = np.stack([zone.unit for zone in self.zones]) if z else np.zeros((0, 3))
        self._centres = np.stack([zone.centre_itrs for zone in self.zones]) if z else None
        self._bases = np.stack([zone.basis for zone in self.zones]) if z else None
        self._rings = np.stack([zone.ring[0] for zone in self.zones]) if z else None
        self._ring_ups = np.stack([zone.ring[1] for zone in self.zones]) if z else None
        self._min_elev = np.array([zone.min_elevation_deg for zone in self.zones])
        # Per zone: R cos(e) and the angle k of the cone "psi <= acos(R cos e / r) - k".
        bounds = np.array([zone.bounds for zone in self.zones]).reshape(-1, 4)
        tilt = np.array([zone.tilt_deg for zone in self.zones])
        e_lo = np.radians(np.maximum(self._min_elev - tilt, 0.0))
        e_hi = np.radians(self._min_elev + tilt)
        margin = math.radians(CULL_MARGIN_DEG)
        self._outer = _Cone(bounds[:, 0] * np.cos(e_lo), e_lo + bounds[:, 2] - margin)
        self._inner = _Cone(bounds[:, 1] * np.cos(e_hi), e_hi + bounds[:, 3] + margin)
        self._outer_max = np.array([float(zone.outer_angle(r_max)) for zone in self.zones])
        self._build_cells()
        self._jd = np.zeros(1)
        self._fr = np.zeros(1)
        self._zone_bounds = np.arange(z + 1)

    def _build_cells(self) -> None:
        """The cell grid and the CSR table cell -> zones whose outer cone reaches the cell."""
        step = math.radians(CELL_DEG)
        self._n_lat = round(180.0 / CELL_DEG)
        self._n_lon = round(360.0 / CELL_DEG)
        lat = -math.pi / 2 + step * (np.arange(self._n_lat) + 0.5)
        lon = step * (np.arange(self._n_lon) + 0.5)
        clat, clon = np.meshgrid(lat, lon, indexing="ij")
        self._cell_dirs = np.stack([np.cos(clat) * np.cos(clon), np.cos(clat) * np.sin(clon),
                                    np.sin(clat)], axis=-1).reshape(-1, 3)
        # No point of a cell is farther than this from its centre direction.
        self._half_diag = math.hypot(step / 2, step / 2) * 1.01
        self._tables: dict[float, tuple[np.ndarray, np.ndarray]] = {}
        self._table = self.cell_table(0.0)

    def cell_table(self, widen_deg: float) -> tuple[np.ndarray, np.ndarray]:
        """CSR table ``(ptr, zone)``: per grid cell, the zones whose outer cone (at the
        constellation's largest radius) widened by ``widen_deg`` reaches some point of
        the cell (cached per ``widen_deg``)."""
        key = float(widen_deg)
        if key in self._tables:
            return self._tables[key]
        cells, zones = [], []
        for k, angle in enumerate(self._outer_max):
            if angle < 0:
                continue  # never served
            reach = angle + math.radians(key) + self._half_diag
            near = np.flatnonzero(self._cell_dirs @ self._units[k] >= math.cos(min(reach, math.pi)))
            cells.append(near)
            zones.append(np.full(len(near), k, dtype=np.intp))
        cell = np.concatenate(cells) if cells else np.empty(0, dtype=np.intp)
        zone = np.concatenate(zones) if zones else np.empty(0, dtype=np.intp)
        order = np.argsort(cell, kind="stable")
        table = (np.searchsorted(cell[order], np.arange(self._n_lat * self._n_lon + 1)), zone[order])
        self._tables[key] = table
        return table

    def in_zones(self, t: float) -> list[np.ndarray]:
        """For each zone, the sorted ``sat_id`` s in it at unix time ``t``."""
        zi, si = self.pairs(t)
        return self.split(zi, si)

    def split(self, zi: np.ndarray, si: np.ndarray) -> list[np.ndarray]:
        """Pairs sorted by zone (as :meth:`pairs` returns them) -> one ``sat_id`` array per zone."""
        cuts = np.searchsorted(zi, self._zone_bounds)
        return [si[cuts[k]:cuts[k + 1]] for k in range(len(self.zones))]

    def pairs(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """``(zone_index, sat_id)`` of every satellite/zone pair in the zone at unix time ``t``,
        sorted by zone then satellite."""
        days, secs = divmod(float(t), geometry.DAY_S)
        self._jd[0] = geometry.UNIX0_JD + days
        self._fr[0] = secs / geometry.DAY_S
        _, r, _ = self.constellation.array.sgp4(self._jd, self._fr)
        r2 = r[:, 0, :]
        theta = float(geometry.gmst_angle(t))
        cand = self.candidates(r2, theta)
        inside = self.settle(r2, theta, cand)
        zi, si = cand.zone[inside], cand.sat[inside]
        order = np.argsort(zi, kind="stable")
        return zi[order], si[order]

    # -- the two steps of a tick, shared with krios.orbits.zonesequence -------------------
    def candidates(self, r_teme: np.ndarray, theta: float,
                   table: tuple[np.ndarray, np.ndarray] | None = None) -> Candidates:
        """Candidate pairs of TEME positions ``r_teme`` (M, 3) km at sidereal angle ``theta``
        (rad): the zones listed for each position's cell in ``table`` (default: the outer
        cones, :meth:`cell_table` ``(0)``). ``sat`` indexes ``r_teme``'s rows and is sorted
        (pairs come grouped by row). A wider table only adds pairs :meth:`settle` finds out."""
        ptr, table_zone = self._table if table is None else table
        dist = np.sqrt(r_teme[:, 0] * r_teme[:, 0] + r_teme[:, 1] * r_teme[:, 1]
                       + r_teme[:, 2] * r_teme[:, 2])
        with np.errstate(invalid="ignore"):
            lat = np.arcsin(r_teme[:, 2] / dist)
            lon = np.arctan2(r_teme[:, 1], r_teme[:, 0]) - theta
        step = math.radians(CELL_DEG)
        valid = np.isfinite(dist)
        if not valid.all():
            lat = np.where(valid, lat, 0.0)
            lon = np.where(valid, lon, 0.0)
        i = np.clip(((lat + math.pi / 2) / step).astype(np.intp), 0, self._n_lat - 1)
        j = ((lon % (2 * math.pi)) / step).astype(np.intp) % self._n_lon
        cell = i * self._n_lon + j
        first = ptr[cell]
        counts = np.where(valid, ptr[cell + 1] - first, 0)
        total = int(counts.sum())
        si = np.repeat(np.arange(len(r_teme)), counts)
        # Index into the table: each satellite's run of entries for its cell.
        ends = np.cumsum(counts)
        entry = np.arange(total) + np.repeat(first - (ends - counts), counts)
        zi = table_zone[entry]
        # The zones' centre directions in TEME: rot_z(theta) applied to the ITRS unit vectors.
        c, s = math.cos(theta), math.sin(theta)
        u = self._units
        ux, uy, uz = (c * u[:, 0] - s * u[:, 1])[zi], (s * u[:, 0] + c * u[:, 1])[zi], u[:, 2][zi]
        rp = r_teme[si]
        d = dist[si]
        cos_psi = (rp[:, 0] * ux + rp[:, 1] * uy + rp[:, 2] * uz) / d
        return Candidates(zi, si, cos_psi, d, dist, cell, valid)

    def settle(self, r_teme: np.ndarray, theta: float, cand: Candidates) -> np.ndarray:
        """Which candidate pairs are in the zone (bool per pair): certainly in inside the
        inner cone, certainly out outside the outer cone, else by the exact worst-point
        elevation (in ITRS)."""
        zi, d = cand.zone, cand.dist
        sure = self._inner.within(cand.cos_psi, zi, d)
        maybe = self._outer.within(cand.cos_psi, zi, d)
        unsure = np.flatnonzero(maybe & ~sure)
        if len(unsure):
            r_itrs = _rotate(r_teme[cand.sat[unsure]], theta)
            elev = worst_elevation(r_itrs, zi[unsure], self._centres, self._bases,
                                   self._rings, self._ring_ups)
            sure[unsure[elev >= self._min_elev[zi[unsure]]]] = True
        return sure


@dataclass
class Candidates:
    """Candidate satellite/zone pairs of one tick (:meth:`ZoneSet.candidates`).

    Per pair: ``zone`` index, ``sat`` row of the positions, ``cos_psi`` (cosine of
    the geocentric angle between satellite and zone centre), ``dist`` (km, the
    satellite's geocentric distance). Per position row: ``radius`` (km), ``cell``
    (grid cell index) and ``valid`` (SGP4 gave a position).
    """

    zone: np.ndarray
    sat: np.ndarray
    cos_psi: np.ndarray
    dist: np.ndarray
    radius: np.ndarray
    cell: np.ndarray
    valid: np.ndarray


class _Cone:
    """Per-zone cones ``psi <= acos(c / r) - k`` (``c`` km, ``k`` rad) about zone centres."""

    def __init__(self, c: np.ndarray, k: np.ndarray):
        self.c = c
        self.k = k
        self.cos_k = np.cos(k)
        self.sin_k = np.sin(k)

    def reach(self, zi: np.ndarray, r_km: np.ndarray) -> np.ndarray:
        """Cosine of the half-angle, ``cos(acos(c / r) - k) = c cos k + sqrt(1 - c^2) sin k``
        (``c`` here ``min(c / r, 1)``), without an arccos."""
        c = np.minimum(self.c[zi] / r_km, 1.0)
        return c * self.cos_k[zi] + np.sqrt(1.0 - c * c) * self.sin_k[zi]

    def possible(self, zi: np.ndarray, r_km: np.ndarray) -> np.ndarray:
        """Whether the cone is not empty: ``acos(c / r) >= k`` (both in [0, pi])."""
        c = np.minimum(self.c[zi] / r_km, 1.0)
        return (self.k[zi] <= 0.0) | (c <= self.cos_k[zi])

    def within(self, cos_psi: np.ndarray, zi: np.ndarray, r_km: np.ndarray) -> np.ndarray:
        """Whether ``psi <= acos(c / r) - k`` for angles in [0, pi]: ``cos psi`` at least
        :meth:`reach`, in a cone that is not empty."""
        return self.possible(zi, r_km) & (cos_psi >= self.reach(zi, r_km))


def _rotate(r_teme: np.ndarray, theta: float) -> np.ndarray:
    """TEME (P, 3) -> ITRS (:func:`krios.orbits.geometry.rotate_teme_to_itrs`)."""
    return geometry.rotate_teme_to_itrs(r_teme, theta)

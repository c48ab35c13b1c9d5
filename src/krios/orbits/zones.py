"""Ground zones and the in-zone rule.

A :class:`Zone` is a WGS84 ground point, a radius (km) and a minimum elevation
(deg). A satellite is *in the zone* when it is at least ``min_elevation_deg``
above the local horizon as seen from **every** point of the zone disk (for
radius 0, from the centre).

Geometry (``docs/guide/orbits.md`` explains it with the original's intent):

- The disk is the set of ground points whose great-circle distance from the
  centre, on a sphere of the Earth's mean radius, is at most ``radius_km``.
  Its edge is laid out once as :data:`RING_POINTS` WGS84 points.
- Elevation falls monotonically with ground distance from the sub-satellite
  point, so the worst point of the disk is the edge point farthest from the
  sub-satellite point: the one opposite the satellite's azimuth as seen from
  the centre. Its elevation is computed exactly, in the WGS84 east-north-up
  frame of that edge point (:meth:`Zone.worst_elevation`).
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
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from krios.config.leozone import is_label_value, leozone_coordinates, leozone_label
from krios.errors import ConfigError
from krios.orbits import geometry

__all__ = ["Zone", "is_label_value", "leozone_label", "parse_leozone"]

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
        """The ``leozone`` label value of the centre (:func:`leozone_label`)."""
        return leozone_label(self.lat_deg, self.lon_deg)

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
        """Lowest elevation (deg) of ITRS points ``r_itrs`` (..., 3) km over the zone disk.

        The farthest edge point lies opposite the satellite's azimuth from the centre;
        the nearest ring point to it is at most half a ring step away in bearing, which
        moves it closer to the satellite only to second order (< 1 m for 100 km zones).
        Its elevation is computed in that edge point's WGS84 east-north-up frame. Every
        in-zone decision goes through here, so they all agree to the bit.
        """
        r = np.asarray(r_itrs, dtype=float)
        flat = r.reshape(-1, 3)
        points, ups = self.ring
        k_count = len(points)
        enu = (flat - self.centre_itrs) @ self.basis.T
        az = np.arctan2(enu[:, 0], enu[:, 1])
        k = np.rint((az / (2 * math.pi) + 0.5) * k_count).astype(np.intp) % k_count
        dd = flat - points[k]
        up = np.einsum("pj,pj->p", dd, ups[k])
        dist = np.sqrt(np.einsum("pj,pj->p", dd, dd))
        with np.errstate(invalid="ignore"):
            return np.degrees(np.arcsin(up / dist)).reshape(r.shape[:-1])

    def contains(self, r_itrs: np.ndarray) -> np.ndarray:
        """Whether ITRS points ``r_itrs`` (..., 3) km are in the zone (bool array)."""
        return self.worst_elevation(r_itrs) >= self.min_elevation_deg

    def look(self, r_itrs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Elevation (deg), azimuth (deg) and range (km) of ``r_itrs`` seen from the centre."""
        return geometry.enu_look(np.asarray(r_itrs, dtype=float) - self.centre_itrs, self.basis)


def parse_leozone(
    value: str,
    radius: str | float | None = None,
    min_elevation: str | float | None = None,
    *,
    source: str = "label leozone",
    radius_source: str = "label radius",
    elevation_source: str = "label min-elevation",
) -> Zone:
    """A :class:`Zone` from a ``leozone`` label value (degrees): the seed's ``<lat>_<lon>``
    (``37.7749_-122.4194``) or the hemisphere form ``s33.8688_e151.2093`` of
    :func:`leozone_label` (``n``/``s``, ``e``/``w``; either case).

    ``radius`` (km, default 0) and ``min_elevation`` (deg, default 25) may be
    strings from other labels. Bad values raise :class:`ConfigError` naming the
    label (``source``) and the value.
    """
    text = str(value).strip()
    example = "expected <lat>_<lon> in degrees, e.g. 37.7749_-122.4194 or s33.8688_e151.2093"
    try:
        lat, lon = leozone_coordinates(text)
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

"""Time scales, Earth rotation and look angles, all through skyfield.

Frames
------
SGP4 gives positions in TEME (True Equator, Mean Equinox). The Earth-fixed
frame here is skyfield's ITRS without polar motion (skyfield's builtin
timescale has no polar-motion table), reached from TEME by one rotation about
the z axis through the Greenwich Mean Sidereal Time of 1982 evaluated at UT1
(:func:`skyfield.sgp4lib.theta_GMST1982`, AIAA 2006-6753 Appendix C). This is
exactly the rotation skyfield applies for ``(sat - topos).at(t).altaz()``:
its TEME->GCRS rotation and its GCRS->ITRS rotation cancel to ``rot_z(-theta)``.

Time arguments match skyfield's ``EarthSatellite``: SGP4 is called with the
UTC Julian date (the TLE epoch is UTC), and the sidereal angle with UT1
(UTC + DUT1 from skyfield's builtin tables), so no file is downloaded.

Ground points are WGS84 geodetic (latitude, longitude in degrees, height in
km); the local frame is east-north-up about the geodetic normal, as skyfield's
``wgs84.latlon`` uses.
"""

from __future__ import annotations

import bisect
import functools
import math

import numpy as np
from numpy.typing import ArrayLike
from skyfield.api import load, wgs84
from skyfield.sgp4lib import theta_GMST1982
from skyfield.timelib import Time, Timescale

DAY_S = 86400.0
#: Julian date of the unix epoch, 1970-01-01 00:00 UTC.
UNIX0_JD = 2440587.5
#: WGS84 equatorial and polar radii, km (from skyfield's ellipsoid).
WGS84_A_KM = float(wgs84.radius.km)
WGS84_B_KM = WGS84_A_KM * (1.0 - 1.0 / wgs84.inverse_flattening)
#: Earth's mean radius (IUGG), km: used to lay out zone disks on the ground.
MEAN_RADIUS_KM = 6371.0088


@functools.cache
def timescale() -> Timescale:
    """skyfield's builtin timescale (leap seconds and Delta T shipped with skyfield)."""
    return load.timescale(builtin=True)


def skyfield_time(t: ArrayLike) -> Time:
    """A skyfield ``Time`` for unix seconds ``t`` (UTC, scalar or array)."""
    days, secs = np.divmod(np.asarray(t, dtype=float), DAY_S)
    return timescale().utc(1970, 1, 1 + days, 0, 0, secs)


def jd_utc(t: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``(jd, fraction)`` of unix seconds ``t`` as SGP4 takes them (UTC Julian date in two parts)."""
    days, secs = np.divmod(np.asarray(t, dtype=float), DAY_S)
    return UNIX0_JD + days, secs / DAY_S


def gmst_angle(t: ArrayLike) -> np.ndarray:
    """The TEME->ITRS rotation angle (rad) at unix seconds ``t``: GMST 1982 at UT1.

    The same arithmetic as ``theta_GMST1982(st.whole, st.ut1_fraction)`` for
    ``st = skyfield_time(t)`` (bit for bit: ``tests/test_orbits_geometry.py``),
    without building a skyfield ``Time``, which costs ~50 us even for one
    instant: TAI-UTC is constant over a UTC day and taken from skyfield once
    per day (:func:`tai_minus_utc`), Delta T from the timescale's own
    ``delta_t_function``. A scalar ``t`` gives a 0-d array (recent instants
    are cached, as the trackers ask about one instant several times); ``nan``
    where ``t`` is not finite.
    """
    arr = np.asarray(t, dtype=float)
    if arr.ndim == 0:
        return np.asarray(_gmst_scalar(float(arr)))
    if arr.size <= _SMALL:  # the scalar path (the same bits) costs less than numpy's set-up
        return np.array([_gmst_scalar(x) for x in arr.ravel().tolist()]).reshape(arr.shape)
    finite = np.isfinite(arr)
    days, secs = np.divmod(np.where(finite, arr, 0.0), DAY_S)
    uniq, inverse = np.unique(days, return_inverse=True)
    leap = np.array([tai_minus_utc(d) for d in uniq.tolist()])[inverse].reshape(days.shape)
    # Skyfield's Timescale._utc: whole TAI seconds since JD 0 at the UTC midnight
    # (exact in float64), then the day's seconds split into whole and fraction.
    seconds = (UNIX0_JD + days) * DAY_S + leap
    whole_s, sfr = np.divmod(secs, 1.0)
    whole, fraction = np.divmod(seconds + whole_s, DAY_S)
    tt_fraction = (fraction + sfr) / DAY_S + _TT_MINUS_TAI_DAYS
    delta_t = timescale().delta_t_function(whole + tt_fraction)
    theta, _ = theta_GMST1982(whole, tt_fraction - delta_t / DAY_S)
    return np.where(finite, theta, np.nan)


#: Arrays up to this size take :func:`gmst_angle`'s scalar path.
_SMALL = 16
#: TT - TAI in days, as skyfield adds it.
_TT_MINUS_TAI_DAYS = 32.184 / DAY_S


@functools.lru_cache(maxsize=256)
def rotation_cos_sin(t: float) -> tuple[float, float]:
    """``cos`` and ``sin`` of :func:`gmst_angle` at one instant ``t`` (unix s), computed by numpy
    as :func:`rotate_teme_to_itrs` computes them (the same bits), as Python floats (cached:
    a handover decision asks about a few satellites at one instant, several times)."""
    theta = gmst_angle(t)
    return float(np.cos(theta)), float(np.sin(theta))


@functools.lru_cache(maxsize=256)
def _gmst_scalar(t: float) -> float:
    """:func:`gmst_angle` of one instant, in Python floats (the same operations)."""
    if not math.isfinite(t):
        return math.nan
    days, secs = divmod(t, DAY_S)
    seconds = (UNIX0_JD + days) * DAY_S + tai_minus_utc(days)
    whole_s, sfr = divmod(secs, 1.0)
    whole, fraction = divmod(seconds + whole_s, DAY_S)
    tt_fraction = (fraction + sfr) / DAY_S + _TT_MINUS_TAI_DAYS
    delta_t = _delta_t_scalar(whole + tt_fraction)
    theta, _ = theta_GMST1982(whole, tt_fraction - delta_t / DAY_S)
    return float(theta)


@functools.cache
def _delta_t_table() -> tuple[list[float], list[float]] | None:
    """The timescale's daily Delta T table (TT Julian dates, seconds) as lists, if it has one."""
    f = timescale().delta_t_function
    xs, ys = getattr(f, "table_tt", None), getattr(f, "table_delta_t", None)
    if xs is None or ys is None or len(xs) != len(ys) or len(xs) < 2:
        return None
    return [float(x) for x in xs], [float(y) for y in ys]


def _delta_t_scalar(tt: float) -> float:
    """The timescale's Delta T (s) at TT Julian date ``tt``: inside its daily table the
    linear interpolation ``numpy.interp`` does (the same operations, without numpy's
    per-call overhead); elsewhere the timescale's own function."""
    table = _delta_t_table()
    if table is not None:
        xs, ys = table
        j = bisect.bisect_right(xs, tt) - 1
        if 0 <= j < len(xs) - 1:
            if xs[j] == tt:
                return ys[j]
            slope = (ys[j + 1] - ys[j]) / (xs[j + 1] - xs[j])
            return slope * (tt - xs[j]) + ys[j]
    return float(timescale().delta_t_function(tt))


@functools.lru_cache(maxsize=4096)
def tai_minus_utc(day: float) -> float:
    """TAI - UTC (s, whole) during unix day ``day`` (``floor(t / 86400)``), from
    skyfield's builtin leap-second table. Leap seconds are inserted at the end of a
    UTC day, so one value holds for the whole day."""
    st = timescale().utc(1970, 1, 1 + day)
    return float(round((float(st.tai) - (UNIX0_JD + day)) * DAY_S))


def rotate_teme_to_itrs(r_teme: np.ndarray, theta: ArrayLike) -> np.ndarray:
    """TEME vectors ``(..., 3)`` -> ITRS: ``rot_z(-theta)`` (:func:`rot_z_matrix`) written
    out, with ``theta`` (rad, :func:`gmst_angle`) broadcast against ``r_teme[..., 0]``.

    This is the rotation skyfield's ``TEME_to_ITRF`` applies without polar motion.
    Each vector's result depends only on that vector and its angle, not on how many
    are rotated together, so every path (one satellite, a subset, the whole
    constellation, a grid of times) gives the same bits.
    """
    r = np.asarray(r_teme, dtype=float)
    c, s = np.cos(theta), np.sin(theta)
    x, y = r[..., 0], r[..., 1]
    out = np.empty(np.broadcast_shapes(r.shape, (*np.shape(c), 3)))
    out[..., 0] = c * x + s * y
    out[..., 1] = -s * x + c * y
    out[..., 2] = r[..., 2]
    return out


def velocity_teme_to_itrs(v_teme: np.ndarray, r_itrs: np.ndarray, t: ArrayLike) -> np.ndarray:
    """TEME velocities ``(..., 3)`` km/s -> ITRS km/s at unix times ``t`` (broadcast against
    ``v_teme[..., 0]``), given the ITRS positions ``r_itrs`` (km) of the same states: the
    rotation of :func:`rotate_teme_to_itrs` plus the Earth's rotation removed
    (``v = R v_teme - omega z x r``, ``omega`` the GMST 1982 rate), as skyfield's
    ``TEME_to_ITRF`` does."""
    theta = gmst_angle(t)
    v = rotate_teme_to_itrs(v_teme, theta)
    st = skyfield_time(np.asarray(t, dtype=float))
    _, theta_dot = theta_GMST1982(st.whole, st.ut1_fraction)
    omega = np.asarray(theta_dot, dtype=float) / DAY_S  # rad/s
    v[..., 0] += omega * r_itrs[..., 1]
    v[..., 1] -= omega * r_itrs[..., 0]
    return v


def rot_z_matrix(angle: float) -> np.ndarray:
    """``rot_z(-angle)`` as a (3, 3) array: ``r_itrs = M @ r_teme`` for ``angle = gmst``."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def ground_itrs(lat_deg: ArrayLike, lon_deg: ArrayLike, height_km: ArrayLike = 0.0) -> np.ndarray:
    """ITRS position (km), shape ``(..., 3)``, of WGS84 geodetic points (skyfield's ``wgs84``)."""
    lat = np.asarray(lat_deg, dtype=float)
    lon = np.asarray(lon_deg, dtype=float)
    h = np.asarray(height_km, dtype=float) * 1000.0
    xyz = wgs84.latlon(lat, lon, elevation_m=h).itrs_xyz.km
    return np.moveaxis(np.asarray(xyz, dtype=float), 0, -1)


def enu_basis(lat_deg: ArrayLike, lon_deg: ArrayLike) -> np.ndarray:
    """Local east, north, up unit vectors (ITRS), shape ``(..., 3, 3)`` (rows e, n, u)."""
    lat = np.radians(np.asarray(lat_deg, dtype=float))
    lon = np.radians(np.asarray(lon_deg, dtype=float))
    sl, cl, so, co = np.sin(lat), np.cos(lat), np.sin(lon), np.cos(lon)
    zero = np.zeros_like(sl)
    east = np.stack([-so, co, zero], axis=-1)
    north = np.stack([-sl * co, -sl * so, cl], axis=-1)
    up = np.stack([cl * co, cl * so, sl], axis=-1)
    return np.stack([east, north, up], axis=-2)


def look_angles(
    r_itrs: np.ndarray, lat_deg: float, lon_deg: float, height_km: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Elevation (deg), azimuth (deg, from north through east) and range (km) of ITRS points.

    ``r_itrs`` has shape ``(..., 3)`` in km; the observer is the WGS84 point
    (``lat_deg``, ``lon_deg``, ``height_km``). Matches skyfield's
    ``(sat - wgs84.latlon(...)).at(t).altaz()``.
    """
    origin = ground_itrs(lat_deg, lon_deg, height_km)
    basis = enu_basis(lat_deg, lon_deg)
    return enu_look(np.asarray(r_itrs, dtype=float) - origin, basis)


def enu_look(d_itrs: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Look angles of offset vectors ``d_itrs`` (..., 3) km in a local ``basis`` (rows e, n, u)."""
    enu, elev, rng = _enu_elevation_range(d_itrs, basis)
    az = np.degrees(np.arctan2(enu[..., 0], enu[..., 1])) % 360.0
    return elev, az, rng


def enu_elevation_range(d_itrs: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Elevation (deg) and range (km) of :func:`enu_look` (the same bits), without the azimuth."""
    _, elev, rng = _enu_elevation_range(d_itrs, basis)
    return elev, rng


def _enu_elevation_range(d_itrs: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(enu, elevation deg, range km)`` of offset vectors ``d_itrs`` (..., 3) km in ``basis``."""
    enu = d_itrs @ np.swapaxes(basis, -1, -2) if basis.ndim == 2 else np.einsum(
        "...j,...ij->...i", d_itrs, basis)
    rng = np.sqrt(np.einsum("...i,...i->...", enu, enu))
    with np.errstate(invalid="ignore", divide="ignore"):
        elev = np.degrees(np.arcsin(enu[..., 2] / rng))
    return enu, elev, rng


def coverage_angle(r_km: ArrayLike, min_elevation_deg: ArrayLike, ground_radius_km: ArrayLike) -> np.ndarray:
    """Earth central angle (rad) from the sub-satellite point within which a satellite
    at geocentric distance ``r_km`` is at least ``min_elevation_deg`` high, for a
    spherical Earth of radius ``ground_radius_km``: ``acos(R cos e / r) - e``.

    Grows with ``r`` and shrinks with ``R`` and ``e``.
    """
    e = np.radians(np.asarray(min_elevation_deg, dtype=float))
    ratio = np.clip(np.asarray(ground_radius_km, dtype=float) * np.cos(e) / np.asarray(r_km), -1, 1)
    return np.arccos(ratio) - e

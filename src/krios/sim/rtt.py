"""Client RTT of many satellite positions under :class:`krios.latency.LatencyModel`.

The model takes the client point of the zone (its centre, then the zone's
edge ring in bearing order: ``model.ground``) farthest from the satellite,
then :func:`krios.latency.rtt_ms`. :meth:`LatencyModel.client_rtt_ms` measures
the distance to all 721 points of every sample, which for a simulated day of
1-s samples takes seconds per zone and policy. This module finds the *same*
farthest point faster: the distance from an outside point to the points of a
circle rises and falls once around it, so the farthest of every
:data:`STRIDE`-th ring point is within ``STRIDE`` points of the farthest one;
those neighbours (and the centre) are then compared exactly, and the model's
own :func:`~krios.latency.rtt_ms` is applied to the distance.
``tests/test_simulation_rtt.py`` checks the result against ``client_rtt_ms``.
"""

from __future__ import annotations

import numpy as np

from krios.latency import LatencyModel, rtt_ms

#: Coarse spacing (ring points) of the first search.
STRIDE = 8
#: Satellite positions per chunk (bounds the scratch arrays).
CHUNK = 50_000


def client_range_km(model: LatencyModel, r_itrs: np.ndarray) -> np.ndarray:
    """Distance (km) from the farthest client point of ``model`` to each ITRS position ``(S, 3)`` km."""
    r = np.asarray(r_itrs, dtype=float).reshape(-1, 3)
    ground = np.asarray(model.ground, dtype=float)
    if len(ground) <= 4 * STRIDE:
        return model.client_range_km(r)
    centre, ring = ground[0], ground[1:]
    n = len(ring)
    g2 = np.einsum("ij,ij->i", ring, ring)
    coarse = np.arange(0, n, STRIDE)
    window = np.arange(-STRIDE, STRIDE + 1)
    out = np.empty(len(r))
    for c0 in range(0, len(r), CHUNK):
        rc = r[c0:c0 + CHUNK]
        # |r - g|^2 = |r|^2 + |g|^2 - 2 r.g: only |g|^2 - 2 r.g depends on the ring point.
        score = g2[coarse] - 2.0 * (rc @ ring[coarse].T)
        best = coarse[np.argmax(score, axis=1)]
        idx = (best[:, None] + window) % n  # (S, W) ring indices around the coarse maximum
        score = g2[idx] - 2.0 * np.einsum("sj,swj->sw", rc, ring[idx])
        far = idx[np.arange(len(rc)), np.argmax(score, axis=1)]
        out[c0:c0 + CHUNK] = np.maximum(np.linalg.norm(rc - ring[far], axis=1),
                                        np.linalg.norm(rc - centre, axis=1))
    return out

def client_rtt_ms(model: LatencyModel, r_itrs: np.ndarray) -> np.ndarray:
    """RTT (ms) of the farthest client of ``model`` to each ITRS position ``(S, 3)`` km."""
    return rtt_ms(client_range_km(model, r_itrs), model.per_hop_ms, model.hop_km)

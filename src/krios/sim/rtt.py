"""Client RTT of many satellite positions under :class:`krios.orbits.rtt.LatencyModel`.

Kept for callers of the simulator's API: the fast farthest-client search that
lived here is now the model's own (:func:`krios.orbits.rtt.farthest_ring_range_km`,
used by :meth:`LatencyModel.client_range_km`), so the simulator, the emulator
and the tests share one implementation.
"""

from __future__ import annotations

import numpy as np

from krios.orbits.rtt import LatencyModel


def client_range_km(model: LatencyModel, r_itrs: np.ndarray) -> np.ndarray:
    """Distance (km) from the farthest client point of ``model`` to each ITRS position ``(S, 3)`` km."""
    return model.client_range_km(np.asarray(r_itrs, dtype=float).reshape(-1, 3))


def client_rtt_ms(model: LatencyModel, r_itrs: np.ndarray) -> np.ndarray:
    """RTT (ms) of the farthest client of ``model`` to each ITRS position ``(S, 3)`` km."""
    return model.client_rtt_ms(np.asarray(r_itrs, dtype=float).reshape(-1, 3))

"""Pieces of the policy simulator (:mod:`krios.sim.run` wires them together).

- :mod:`krios.sim.model`: simulated policies and what a run records.
- :mod:`krios.sim.engine`: the event-driven handover loop (shared decision code).
- :mod:`krios.sim.samples`: satellite positions on the simulation grid, per pass.
- :mod:`krios.sim.metrics`: handovers, availability, overlap, lead time, RTT.
- :mod:`krios.sim.report`, :mod:`krios.sim.plots`: table, JSON, CSV, PNG.
"""

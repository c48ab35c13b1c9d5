"""PNG plots of a simulation: handovers per hour, availability, RTT CDF (matplotlib Agg)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from krios.sim.metrics import CDF_PERCENTS, Metrics


def _grouped_bars(ax, metrics: Sequence[Metrics], key: str, scale: float = 1.0) -> None:
    """Bars per policy, one bar per zone inside each group."""
    policies = list(dict.fromkeys(m.policy for m in metrics))
    zones = list(dict.fromkeys(m.zone for m in metrics))
    width = 0.8 / max(len(zones), 1)
    x = np.arange(len(policies))
    for i, zone in enumerate(zones):
        values = [
            next((getattr(m, key) * scale for m in metrics if m.policy == p and m.zone == zone), np.nan)
            for p in policies
        ]
        ax.bar(x + (i - (len(zones) - 1) / 2) * width, values, width, label=zone)
    ax.set_xticks(x, policies)
    if len(zones) > 1:
        ax.legend(fontsize="x-small", ncol=2)


def plot_all(folder: Path, metrics: Sequence[Metrics], cdfs: Mapping[tuple[str, str], list[float]]) -> list[Path]:
    """Write ``handovers_per_hour.png``, ``availability.png`` and ``rtt_cdf.png``; return their paths.

    ``cdfs`` maps ``(zone, policy)`` to RTT values (ms) at
    :data:`~krios.sim.metrics.CDF_PERCENTS`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []

    fig, ax = plt.subplots(figsize=(7, 4))
    _grouped_bars(ax, metrics, "handovers_per_hour")
    ax.set_ylabel("handovers per hour")
    ax.set_title("Handovers per hour by policy")
    paths.append(_save(fig, folder / "handovers_per_hour.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    _grouped_bars(ax, metrics, "availability", scale=100.0)
    low = min((m.availability for m in metrics), default=1.0) * 100.0
    ax.set_ylim(max(0.0, min(low - 0.5, 99.0)), 100.2)
    ax.set_ylabel("availability (%)")
    ax.set_title("Share of time the zone is served")
    paths.append(_save(fig, folder / "availability.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    plotted = False
    for (zone, policy), values in cdfs.items():
        if values:
            label = policy if len({z for z, _p in cdfs}) == 1 else f"{policy} @ {zone}"
            ax.plot(values, CDF_PERCENTS / 100.0, label=label)
            plotted = True
    ax.set_xlabel("client RTT (ms)")
    ax.set_ylabel("CDF")
    ax.set_title("Client RTT while served")
    ax.grid(alpha=0.3)
    if plotted:
        ax.legend(fontsize="x-small")
    else:
        ax.text(0.5, 0.5, "no zone was ever served", ha="center", transform=ax.transAxes)
    paths.append(_save(fig, folder / "rtt_cdf.png"))
    return paths


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""Files a user can open, written from rows of the results store.

:func:`kube_burner_documents` shapes per-pod latency rows as kube-burner's
``podLatencyMeasurement`` documents; :func:`write_jsonl` writes JSON Lines.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from krios.config.times import iso


def kube_burner_documents(
    rows: Iterable[Mapping[str, Any]], *, uuid: str, namespace: str, job: str = "krios-bench"
) -> list[dict[str, Any]]:
    """``podLatencyMeasurement`` documents as kube-burner writes them (plus our extras).

    Keys: ``timestamp`` (ISO 8601 of ``t_submit``), ``schedulingLatency``,
    ``podReadyLatency``, ``deletionLatency`` (ms, int like kube-burner),
    ``metricName``, ``uuid``, ``namespace``, ``podName``, ``nodeName``,
    ``jobName``, and ``schedulerName``/``injectedLatencyMs``/``warmup``.
    """
    docs = []
    for r in rows:
        doc: dict[str, Any] = {
            "timestamp": iso(r["t_submit"]) if r.get("t_submit") else None,
            "metricName": "podLatencyMeasurement",
            "uuid": uuid,
            "namespace": namespace,
            "podName": r.get("pod"),
            "nodeName": r.get("node"),
            "jobName": job,
            "schedulerName": r.get("scheduler"),
            "injectedLatencyMs": r.get("latency_ms"),
            "warmup": bool(r.get("warmup")),
        }
        for key in ("schedulingLatency", "podReadyLatency", "deletionLatency"):
            v = r.get(key)
            doc[key] = round(v) if v is not None else None
        if r.get("error"):
            doc["error"] = r["error"]
        docs.append(doc)
    return docs


def write_jsonl(path: str | Path, docs: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``docs`` as JSON Lines to ``path``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(json.dumps(d, default=str) + "\n" for d in docs))
    return p

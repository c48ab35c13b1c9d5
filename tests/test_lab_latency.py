"""RTTs measured ON the nodes: ``krios latency probe`` per node, ``krios latency assemble``, role krios_latency.

Fast: rows probed between real sockets on loopback addresses (TCP connect:
this machine may have no ``ping`` binary), assembled with ``max``, ``mean``
and ``none``; every bad row (not a row, a node twice or missing, an unknown
target, a negative or NaN RTT, rows of two methods) is one error line naming
the file and the field, with nothing recorded.

Lab: ``krios lab up`` (1 control, 2 workers, 1 client; no Kubernetes on them,
so it is quick), then ``playbooks/latency.yml`` through ansible-runner against
the lab's ``krios.yml``: krios unpacked on every node from the controller's
wheelhouse, ``krios latency probe --method ping`` on each node at once (ICMP
by the nodes' ``ping``), the rows assembled on the controller and published
to the real local control plane (the ``control_plane`` fixture, with Node
objects named as the lab's nodes, so the name check is the real one), and
recorded in a results run. Asserted: a full matrix of real ICMP RTTs,
diagonal 0, every other entry in (0, 5) ms (a bridge on one machine), the
ConfigMap the scheduler reads equal to the recorded document; then the same
with ``krios_latency_method=http`` (every node's ``krios latency serve``,
stopped afterwards). ``krios lab down`` leaves nothing (the fixture checks).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import time
from pathlib import Path

import lab_helpers
import pytest

from krios.cli import main
from krios.errors import ConfigError
from krios.measure import rtt_sources as R

REPO = Path(__file__).resolve().parents[1]
LOOPBACK = [R.Endpoint(f"n{i}", f"127.0.1.{210 + i}", 1) for i in range(3)]  # port 1: closed, answers RST
SUBNET = "10.216.0.0/24"  # not the other lab tests' subnets


def _nodes_file(tmp_path: Path, nodes=LOOPBACK) -> Path:
    path = tmp_path / "nodes.json"
    path.write_text(json.dumps({"nodes": [n.as_json() for n in nodes]}))
    return path


def _row(tmp_path: Path, src: str, rtt: dict, **over) -> Path:
    row = {"kind": R.ROW_KIND, "from": src, "method": "ping", "probe": "icmp", "probes": 5, "unit": "ms",
           "updated": 0.0, "rtt": rtt, "unanswered": [], **over}
    path = tmp_path / f"row-{src}-{len(list(tmp_path.glob('row-*')))}.json"
    path.write_text(json.dumps(row))
    return path


# ----------------------------------------------------------------------------- fast
def test_probe_rows_on_loopback_assemble_into_a_full_matrix(tmp_path, capsys):
    nodes = _nodes_file(tmp_path)
    rows = []
    for n in LOOPBACK:
        out = tmp_path / f"{n.name}.json"
        assert main(["latency", "probe", "--method", "ping", "--probe", "tcp", "--probes", "3", "--nodes", str(nodes),
                     "--from", n.name, "--out", str(out)]) == 0
        row = json.loads(out.read_text())
        assert (row["kind"], row["from"], row["probe"], row["unanswered"]) == (R.ROW_KIND, n.name, "tcp-connect", [])
        assert set(row["rtt"]) == {m.name for m in LOOPBACK} - {n.name}
        rows.append(str(out))
    assert "krios latency probe: n0 -> 2 of 2 nodes, tcp-connect (median of 3)" in capsys.readouterr().err
    db = tmp_path / "r.sqlite"
    doc_file = tmp_path / "doc.json"
    assert main(["latency", "assemble", "--rows", *rows, "--nodes", str(nodes), "--no-publish", "--db", str(db),
                 "--output", str(doc_file)]) == 0
    doc = json.loads(doc_file.read_text())
    assert (doc["source"], doc["method"], doc["probe"], doc["combine"], doc["answered"]) == \
        ("measured", "ping", "tcp-connect", "max", 6)
    names = [n.name for n in LOOPBACK]
    assert all(doc["rtt"][a][a] == 0 and all(0 < doc["rtt"][a][b] < 50 for b in names if b != a) for a in names)
    assert all(doc["rtt"][a][b] == doc["rtt"][b][a] for a in names for b in names)
    with sqlite3.connect(db) as conn:
        kind, status, meta = conn.execute("SELECT kind, status, meta FROM runs").fetchone()
    assert (kind, status) == ("latency", "complete")
    assert json.loads(meta)["latency"]["ping"]["rtt"] == doc["rtt"]  # as `krios latency publish` records


def test_symmetric_max_mean_none_and_a_pair_one_side_answered(tmp_path):
    nodes = _nodes_file(tmp_path)
    rows = [_row(tmp_path, "n0", {"n1": 1.0, "n2": 4.0}), _row(tmp_path, "n1", {"n0": 3.0}),
            _row(tmp_path, "n2", {"n0": 2.0})]
    top = R.assemble_rows(rows, nodes)
    assert top["rtt"]["n0"] == {"n0": 0.0, "n1": 3.0, "n2": 4.0} and top["rtt"]["n1"]["n0"] == 3.0
    assert "n2" not in top["rtt"]["n1"] and top["answered"] == 4  # n1<->n2: neither answered, no RTT known
    mean = R.assemble_rows(rows, nodes, symmetric="mean")
    assert mean["rtt"]["n0"]["n1"] == mean["rtt"]["n1"]["n0"] == 2.0 and mean["rtt"]["n2"]["n0"] == 3.0
    raw = R.assemble_rows(rows, nodes, symmetric="none")
    assert (raw["rtt"]["n0"]["n1"], raw["rtt"]["n1"]["n0"], raw["symmetric"]) == (1.0, 3.0, False)


@pytest.mark.parametrize("case, field, words", [
    ("not a row", "kind", "not a row of `krios latency probe`"),
    ("unknown from", "from", "'nx' is not a node of the nodes file"),
    ("unknown target", "rtt.nx", "unknown node 'nx'"),
    ("negative", "rtt.n1", "not a finite, non-negative RTT (ms): -1"),
    ("nan", "rtt.n1", "not a finite, non-negative RTT (ms): nan"),
    ("bad probes", "probes", "must be an integer >= 1"),
    ("other method", "method", "http but"),
    ("twice", "from", "a second row from n0"),
    ("missing", "nodes[2]", "no row from node n2 among the 2 row files"),
])
def test_bad_rows_get_one_error_naming_file_and_field(tmp_path, capsys, case, field, words):
    nodes = _nodes_file(tmp_path)
    good = {"n0": {"n1": 1.0, "n2": 1.0}, "n1": {"n0": 1.0, "n2": 1.0}, "n2": {"n0": 1.0, "n1": 1.0}}
    rows = {name: _row(tmp_path, name, rtt) for name, rtt in good.items()}
    bad = {
        "not a row": lambda: _row(tmp_path, "n2", good["n2"], kind="matrix"),
        "unknown from": lambda: _row(tmp_path, "nx", good["n2"]),
        "unknown target": lambda: _row(tmp_path, "n2", {**good["n2"], "nx": 1.0}),
        "negative": lambda: _row(tmp_path, "n2", {**good["n2"], "n1": -1}),
        "nan": lambda: _row(tmp_path, "n2", {**good["n2"], "n1": float("nan")}),
        "bad probes": lambda: _row(tmp_path, "n2", good["n2"], probes=0),
        "other method": lambda: _row(tmp_path, "n2", good["n2"], method="http", probe="http-get"),
        "twice": lambda: _row(tmp_path, "n0", good["n0"]),
        "missing": None,
    }[case]
    files = [rows["n0"], rows["n1"]] + ([bad()] if bad else [])
    culprit = str(nodes) if case == "missing" else str(files[-1])
    with pytest.raises(ConfigError) as err:
        R.assemble_rows(files, nodes)
    assert str(err.value).startswith(f"{culprit}: {field}: ") and words in str(err.value), str(err.value)
    db = tmp_path / "r.sqlite"
    assert main(["latency", "assemble", "--rows", *map(str, files), "--nodes", str(nodes), "--no-publish",
                 "--db", str(db)]) != 0
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith(f"krios: error: {culprit}: {field}: ")
    assert not db.exists()  # nothing recorded


def test_probe_cli_errors_are_one_line(tmp_path, capsys):
    nodes = _nodes_file(tmp_path)
    assert main(["latency", "probe", "--method", "ping", "--nodes", str(nodes), "--from", "nx",
                 "--out", str(tmp_path / "r.json")]) != 0
    assert capsys.readouterr().err.strip() == "krios: error: --from: nx: not a node of the nodes file (n0, n1, n2)"
    assert main(["latency", "probe", "--method", "ping", "--probes", "0", "--nodes", str(nodes), "--from", "n0",
                 "--out", str(tmp_path / "r.json")]) != 0
    assert capsys.readouterr().err.strip() == "krios: error: --probes: 0: must be at least 1"
    if not R.icmp_available():  # explicit ICMP where ping cannot send: said so, no crash
        assert main(["latency", "probe", "--method", "ping", "--probe", "icmp", "--nodes", str(nodes),
                     "--from", "n0", "--out", str(tmp_path / "r.json")]) != 0
        assert "--probe: icmp: no ping binary here that may send ICMP echoes" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


# ----------------------------------------------------------------------------- lab
def _lab_reason() -> str | None:
    if os.geteuid() != 0:
        return "the lab's privileged node containers need root"
    if shutil.which("podman") is None:
        return "podman is not installed (tests/test_lab_nodes.py installs it)"
    return None


@pytest.fixture(scope="module")
def lab_state(tmp_path_factory):
    reason = _lab_reason()
    if reason:
        pytest.skip(reason)
    from krios import lab

    name = f"krios-lat{os.getpid() % 10000}"
    state_dir = tmp_path_factory.mktemp("latlab") / "state"
    try:
        yield lab.up(workers=2, clients=1, state_dir=state_dir, subnet=SUBNET, name=name)
    finally:
        lab.down(state_dir)
        left = subprocess.run(["podman", "ps", "-a", "--filter", f"label=krios.lab={name}", "-q"],
                              capture_output=True, text=True).stdout.split()
        assert not left, f"containers left behind: {left}"
        assert not state_dir.exists(), f"{state_dir} left behind"


@pytest.fixture
def lab_nodes_in_cluster(control_plane, lab_state):
    """The lab's k8s_cluster hosts as (unschedulable) Node objects of the real control plane, removed after."""
    from krios.kube.client import as_client, create_or_exists, node_path

    names = [f"{n.hostname}.lab.krios.local" for n in lab_state.nodes if n.role in ("control", "worker")]
    client = as_client(control_plane.api_client())
    for name in names:
        create_or_exists(client, node_path(), {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                                               "spec": {"unschedulable": True}})
    try:
        yield client, names
    finally:
        for name in names:
            client.delete(node_path(name))
        client.api.close()


def _playbook(lab_state, base: Path, **extravars) -> tuple[str, float]:
    t0 = time.monotonic()
    _, out = lab_helpers.run_playbook(base, lab_state.inventory, "playbooks/latency.yml",
                                      {"krios_artifacts_dir": str(base / "artifacts"), **extravars}, timeout=1200)
    return out, time.monotonic() - t0


def _off_diagonal(doc: dict) -> list[float]:
    return [v for a, row in doc["rtt"].items() for b, v in row.items() if a != b]


@pytest.mark.slow
@pytest.mark.lab
@pytest.mark.cluster
@pytest.mark.timeout(1500)
def test_latency_playbook_measures_real_icmp_rtts_between_lab_nodes(lab_state, lab_nodes_in_cluster, control_plane,
                                                                    tmp_path):
    from krios.control.placement import LatencyMatrix
    from krios.kube.client import configmap_path, configmap_value, get_or_none
    from krios.kube.names import LATENCY_CONFIGMAP, LATENCY_KEY, SYSTEM_NAMESPACE
    from krios.results.store import ResultsStore

    client, names = lab_nodes_in_cluster
    db = tmp_path / "results" / "krios.sqlite"
    try:
        out, took = _playbook(lab_state, tmp_path, krios_latency_kubeconfig=str(control_plane.kubeconfig),
                              krios_latency_results_db=str(db), krios_latency_probes=10)
        text = configmap_value(client, SYSTEM_NAMESPACE, LATENCY_CONFIGMAP, LATENCY_KEY)
        assert text is not None, "krios-latency not published"
        doc = json.loads(text)
        assert (doc["source"], doc["method"], doc["probe"], doc["probes"], doc["combine"]) == \
            ("measured", "ping", "icmp", 10, "max")
        assert sorted(doc["rtt"]) == sorted(names) and doc["answered"] == len(names) * (len(names) - 1)
        for a in names:
            assert sorted(doc["rtt"][a]) == sorted(names) and doc["rtt"][a][a] == 0.0
            assert all(0 < doc["rtt"][a][b] < 5 for b in names if b != a), doc["rtt"]
        addresses = {n["name"]: n["ip"] for n in doc["nodes"]}
        assert addresses == {f"{n.hostname}.lab.krios.local": n.address for n in lab_state.nodes
                             if n.role in ("control", "worker")}
        matrix = LatencyMatrix.from_json(text)  # what the scheduler reads
        assert matrix.admits(names[1], {names[0]: 5}) is None
        run = ResultsStore(db).runs("latency")[-1]
        assert run["status"] == "complete" and run["meta"]["latency"]["ping"]["rtt"] == doc["rtt"]
        ping = _off_diagonal(doc)
        print(f"\nlatency.yml ping on {len(names)} lab nodes: {took:.0f} s; ICMP RTT median "
              f"{statistics.median(ping):.3f} ms (min {min(ping):.3f}, max {max(ping):.3f})")

        # http: every node's `krios latency serve` probed by the others, nothing left running
        out, took = _playbook(lab_state, tmp_path, krios_latency_method="http", krios_latency_publish=False,
                              krios_latency_results_db=str(db))
        http = json.loads((tmp_path / "artifacts" / "latency" / "matrix.json").read_text())
        assert (http["method"], http["probe"], http["answered"]) == ("http", "http-get", 6)
        assert all(v > 0 for v in _off_diagonal(http))
        assert "krios-latency not published" in out
        assert json.loads(configmap_value(client, SYSTEM_NAMESPACE, LATENCY_CONFIGMAP, LATENCY_KEY)) == doc
        from krios import lab

        for node in lab_state.nodes[:3]:
            proc = lab.ssh(lab_state, node.hostname, "pgrep -f 'krios latenc[y] serve' || echo none")
            assert proc.stdout.strip() == "none", proc.stdout
        print(f"latency.yml http: {took:.0f} s; HTTP RTT median {statistics.median(_off_diagonal(http)):.3f} ms")
    finally:
        if get_or_none(client, configmap_path(SYSTEM_NAMESPACE, LATENCY_CONFIGMAP)) is not None:
            client.delete(configmap_path(SYSTEM_NAMESPACE, LATENCY_CONFIGMAP))

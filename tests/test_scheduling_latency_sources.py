"""krios.measure.rtt_sources and `krios latency`: static matrix files, ping (ICMP or TCP connect), the HTTP prober.

Probes run between real sockets on loopback addresses (the local cluster's
virtual nodes live on 127.0.1.x); a known delay comes from a prober that
answers late (``--delay-ms``). The cluster test publishes through the real
kube-apiserver and reads the ConfigMap back as the scheduler does.
"""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from krios.cli import main
from krios.control.placement import LatencyMatrix
from krios.errors import ConfigError
from krios.measure import rtt_sources as R

NAMES = ["edge-1", "edge-2", "cloud-1"]
M = [[0, 12.5, 40], [12.5, 0, 35], [40, 35, 0]]


@pytest.fixture
def nodes_file(tmp_path):
    path = tmp_path / "nodes.json"
    path.write_text(json.dumps(NAMES))
    return path


# -- static files --------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["json", "json-object", "csv", "csv-header", "npy"])
def test_static_matrix_every_format_gives_the_same_document(tmp_path, nodes_file, fmt):
    path = tmp_path / f"m.{fmt.split('-')[0]}"
    if fmt == "json":
        path.write_text(json.dumps(M))
    elif fmt == "json-object":
        path.write_text(json.dumps({"matrix": M}))
    elif fmt == "csv":
        path.write_text("\n".join(",".join(str(x) for x in r) for r in M) + "\n")
    elif fmt == "csv-header":
        path.write_text(",".join(NAMES) + "\n" + "\n".join(",".join(str(x) for x in r) for r in M) + "\n")
    else:
        np.save(path, np.array(M, dtype=float))
    doc = R.static_document(path, nodes_file, known_nodes=NAMES)
    assert (doc["source"], doc["method"], doc["unit"]) == ("static", "file", "ms")
    assert doc["rtt"]["edge-1"]["cloud-1"] == 40.0 and doc["rtt"]["edge-2"]["edge-1"] == 12.5
    parsed = LatencyMatrix.from_json(json.dumps(doc))  # what the scheduler reads
    assert parsed.admits("edge-2", {"edge-1": 20}) is None
    assert parsed.admits("cloud-1", {"edge-1": 20}) == "RTT from edge-1 40.0 ms > 20 ms"


@pytest.mark.parametrize("content, field, words", [
    ([[0, 1], [1, 0]], "shape", "2x2 matrix but 3 nodes"),
    ([[0, 1, 2], [1, 0], [2, 1, 0]], "shape", "not square"),
    ([[0, 1, 2], [1, 0, -3], [2, 1, 0]], "[1][2] (edge-2 -> cloud-1)", "negative RTT -3 ms"),
    ([[0, 1, 2], [1, 0, "x"], [2, 1, 0]], "[1][2]", "not a number"),
    ([[0, 1, 2], [1, 0, None], [2, 1, 0]], "[1][2]", "not a number"),
    ({"rtt": {}}, "matrix", "must be a list of rows"),
])
def test_bad_json_matrix_gets_one_error_naming_file_and_field(tmp_path, nodes_file, content, field, words):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ConfigError) as err:
        R.static_document(path, nodes_file)
    assert str(err.value).startswith(f"{path}: {field}") and words in str(err.value)


def test_nan_in_npy_and_csv_and_bad_formats(tmp_path, nodes_file):
    npy = tmp_path / "m.npy"
    a = np.array(M, dtype=float)
    a[2, 0] = np.nan
    np.save(npy, a)
    with pytest.raises(ConfigError, match=r"m\.npy: \[2\]\[0\] \(cloud-1 -> edge-1\): not a finite number"):
        R.static_document(npy, nodes_file)
    np.save(npy, np.zeros(3))
    with pytest.raises(ConfigError, match=r"m\.npy: shape: must be a 2-D array"):
        R.static_document(npy, nodes_file)
    csv = tmp_path / "m.csv"
    csv.write_text("0,1,nan\n1,0,1\nnan,1,0\n")
    with pytest.raises(ConfigError, match=r"m\.csv: \[0\]\[2\] \(edge-1 -> cloud-1\): not a finite number"):
        R.static_document(csv, nodes_file)
    csv.write_text("a,b,c\n0,1,2\n1,0,1\n2,1,0\n")
    with pytest.raises(ConfigError, match=r"m\.csv: row 1: header row"):
        R.static_document(csv, nodes_file)
    with pytest.raises(ConfigError, match=r"m\.txt: \.txt: unknown matrix format"):
        R.static_document(tmp_path / "m.txt", nodes_file)
    with pytest.raises(ConfigError, match=r"missing\.json: matrix: cannot read"):
        R.static_document(tmp_path / "missing.json", nodes_file)


def test_bad_nodes_file_and_unknown_node(tmp_path, nodes_file):
    m = tmp_path / "m.json"
    m.write_text(json.dumps(M))
    with pytest.raises(ConfigError, match=r"nodes\.json: nodes\[2\]: unknown node cloud-1"):
        R.static_document(m, nodes_file, known_nodes=["edge-1", "edge-2", "other"])
    for content, field in [([], "nodes"), (["a", "a"], r"nodes\[1\]"), ([{"ip": "1.2.3.4"}], r"nodes\[0\]"),
                           ([{"name": "a", "port": "x"}], r"nodes\[0\]\.port"), ("{", "nodes")]:
        nodes_file.write_text(content if isinstance(content, str) else json.dumps(content))
        with pytest.raises(ConfigError, match=rf"nodes\.json: {field}: "):
            R.load_nodes(nodes_file)


def test_publish_cli_bad_input_one_line_nonzero_nothing_recorded(tmp_path, nodes_file, capsys):
    m = tmp_path / "m.json"
    m.write_text(json.dumps([[0, 1], [1, 0]]))
    db = tmp_path / "r.sqlite"
    code = main(["latency", "publish", "--file", str(m), "--nodes", str(nodes_file), "--no-publish", "--db", str(db)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and err[0] == f"krios: error: {m}: shape: 2x2 matrix but 3 nodes"
    assert not db.exists()


def test_publish_cli_records_the_document_in_a_run(tmp_path, nodes_file, capsys):
    m = tmp_path / "m.csv"
    m.write_text("\n".join(",".join(str(x) for x in r) for r in M))
    db = tmp_path / "r.sqlite"
    out = tmp_path / "doc.json"
    assert main(["latency", "publish", "--file", str(m), "--nodes", str(nodes_file), "--no-publish",
                 "--db", str(db), "--output", str(out)]) == 0
    assert "not published: 3 nodes, file" in capsys.readouterr().err
    with sqlite3.connect(db) as conn:
        kind, status, meta = conn.execute("SELECT kind, status, meta FROM runs").fetchone()
    assert (kind, status) == ("latency", "complete")
    assert json.loads(meta)["latency"]["file"]["rtt"] == json.loads(out.read_text())["rtt"]


# -- measured ----------------------------------------------------------------------------------------
LOOPBACK = [R.Endpoint(f"n{i}", f"127.0.1.{200 + i}", 1) for i in range(3)]  # port 1: closed, answers RST


def test_ping_by_tcp_connect_between_loopback_nodes():
    doc = R.measure_ping(LOOPBACK, probes=3, probe="tcp")
    assert (doc["source"], doc["method"], doc["probe"], doc["answered"]) == ("measured", "ping", "tcp-connect", 6)
    values = [doc["rtt"][a][b] for a in doc["rtt"] for b in doc["rtt"][a] if a != b]
    assert len(values) == 6 and all(0 < v < 50 for v in values)
    sym = R.measure_ping(LOOPBACK, probes=3, probe="tcp", symmetric=True)
    assert sym["pairs"] == 3 and all(sym["rtt"][a][b] == sym["rtt"][b][a] for a in sym["rtt"] for b in sym["rtt"])


def test_ping_from_an_address_not_on_this_host_is_a_clear_error():
    far = [R.Endpoint("a", "192.0.2.1", 1), R.Endpoint("b", "127.0.1.201", 1)]
    with pytest.raises(ConfigError, match=r"--nodes: a: cannot send from 192\.0\.2\.1"):
        R.measure_ping(far, probes=1, probe="tcp", timeout_s=0.5)


def test_http_prober_sees_a_known_delay_in_both_directions(capsys):
    servers = [R.ProbeServer(f"n{i}", f"127.0.1.{210 + i}", 0, delay_ms=30.0 if i == 1 else 0.0) for i in range(3)]
    nodes = [R.Endpoint(s.name, s.host, s.port) for s in servers]
    with servers[0].running(), servers[1].running(), servers[2].running():
        doc = R.measure_http(nodes, probes=3)
        raw = R.measure_http(nodes, probes=3, symmetric=False)
    rtt = doc["rtt"]
    assert (doc["method"], doc["probe"], doc["answered"]) == ("http", "http-get", 6)
    assert 30 <= rtt["n0"]["n1"] == rtt["n1"]["n0"] < 80  # the max of both directions: n1 answers 30 ms late
    assert rtt["n0"]["n2"] < 15 and rtt["n0"]["n0"] == 0.0
    assert raw["rtt"]["n0"]["n1"] >= 30 and raw["rtt"]["n1"]["n0"] < 15  # one direction each
    m = LatencyMatrix.from_json(json.dumps(doc))
    assert m.admits("n2", {"n0": 20}) is None and m.admits("n1", {"n0": 20}) is not None


def test_http_measure_names_the_node_whose_prober_is_down():
    server = R.ProbeServer("up", "127.0.1.220", 0)
    nodes = [R.Endpoint("up", "127.0.1.220", server.port), R.Endpoint("down", "127.0.1.221", 1)]
    with server.running(), pytest.raises(ConfigError, match=r"--nodes: down: no `krios latency serve` answering"):
        R.measure_http(nodes, probes=1, timeout_s=0.5)


@pytest.mark.cluster
def test_measure_ping_publishes_the_configmap_the_scheduler_reads(control_plane, api_client, tmp_path, capsys):
    from krios.kube.client import RawClient

    client = RawClient(api_client, qps=0, burst=1)
    path = "/api/v1/namespaces/krios-system/configmaps/krios-latency"
    db = tmp_path / "r.sqlite"
    try:
        assert main(["latency", "measure", "--method", "ping", "--probes", "3", "--symmetric",
                     "--kubeconfig", str(control_plane.kubeconfig), "--db", str(db)]) == 0
        err = capsys.readouterr().err
        assert "krios-latency published" in err and "ping (" in err
        m = LatencyMatrix.from_configmap(client.get(path))
        workers = control_plane.worker_names
        assert set(workers) <= set(m.rtt)
        assert all(0 < m.rtt[a][b] < 50 for a in workers for b in workers if a != b)
        doc = json.loads(client.get(path)["data"]["matrix.json"])
        assert doc["source"] == "measured" and doc["probe"] in ("icmp", "tcp-connect")
        # a static file naming a node the cluster does not have: one error, the ConfigMap untouched
        nodes = tmp_path / "nodes.json"
        nodes.write_text(json.dumps([workers[0], "no-such-node"]))
        mfile = tmp_path / "m.json"
        mfile.write_text("[[0, 1], [1, 0]]")
        assert main(["latency", "publish", "--file", str(mfile), "--nodes", str(nodes),
                     "--kubeconfig", str(control_plane.kubeconfig), "--db", str(db)]) != 0
        assert "nodes[1]: unknown node no-such-node" in capsys.readouterr().err
        assert json.loads(client.get(path)["data"]["matrix.json"])["method"] == "ping"
    finally:
        client.delete(path)


def test_measure_and_serve_cli_errors_are_one_line(tmp_path, capsys):
    nodes = tmp_path / "nodes.json"
    nodes.write_text(json.dumps([{"name": "a", "ip": "127.0.1.230"}, {"name": "b"}]))
    assert main(["latency", "measure", "--method", "ping", "--nodes", str(nodes), "--no-publish", "--no-record"]) != 0
    assert capsys.readouterr().err.strip() == \
        "krios: error: --nodes: b: no address to probe (give 'ip' in the nodes file)"
    assert main(["latency", "measure", "--method", "ping", "--probes", "0", "--nodes", str(nodes),
                 "--no-publish"]) != 0
    assert capsys.readouterr().err.strip() == "krios: error: --probes: 0: must be at least 1"
    assert main(["latency", "serve", "--name", "a", "--listen", "127.0.1.230:notaport"]) != 0
    assert capsys.readouterr().err.strip() == "krios: error: --listen: 127.0.1.230:notaport: must be HOST:PORT"


def test_measure_cli_ping_with_a_nodes_file_writes_the_document(tmp_path, capsys):
    nodes = tmp_path / "nodes.json"
    nodes.write_text(json.dumps([{"name": f"n{i}", "ip": f"127.0.1.{240 + i}", "port": 1} for i in range(3)]))
    out = tmp_path / "doc.json"
    assert main(["latency", "measure", "--method", "ping", "--probe", "tcp", "--probes", "2", "--nodes", str(nodes),
                 "--no-publish", "--no-record", "--output", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["probe"] == "tcp-connect" and doc["nodes"][0] == {"name": "n0", "ip": "127.0.1.240", "port": 1}
    assert "not published: 3 nodes, ping (tcp-connect, median of 2)" in capsys.readouterr().err

"""``krios netem|emulator|client`` on the command line: dry runs, one-line errors, the client's HTTP outcomes."""

from __future__ import annotations

import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from krios.cli import main
from krios.emulation import netem
from krios.emulation.workload import Client, RecordSink, Target, parse_url, send_request, static_target
from krios.results.store import ResultsStore

ERR = "krios: error: "


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_netem_apply_dry_run_prints_the_plan_for_the_route_device(capsys):
    code, out, _ = run_cli(capsys, "netem", "apply", "--dest", "127.0.1.2=20", "--dest", "127.0.1.3=31.5/2",
                           "--dry-run")  # fmt: skip
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "would run: tc qdisc add dev lo root handle 1: htb default 0"
    assert "would run: tc qdisc add dev lo parent 1:11 handle 11: netem delay 31.5ms 2ms" in lines
    assert lines[-1] == ("would run: tc filter add dev lo parent 1: protocol ip prio 17 u32 match ip dst "
                         "127.0.1.3/32 flowid 1:11")  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["netem", "apply", "--dest", "foo=1", "--dry-run"], "destination: foo: not an IP address"),
        (["netem", "apply", "--dest", "127.0.1.2", "--dry-run"], "--dest: 127.0.1.2: expected IP=MS"),
        (["netem", "clear", "--dev", "nosuchdev0"], "dev: nosuchdev0: no such network device"),
        (["emulator", "--scenario", "nope"], "scenario: nope: unknown scenario (known: "),
        (["emulator", "--scenario", "sf_4workers", "--tick-s", "0"], "--tick-s: 0.0: must be a positive number"),
        (["emulator", "--scenario", "sf_4workers", "--start", "yesterday"], "--start: yesterday: not an ISO 8601"),
        (["client", "--target", "ftp://x", "--duration-s", "1"], "--target: ftp://x: expected http://HOST:PORT/PATH"),
        (["client", "--target", "http://127.0.1.1:9/", "--duration-s", "0"], "--duration-s: 0.0: must be positive"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.setenv("KRIOS_RESULTS_DB", str(tmp_path / "r.sqlite"))
    code, _out, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.startswith(ERR + message) and err.count("\n") == 1, err
    if (tmp_path / "r.sqlite").exists():  # nothing half-done: no run recorded
        assert ResultsStore(tmp_path / "r.sqlite").runs() == []


def test_netem_apply_without_netem_refuses_with_the_reason(capsys):
    ok, why = netem.netem_support()
    if ok:
        pytest.skip("this kernel has netem: the refusal path does not apply")
    code, _out, err = run_cli(capsys, "netem", "apply", "--dest", "127.0.1.2=20")
    assert code == 2 and why in err and "--dry-run" in err
    code, out, _ = run_cli(capsys, "netem", "check")
    assert code == 1 and out.startswith("netem: unsupported: ")


class _Answer(BaseHTTPRequestHandler):
    """A tiny app: /ok answers 200 with its node header, /busy 503."""

    def log_message(self, *_args):
        pass

    def do_GET(self):
        code = 200 if self.path == "/ok" else 503
        self.send_response(code)
        self.send_header("X-Krios-Node", "krios-worker-7")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


@pytest.fixture
def app():
    server = ThreadingHTTPServer(("127.0.1.8", 0), _Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_request_outcomes_ok_http_error_refused_timeout(app):
    status, node, latency, error = send_request(Target("127.0.1.8", app, "/ok"), 2.0)
    assert (status, node, error) == ("ok", "krios-worker-7", None) and latency > 0
    status, node, _latency, error = send_request(Target("127.0.1.8", app, "/busy", node="n"), 2.0)
    assert status == "503" and node == "krios-worker-7" and error
    # a port nobody listens on: refused
    with socket.socket() as s:
        s.bind(("127.0.1.9", 0))
        closed = s.getsockname()[1]
    status, node, latency, error = send_request(Target("127.0.1.9", closed, "/", node="krios-worker-8"), 2.0)
    assert (status, node, latency) == ("error", "krios-worker-8", None) and "ConnectionRefused" in error
    # a server that accepts and never answers: timeout
    with socket.socket() as s:
        s.bind(("127.0.1.9", 0))
        s.listen(8)
        status, _node, latency, error = send_request(Target("127.0.1.9", s.getsockname()[1], "/"), 0.3)
    assert (status, latency) == ("timeout", None) and "0.3 s" in error


def test_open_loop_client_records_every_request_in_jsonl_and_store(app, tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    run_id = store.start_run("client", collect=False)
    sink = RecordSink(tmp_path / "req.jsonl", store, run_id)
    client = Client(static_target(f"http://127.0.1.8:{app}/ok"), sink, rate_hz=50, duration_s=0.5)
    result = client.run()
    sink.close()
    records = [json.loads(x) for x in (tmp_path / "req.jsonl").read_text().splitlines()]
    assert result.sent == 25 == len(records) == result.ok
    assert sorted(r["seq"] for r in records) == list(range(25))
    assert {r["node"] for r in records} == {"krios-worker-7"}
    assert store.counts(run_id)["requests"] == 25
    # open loop: sends follow the schedule (1/50 s apart), not the answers
    sent = sorted(r["sent_at"] for r in records)
    assert sent[-1] - sent[0] == pytest.approx(24 / 50, abs=0.15)


def test_parse_url():
    assert parse_url("http://127.0.1.2:30080/x") == Target("127.0.1.2", 30080, "/x")
    assert parse_url("http://127.0.1.2") == Target("127.0.1.2", 80, "/")


def test_cli_module_is_registered():
    from krios.cli import build_parser

    help_text = build_parser().format_help()
    for cmd in ("emulator", "client", "standin", "netem"):
        assert cmd in help_text
    assert Path(sys.executable).parent.joinpath("krios").exists()

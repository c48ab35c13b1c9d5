"""The loopback delay proxy: one-way delay per direction, order kept, control endpoint, kubeconfig copy."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import yaml

from krios.errors import ConfigError
from krios.measure.delayproxy import (
    ControlServer,
    DelayProxy,
    RemoteProxy,
    kubeconfig_server,
    parse_hostport,
    proxied_kubeconfig,
)


@pytest.fixture
def echo_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return

            def handle(c=conn):
                with c:
                    while data := c.recv(65536):
                        c.sendall(data)

            threading.Thread(target=handle, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()
    stop.set()
    srv.close()


def _rtt_ms(sock: socket.socket, payload: bytes = b"ping") -> float:
    t0 = time.perf_counter()
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        got += sock.recv(65536)
    assert got == payload
    return (time.perf_counter() - t0) * 1000.0


def test_round_trip_pays_the_delay_in_both_directions(echo_server):
    with DelayProxy(echo_server, delay_ms=0) as proxy, socket.create_connection(proxy.address) as s:
        base = min(_rtt_ms(s) for _ in range(5))
        proxy.delay_ms = 40
        delayed = [_rtt_ms(s) for _ in range(3)]
        proxy.up_ms, proxy.down_ms = 30, 0
        asym = _rtt_ms(s)
    assert base < 30
    assert all(80 <= d < 80 + 150 for d in delayed), delayed
    assert 30 <= asym < 30 + 150
    assert proxy.connections == 1 and proxy.bytes_up == proxy.bytes_down


def test_bytes_arrive_complete_and_in_order_while_the_delay_changes(echo_server):
    payload = bytes(range(256)) * 4096  # 1 MiB, many chunks
    with DelayProxy(echo_server, delay_ms=5) as proxy, socket.create_connection(proxy.address) as s:
        received = bytearray()

        def reader():
            while len(received) < len(payload):
                received.extend(s.recv(65536))

        t = threading.Thread(target=reader)
        t.start()
        for i in range(0, len(payload), 65536):
            s.sendall(payload[i:i + 65536])
            proxy.delay_ms = 10 if proxy.delay_ms < 10 else 1  # shorter delay must not overtake
        t.join(30)
    assert bytes(received) == payload


def test_control_endpoint_reads_and_sets_the_delay(echo_server):
    with DelayProxy(echo_server) as proxy:
        control = ControlServer(proxy).start()
        try:
            remote = RemoteProxy(control.url)
            assert remote.state()["target"] == f"{echo_server[0]}:{echo_server[1]}"
            remote.delay_ms = 25
            assert proxy.up_ms == proxy.down_ms == 25.0
            assert remote.delay_ms == 25.0
            remote._call("PUT", "/delay?up_ms=5&down_ms=7")
            assert (proxy.up_ms, proxy.down_ms) == (5.0, 7.0)
            with pytest.raises(ConfigError):
                remote._call("PUT", "/delay?ms=-3")
        finally:
            control.stop()
    with pytest.raises(ConfigError, match="not reachable"):
        RemoteProxy(control.url, timeout_s=1).state()


def test_only_loopback_addresses_and_valid_host_ports():
    with pytest.raises(ConfigError, match="loopback"):
        DelayProxy(("192.0.2.1", 6443))
    with pytest.raises(ConfigError, match="loopback"):
        DelayProxy(("127.0.0.1", 6443), listen=("0.0.0.0", 0))
    assert parse_hostport("https://127.0.0.1:6443") == ("127.0.0.1", 6443)
    with pytest.raises(ConfigError, match="HOST:PORT"):
        parse_hostport("127.0.0.1", source="--target")


def test_proxied_kubeconfig_points_every_cluster_at_the_proxy(tmp_path):
    src = tmp_path / "kubeconfig"
    src.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:6443", "certificate-authority": "ca.crt",
                                                "insecure-skip-tls-verify": False}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "secret"}}],
    }))
    assert kubeconfig_server(src) == "https://127.0.0.1:6443"
    out = proxied_kubeconfig(src, "https://127.0.0.1:7000", tmp_path / "sub" / "proxied")
    cfg = yaml.safe_load(out.read_text())
    assert cfg["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:7000"
    assert cfg["clusters"][0]["cluster"]["certificate-authority"] == str(tmp_path / "ca.crt")
    assert cfg["users"][0]["user"]["token"] == "secret"
    assert out.stat().st_mode & 0o077 == 0
    bad = tmp_path / "bad"
    bad.write_text("clusters: [")
    with pytest.raises(ConfigError) as err:
        proxied_kubeconfig(bad, "https://127.0.0.1:1", tmp_path / "x")
    assert err.value.source == str(bad)

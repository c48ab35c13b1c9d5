"""tc netem plans: exact command sequences, idempotence, parsing, and real runs in a network namespace."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import pytest
from emulation_helpers import veth_namespace

from krios.emulation import netem
from krios.emulation.netem import Destination, NetemError, parse_state, plan, plan_clear
from krios.errors import ConfigError

# Outputs as iproute2 6.1 prints them (recorded on this machine, in a netns; the netem
# entries follow the same format with delay/jitter in seconds).
NOQUEUE = '[{"kind":"noqueue","handle":"0:","root":true,"refcnt":2,"options":{}}]'
HTB_ROOT = ('{"kind":"htb","handle":"1:","root":true,"refcnt":3,"options":{"r2q":10,"default":"0",'
            '"direct_packets_stat":0,"direct_qlen":1000}}')  # fmt: skip


def netem_q(minor: int, delay_s: float, jitter_s: float = 0.0) -> str:
    return json.dumps({"kind": "netem", "handle": f"{minor:x}:", "parent": f"1:{minor:x}",
                       "options": {"limit": 1000, "delay": {"delay": delay_s, "jitter": jitter_s,
                                                            "correlation": 0}}})  # fmt: skip


def u32(pref: int, ip_hex: str, minor: int) -> list[dict]:
    return [
        {"parent": "1:", "protocol": "ip", "pref": pref, "kind": "u32", "chain": 0},
        {"parent": "1:", "protocol": "ip", "pref": pref, "kind": "u32", "chain": 0,
         "options": {"fh": "800:", "ht_divisor": 1}},
        {"parent": "1:", "protocol": "ip", "pref": pref, "kind": "u32", "chain": 0,
         "options": {"fh": "800::800", "order": 2048, "key_ht": "800", "bkt": "0", "flowid": f"1:{minor:x}",
                     "not_in_hw": True, "match": {"value": ip_hex, "mask": "ffffffff", "offmask": "", "off": 16}}},
    ]  # fmt: skip


CLASSES_TEXT = textwrap.dedent("""\
    class htb 1:11 root leaf 11: prio 0 rate 10Gbit ceil 10Gbit burst 1046250b cburst 1046250b
    class htb 1:10 root leaf 10: prio 0 rate 10Gbit ceil 10Gbit burst 1046250b cburst 1046250b
    """)


def two_dest_state(delay1: float = 0.02, delay2: float = 0.03, jitter2: float = 0.002) -> netem.TcState:
    q = f"[{HTB_ROOT},{netem_q(0x10, delay1)},{netem_q(0x11, delay2, jitter2)}]"
    f = json.dumps(u32(16, "7f000102", 0x10) + u32(17, "7f000103", 0x11))
    return parse_state("lo", q, CLASSES_TEXT, f)


DESIRED = [Destination("127.0.1.3", 30, 2), Destination("127.0.1.2", 20)]


def test_fresh_device_gets_root_then_class_netem_filter_per_destination():
    cmds = plan(parse_state("eth1", NOQUEUE), DESIRED)
    assert cmds == [
        ["tc", "qdisc", "add", "dev", "eth1", "root", "handle", "1:", "htb", "default", "0"],
        ["tc", "class", "add", "dev", "eth1", "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit",
         "burst", "1mb", "cburst", "1mb", "quantum", "60000"],
        ["tc", "qdisc", "add", "dev", "eth1", "parent", "1:10", "handle", "10:", "netem", "delay", "20ms"],
        ["tc", "filter", "add", "dev", "eth1", "parent", "1:", "protocol", "ip", "prio", "16", "u32",
         "match", "ip", "dst", "127.0.1.2/32", "flowid", "1:10"],
        ["tc", "class", "add", "dev", "eth1", "parent", "1:", "classid", "1:11", "htb", "rate", "10gbit",
         "burst", "1mb", "cburst", "1mb", "quantum", "60000"],
        ["tc", "qdisc", "add", "dev", "eth1", "parent", "1:11", "handle", "11:", "netem", "delay", "30ms", "2ms"],
        ["tc", "filter", "add", "dev", "eth1", "parent", "1:", "protocol", "ip", "prio", "17", "u32",
         "match", "ip", "dst", "127.0.1.3/32", "flowid", "1:11"],
    ]  # fmt: skip
    assert all(isinstance(a, str) for argv in cmds for a in argv)  # argument lists, no shell strings


def test_matching_state_needs_no_commands():
    assert plan(two_dest_state(), DESIRED) == []
    # 1 µs below the tolerance still matches (the kernel keeps ns, tc prints rounded values)
    assert plan(two_dest_state(delay1=0.020001), DESIRED) == []


def test_new_delay_is_changed_in_place():
    cmds = plan(two_dest_state(), [Destination("127.0.1.2", 25.5), Destination("127.0.1.3", 30, 2)])
    assert cmds == [["tc", "qdisc", "change", "dev", "lo", "parent", "1:10", "handle", "10:",
                     "netem", "delay", "25.5ms"]]  # fmt: skip
    cmds = plan(two_dest_state(), [Destination("127.0.1.2", 20), Destination("127.0.1.3", 30)])
    assert cmds == [["tc", "qdisc", "change", "dev", "lo", "parent", "1:11", "handle", "11:",
                     "netem", "delay", "30ms"]]  # fmt: skip


def test_removed_destination_deletes_filter_then_class_and_new_one_gets_a_fresh_class():
    cmds = plan(two_dest_state(), [Destination("127.0.1.3", 30, 2), Destination("127.0.1.4", 5)])
    assert cmds == [
        ["tc", "filter", "del", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "16", "u32"],
        ["tc", "class", "del", "dev", "lo", "classid", "1:10"],
        ["tc", "class", "add", "dev", "lo", "parent", "1:", "classid", "1:12", "htb", "rate", "10gbit",
         "burst", "1mb", "cburst", "1mb", "quantum", "60000"],
        ["tc", "qdisc", "add", "dev", "lo", "parent", "1:12", "handle", "12:", "netem", "delay", "5ms"],
        ["tc", "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "18", "u32",
         "match", "ip", "dst", "127.0.1.4/32", "flowid", "1:12"],
    ]  # fmt: skip


def test_clear_deletes_the_root_once():
    assert plan_clear(two_dest_state()) == [["tc", "qdisc", "del", "dev", "lo", "root"]]
    assert plan(two_dest_state(), []) == [["tc", "qdisc", "del", "dev", "lo", "root"]]
    assert plan_clear(parse_state("lo", NOQUEUE)) == []


def test_missing_leaf_is_added_and_wrong_leaf_replaced():
    q = f'[{HTB_ROOT},{{"kind":"pfifo","handle":"10:","parent":"1:10","options":{{"limit":1000}}}}]'
    f = json.dumps(u32(16, "7f000102", 0x10) + u32(17, "7f000103", 0x11))
    state = parse_state("lo", q, CLASSES_TEXT, f)
    assert plan(state, DESIRED) == [
        ["tc", "qdisc", "replace", "dev", "lo", "parent", "1:10", "handle", "10:", "netem", "delay", "20ms"],
        ["tc", "qdisc", "add", "dev", "lo", "parent", "1:11", "handle", "11:", "netem", "delay", "30ms", "2ms"],
    ]  # fmt: skip


def test_foreign_root_is_refused_but_kernel_default_roots_are_replaced():
    foreign = parse_state("eth0", '[{"kind":"fq_codel","handle":"8001:","root":true,"options":{}}]')
    with pytest.raises(NetemError, match="not set up by krios"):
        plan(foreign, DESIRED)
    assert plan_clear(foreign) == []
    default = parse_state("eth0", '[{"kind":"mq","handle":"0:","root":true,"options":{}}]')
    assert plan(default, DESIRED)[0][:7] == ["tc", "qdisc", "add", "dev", "eth0", "root", "handle"]


def test_text_output_parses_like_json():
    q_text = textwrap.dedent("""\
        qdisc htb 1: root refcnt 3 r2q 10 default 0 direct_packets_stat 0 direct_qlen 1000
        qdisc netem 10: parent 1:10 limit 1000 delay 20ms
        qdisc netem 11: parent 1:11 limit 1000 delay 30ms  2ms
        """)
    f_text = textwrap.dedent("""\
        filter parent 1: protocol ip pref 16 u32 chain 0
        filter parent 1: protocol ip pref 16 u32 chain 0 fh 800: ht divisor 1
        filter parent 1: protocol ip pref 16 u32 chain 0 fh 800::800 order 2048 key ht 800 bkt 0 *flowid 1:10 not_in_hw
          match 7f000102/ffffffff at 16
        filter parent 1: protocol ip pref 17 u32 chain 0
        filter parent 1: protocol ip pref 17 u32 chain 0 fh 801: ht divisor 1
        filter parent 1: protocol ip pref 17 u32 chain 0 fh 801::800 order 2048 key ht 801 bkt 0 *flowid 1:11 not_in_hw
          match 7f000103/ffffffff at 16
        """)
    text_state = parse_state("lo", q_text, CLASSES_TEXT, f_text)
    assert text_state == two_dest_state()
    assert plan(text_state, DESIRED) == []


def test_destinations_are_validated():
    assert netem.parse_destination("127.0.1.2=12.5/1") == Destination("127.0.1.2", 12.5, 1.0)
    assert netem.parse_destination("10.0.0.1=40ms") == Destination("10.0.0.1", 40.0)
    for bad in ("127.0.1.2", "127.0.1.2=abc", "=5"):
        with pytest.raises(ConfigError, match="IP=MS"):
            netem.parse_destination(bad)
    with pytest.raises(ConfigError, match="not an IP"):
        Destination("node-1", 5)
    with pytest.raises(ConfigError, match="IPv4"):
        Destination("::1", 5)
    with pytest.raises(ConfigError, match="non-negative"):
        Destination("10.0.0.1", -1)
    with pytest.raises(ConfigError, match="twice"):
        netem.normalise([Destination("10.0.0.1", 1), {"ip": "10.0.0.1", "delay_ms": 2}])


def test_egress_device_of_loopback_nodes_is_lo():
    assert netem.route_device("127.0.1.2") == "lo"
    assert netem.egress_device(["127.0.1.2", "127.0.1.3"]) == "lo"


def test_netem_support_is_probed_with_a_reason():
    ok, why = netem.netem_support()
    assert isinstance(ok, bool) and why
    if not ok:
        assert "netem" in why or "probe" in why


# --------------------------------------------------------------------------- real tc in a netns


@pytest.fixture
def veth_netns():
    """A fresh network namespace with an up veth pair v0/v1 (10.99.0.1/24 on v0), deleted after."""
    with veth_namespace() as name:
        yield name


NS_DESIRED = [Destination("10.99.0.2", 20), Destination("10.99.0.3", 35, 1)]


def test_real_structure_in_netns_is_read_back_and_converges(veth_netns):
    """htb root, classes and u32 filters applied for real; the plan then only lacks the netem leaves.

    Where the kernel has netem, the whole plan is applied and a second plan is empty
    (the netem leaves alone are covered by test_real_netem_change_in_place).
    """
    tc = netem.Tc("v0", netns=veth_netns)
    assert netem.route_device("10.99.0.2", netns=veth_netns) == "v0"
    first = plan(tc.state(), NS_DESIRED)
    assert len(first) == 7
    has_netem, _why = netem.netem_support()
    tc.execute(c for c in first if has_netem or "netem" not in c)
    state = tc.state()
    assert state.managed and state.classes == {0x10, 0x11}
    assert {f.ip: f.flow_minor for f in state.filters.values()} == {"10.99.0.2": 0x10, "10.99.0.3": 0x11}
    second = plan(state, NS_DESIRED)
    if has_netem:
        assert second == []
    else:
        assert second == [c for c in first if "netem" in c]  # only the leaves this kernel cannot add
    # moving one destination: filter and class go, a new class/filter appears; applied for real
    moved = plan(state, [Destination("10.99.0.3", 35, 1), Destination("10.99.0.4", 5)])
    assert [c[1:3] for c in moved if "netem" not in c] == [
        ["filter", "del"], ["class", "del"], ["class", "add"], ["filter", "add"]]
    tc.execute(c for c in moved if has_netem or "netem" not in c)
    state = tc.state()
    assert state.classes == {0x11, 0x12}
    assert sorted(f.ip for f in state.filters.values()) == ["10.99.0.3", "10.99.0.4"]
    assert tc.clear() == [["tc", "qdisc", "del", "dev", "v0", "root"]]
    assert not tc.state().managed and tc.clear() == []


def test_real_netem_change_in_place(veth_netns):
    has_netem, why = netem.netem_support()
    if not has_netem:
        pytest.skip(f"needs a kernel with netem: {why}")
    tc = netem.Tc("v0", netns=veth_netns)
    tc.apply(NS_DESIRED)
    assert tc.apply(NS_DESIRED) == []
    cmds = tc.apply([Destination("10.99.0.2", 40), Destination("10.99.0.3", 35, 1)])
    assert [c[2] for c in cmds] == ["change"]
    assert tc.state().leaves[0x10].delay_ms == pytest.approx(40, abs=0.01)
    tc.clear()


def test_sigterm_removes_the_shaping(veth_netns):
    """A process holding a Shaper removes krios's root qdisc when it gets SIGTERM."""
    tc = netem.Tc("v0", netns=veth_netns)
    has_netem, _why = netem.netem_support()
    tc.execute(c for c in plan(tc.state(), NS_DESIRED) if has_netem or "netem" not in c)
    assert tc.state().managed
    code = textwrap.dedent(f"""
        import sys, time
        from krios.emulation import netem
        s = netem.Shaper("v0", netns={veth_netns!r})
        s.install_signal_handlers()
        print("ready", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not tc.state().managed

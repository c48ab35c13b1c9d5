"""krios.config.inventory on its own: parsing, ordering, roles and errors (no Ansible)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from krios.config import inventory, scenarios
from krios.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures" / "inventory"
EXAMPLE = ROOT / "inventories" / "cloudlab"
M12 = FIX / "manifest_12.xml"
DOM = "krios-exp.krios-pg0.utah.cloudlab.example"


def by_short(nodes):
    return {n.short_name: n for n in nodes}


@pytest.mark.parametrize(
    ("hostname", "index"),
    [("node7", 7), ("node07.exp.example", 7), ("node10.a.b", 10), ("pc12node3.x", 3), ("n-4a.x", 4),
     ("node1.exp.example.", 1)],
)
def test_node_index_is_the_last_number_of_the_first_label(hostname, index):
    assert inventory.node_index(hostname, source="f") == index


@pytest.mark.parametrize(
    ("hostname", "message"),
    [("head.exp.example", "no numeric index in its first label 'head'"),
     ("exp.node3.example", "no numeric index"),
     ("node1..example", "invalid hostname"),
     ("", "invalid hostname"),
     ("node{{1}}.x", "invalid hostname")],
)
def test_node_index_errors_name_file_and_host(hostname, message):
    with pytest.raises(ConfigError, match=message) as err:
        inventory.node_index(hostname, source="ip_mapping.json")
    assert err.value.source == "ip_mapping.json"
    assert err.value.field == hostname


def test_ip_mapping_orders_by_number_not_string():
    nodes = inventory.parse_ip_mapping(FIX / "ip_mapping_14.json")
    assert [n.index for n in nodes] == list(range(14))
    assert [n.short_name for n in nodes][9:12] == ["node9", "node10", "node11"]
    assert nodes[10].public_ip == "203.0.113.50"
    assert nodes[10].experiment_ip is None and nodes[10].ssh_port is None


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [('{"node1.x": "192.0.2.1",}', "line 1 column 25", "invalid JSON"),
     ('["node1.x"]', None, "must be a JSON object"),
     ('{"node1.x": "192.0.2.1", "node1.x": "192.0.2.2"}', "node1.x", "hostname listed twice"),
     ('{"node1.x": "192.0.2.256"}', "node1.x", "invalid IPv4 address '192.0.2.256'"),
     ('{"node1.x": "192.0.2.01"}', "node1.x", "invalid IPv4"),
     ('{"node1.x": "2001:db8::1"}', "node1.x", "invalid IPv4"),
     ('{"node1.x": 3221225985}', "node1.x", "must be a string"),
     ('{"node1.x": "192.0.2.1", "node01.y": "192.0.2.2"}', "node01.y", "index 1 is also used by node1.x")],
)
def test_ip_mapping_errors(text, field, message):
    with pytest.raises(ConfigError, match=message) as err:
        inventory.parse_ip_mapping_text(text, source="m.json")
    assert (err.value.source, err.value.field) == ("m.json", field)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="no such file") as err:
        inventory.parse_ip_mapping(tmp_path / "nope.json")
    assert err.value.source == str(tmp_path / "nope.json")
    with pytest.raises(ConfigError, match="cannot read: Is a directory"):
        inventory.parse_manifest(tmp_path)
    (tmp_path / "latin1.json").write_bytes(b'{"caf\xe9": "192.0.2.1"}')
    with pytest.raises(ConfigError, match="not UTF-8"):
        inventory.parse_ip_mapping(tmp_path / "latin1.json")


def test_manifest_addresses_logins_and_order():
    nodes = inventory.parse_manifest(M12)
    assert [n.index for n in nodes] == list(range(12))  # listed 10, 2, 0, 11, ... in the file
    n = by_short(nodes)
    assert n["node0"].hostname == f"node0.{DOM}"
    assert n["node0"].public_ip == "198.51.100.20"
    assert n["node0"].experiment_ip == "10.10.1.1"
    assert n["node0"].client_id == "node0"
    node0_login = (n["node0"].ssh_host, n["node0"].ssh_port, n["node0"].ssh_user)
    assert node0_login == ("pc500.utah.cloudlab.example", 22, "alice")
    assert n["node0"].login_users == ("alice", "bob")
    assert n["node4"].login_users == ("bob", "alice", "carol")
    assert n["node4"].ssh_user == "bob"  # the first login without ansible_user
    assert n["node3"].experiment_ip == "10.10.1.4"  # the IPv6 address before it is skipped
    assert n["node5"].experiment_ip == "10.10.1.6"  # first of two experiment interfaces
    assert n["node9"].experiment_ip is None and n["node11"].experiment_ip is None
    assert n["node9"].node_ip("experiment") == n["node9"].public_ip == "198.51.100.29"
    assert (n["node7"].ssh_host, n["node7"].ssh_port) == ("pcvmpc507-1.utah.cloudlab.example", 27010)


@pytest.mark.parametrize(
    ("user", "port", "chosen"), [(None, 27010, "alice"), ("bob", 27011, "bob"), ("dave", 27010, "alice")]
)
def test_manifest_login_follows_ansible_user(user, port, chosen):
    node7 = by_short(inventory.parse_manifest(M12, ansible_user=user))["node7"]
    assert (node7.ssh_port, node7.ssh_user) == (port, chosen)


@pytest.mark.parametrize(
    ("name", "field", "message"),
    [("not_xml.xml", "line 16 column 7", "invalid XML: mismatched tag"),
     ("dtd.xml", None, "refusing XML with a DTD"),
     ("wrong_root.xml", None, "not a GENI RSpec v3 document"),
     ("request.xml", "rspec type", "a request RSpec, not a manifest"),
     ("bad_ipv4.xml", "node node4 host ipv4", "invalid IPv4 address '192.0.2.999'"),
     ("no_index.xml", "node node2 host name", "no numeric index in its first label 'head'"),
     ("dup_index.xml", f"node05.{DOM.replace('krios-exp', 'krios-demo')}", "index 5 is also used by node5"),
     ("bad_port.xml", "node node1", "invalid login port 'ssh'")],
)
def test_manifest_errors(name, field, message):
    path = FIX / "bad" / name
    with pytest.raises(ConfigError, match=message) as err:
        inventory.parse_manifest(path)
    assert (err.value.source, err.value.field) == (str(path), field)


def test_manifest_node_without_host_is_refused():
    text = (f'<rspec xmlns="{inventory.RSPEC_NS}" type="manifest"><node client_id="node1">'
            '<interface><ip address="10.0.0.1" type="ipv4"/></interface></node></rspec>')
    with pytest.raises(ConfigError, match=r"missing <host ipv4") as err:
        inventory.parse_manifest_text(text, source="m.xml")
    assert err.value.field == "node node1"


def test_load_nodes_needs_exactly_one_source():
    with pytest.raises(ConfigError, match="not both") as err:
        inventory.load_nodes(EXAMPLE / "ip_mapping.json", EXAMPLE / "manifest.xml", source="krios.yml")
    assert (err.value.source, err.value.field) == ("krios.yml", "ip_mapping/manifest")
    with pytest.raises(ConfigError, match="give one of"):
        inventory.load_nodes(None, None, source="krios.yml")


def test_both_example_sources_describe_the_same_nodes():
    a = inventory.parse_ip_mapping(EXAMPLE / "ip_mapping.json")
    b = inventory.parse_manifest(EXAMPLE / "manifest.xml")
    assert [(n.hostname, n.public_ip) for n in a] == [(n.hostname, n.public_ip) for n in b]


def test_roles_for_the_readme_example():
    sf = scenarios.load("sf_4workers")
    nodes = inventory.parse_manifest(EXAMPLE / "manifest.xml")
    roles = inventory.assign_roles(nodes, sf, base_node_idx=1, source="manifest.xml")
    assert roles.control.short_name == "node1"
    assert [n.short_name for n in roles.workers] == ["node2", "node3", "node4", "node5"]
    assert roles.client.short_name == "node6" and roles.spare == ()
    groups = roles.groups()
    assert groups["k8s_cluster"] == groups["krios_control"] + groups["krios_workers"]
    assert "krios_spare" not in groups
    hv = roles.hostvars()[roles.workers[1].hostname]
    assert hv == {
        "ansible_host": "pc603.utah.cloudlab.example", "ansible_port": 22, "krios_role": "worker",
        "krios_node_index": 3, "krios_public_ip": "192.0.2.13", "krios_experiment_ip": "10.10.1.3",
        "krios_node_ip": "10.10.1.3", "krios_scenario": "sf_4workers", "krios_leozone": "37.7749_-122.4194",
        "krios_worker_index": 1, "krios_client_id": "node3", "krios_login_users": ["alice", "bob"],
    }
    control = inventory.assign_roles(nodes, sf, base_node_idx=1, node_network="control")
    assert control.hostvars("alice")[roles.control.hostname]["krios_node_ip"] == "192.0.2.11"
    assert control.hostvars("alice")[roles.control.hostname]["ansible_user"] == "alice"
    assert roles.ip_mapping()[roles.client.hostname] == "10.10.1.6"


def test_roles_default_base_is_lowest_index_and_rest_is_spare():
    nodes = inventory.parse_ip_mapping(FIX / "ip_mapping_14.json")
    roles = inventory.assign_roles(nodes, scenarios.load("tokyo_6workers"))
    assert roles.base_node_idx == 0 and roles.control.index == 0
    assert [n.index for n in roles.workers] == [1, 2, 3, 4, 5, 6]
    assert roles.client.index == 13
    assert [n.index for n in roles.spare] == [7, 8, 9, 10, 11, 12]
    assert [r for r, _ in roles.nodes()][:2] == ["control", "worker"]


@pytest.mark.parametrize("client", ["node0", f"node0.{DOM}", "0"])
def test_explicit_client_by_short_name_hostname_or_index(client):
    nodes = inventory.parse_manifest(M12)
    roles = inventory.assign_roles(nodes, scenarios.load("sf_4workers"), base_node_idx=1, client=client)
    assert roles.client.short_name == "node0"
    assert roles.nodes()[-1][0] == "spare" and len(roles.spare) == 6


@pytest.mark.parametrize(
    ("scenario", "base", "client", "field", "message"),
    [("tokyo_6workers", 1, None, "node index 7",
      r"need indices 1 \(control\), 2-7 \(6 workers\) and a client; missing 7 \(have 1, 2, 3, 4, 5, 6\)"),
     ("sf_4workers", 2, None, "client", r"indices 2 \(control\) and 3-6 \(4 workers\) leave no node for the client"),
     ("sf_4workers", 1, "node3", "client node3",
      r"is a worker \(2 of 4\) of sf_4workers; choose a node outside indices 1-5"),
     ("sf_4workers", 1, "node1", "client node1", "is the control node of sf_4workers"),
     ("sf_4workers", 1, "node42", "client node42", "no such node in .*ip_mapping.json \\(have node1, node2"),
     ("sf_4workers", -1, None, "base_node_idx -1", "non-negative integer")],
)
def test_role_errors(scenario, base, client, field, message):
    path = str(EXAMPLE / "ip_mapping.json")
    nodes = inventory.parse_ip_mapping(path)
    src = "options" if client or base < 0 else path
    with pytest.raises(ConfigError, match=message) as err:
        inventory.assign_roles(nodes, scenarios.load(scenario), base_node_idx=base, client=client,
                               source=path, options="options")
    assert (err.value.source, err.value.field) == (src, field)


def test_unknown_scenario_names_the_options_file_and_known_ones():
    with pytest.raises(ConfigError) as err:
        inventory.build(scenario="nyc_2workers", ip_mapping=EXAMPLE / "ip_mapping.json", options="krios.yml")
    assert str(err.value) == ("krios.yml: scenario nyc_2workers: unknown scenario "
                              "(known: seattle_4workers, sf_4workers, tokyo_6workers)")
    with pytest.raises(ConfigError, match="required"):
        inventory.build(scenario="", ip_mapping=EXAMPLE / "ip_mapping.json")


def test_no_nodes_and_bad_node_network():
    sf = scenarios.load("sf_4workers")
    with pytest.raises(ConfigError, match="too few nodes: the file lists none"):
        inventory.assign_roles(inventory.parse_ip_mapping_text("{}", source="e.json"), sf, source="e.json")
    with pytest.raises(ConfigError, match="must be one of experiment, control"):
        inventory.assign_roles([], sf, node_network="lan")


def test_build_and_node_round_trip(tmp_path):
    roles = inventory.build(scenario=str(ROOT / "scenarios" / "seattle_4workers.yml"),
                            manifest=M12, base_node_idx=2, client="node11", ansible_user="bob")
    assert roles.scenario.name == "seattle_4workers" and roles.client.short_name == "node11"
    assert roles.control.ssh_user == "alice"  # node2 lists only alice
    data = json.loads(json.dumps(roles.to_dict("bob")))
    assert data["groups"]["krios_workers"][-1] == f"node6.{DOM}"
    assert data["hostvars"][f"node11.{DOM}"]["krios_node_ip"] == "198.51.100.31"
    for node in inventory.parse_manifest(M12):
        assert inventory.Node.from_dict(json.loads(json.dumps(node.to_dict()))) == node

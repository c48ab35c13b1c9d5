"""The inventory plugin krios.testbed.krios through the real ``ansible-inventory`` and ``ansible-doc``.

Each call starts Ansible (about a second), so every good source is checked with one
``--list`` (groups, order and host variables together) and each bad input with one run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures" / "inventory"
EXAMPLE = ROOT / "inventories" / "cloudlab"
BIN = Path(sys.executable).parent
DOM = "krios-exp.krios-pg0.utah.cloudlab.example"
DEMO = "krios-demo.krios-pg0.utah.cloudlab.example"


def run(tool: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run an Ansible command line from the repository with its ansible.cfg."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KRIOS_", "ANSIBLE_"))}
    base.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {}))
    return subprocess.run([str(BIN / tool), *args], cwd=ROOT, env=base, capture_output=True, text=True,
                          timeout=120, check=False)


def source(folder: Path, **options) -> Path:
    """Write ``folder/krios.yml`` for the plugin with ``options``."""
    path = folder / "krios.yml"
    path.write_text(yaml.safe_dump({"plugin": "krios.testbed.krios", **options}, sort_keys=False))
    return path


def plain(value):
    """JSON from ``--list`` without Ansible's ``{"__ansible_unsafe": ...}`` wrappers (untrusted data)."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def inventory_list(path: Path, env: dict[str, str] | None = None) -> dict:
    proc = run("ansible-inventory", "-i", str(path), "--list", env=env)
    assert proc.returncode == 0, proc.stderr
    return plain(json.loads(proc.stdout))


def short(hosts: list[str]) -> list[str]:
    return [h.split(".", 1)[0] for h in hosts]


GRAPH = f"""\
@all:
  |--@ungrouped:
  |--@krios_client:
  |  |--node6.{DEMO}
  |--@k8s_cluster:
  |  |--@krios_control:
  |  |  |--node1.{DEMO}
  |  |--@krios_workers:
  |  |  |--node2.{DEMO}
  |  |  |--node3.{DEMO}
  |  |  |--node4.{DEMO}
  |  |  |--node5.{DEMO}
"""


def test_example_inventory_graph_as_documented():
    proc = run("ansible-inventory", "-i", "inventories/cloudlab/krios.yml", "--graph")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == GRAPH
    doc = (ROOT / "docs" / "guide" / "inventory.md").read_text()
    assert GRAPH in doc, "docs/guide/inventory.md shows a different --graph"
    assert (EXAMPLE / "krios.yml").read_text() in doc, "docs/guide/inventory.md shows a different krios.yml"


def test_directory_form_reads_only_krios_yml_and_prints_plain_values():
    """``-i inventories/cloudlab`` (the folder, as the playbook headers show) skips the node files beside krios.yml.

    ip_mapping.json and manifest.xml are the plugin's data (ansible.cfg
    ``[inventory] ignore_extensions``); the folder gives the same inventory as
    the file. On ansible-core 2.19 the plugin's plain values print as plain JSON,
    not ``{"__ansible_unsafe": ...}`` (only strings that could template are unsafe).
    """
    by_dir = run("ansible-inventory", "-i", "inventories/cloudlab", "--list")
    assert by_dir.returncode == 0, by_dir.stderr
    assert "Failed to parse" not in by_dir.stderr and "manifest.xml" not in by_dir.stderr, by_dir.stderr
    by_file = run("ansible-inventory", "-i", "inventories/cloudlab/krios.yml", "--list")
    assert by_file.returncode == 0, by_file.stderr
    assert json.loads(by_dir.stdout) == json.loads(by_file.stdout)
    assert "__ansible_unsafe" not in by_dir.stdout
    hv = json.loads(by_dir.stdout)["_meta"]["hostvars"][f"node1.{DEMO}"]
    assert (hv["ansible_host"], hv["krios_role"], hv["krios_node_index"]) == ("192.0.2.11", "control", 1)


def test_only_strings_that_could_template_are_marked_unsafe():
    import importlib.util

    from ansible.template import is_trusted_as_template  # ansible-core 2.19+

    spec = importlib.util.spec_from_file_location("krios_inventory_plugin", ROOT / "plugins/inventory/krios.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    safe = module._safe
    for text in ("{{ lookup('pipe', 'id') }}", "a{% if x %}b{% endif %}", "x{# c #}"):
        assert not is_trusted_as_template(safe(text)), text
    for value in ("192.0.2.11", "sf_4workers", "37.7749_-122.4194"):
        assert is_trusted_as_template(safe(value)) and safe(value) == value
    assert [safe(1), safe(None)] == [1, None]
    nested = safe({"users": ["alice", "{{ evil }}"]})
    assert is_trusted_as_template(nested["users"][0]) and not is_trusted_as_template(nested["users"][1])


def test_manifest_relative_to_source_folder_with_experiment_network(tmp_path):
    shutil.copy(EXAMPLE / "manifest.xml", tmp_path / "manifest.xml")
    data = inventory_list(source(tmp_path, manifest="manifest.xml", scenario="sf_4workers", base_node_idx=1))
    assert short(data["krios_workers"]["hosts"]) == ["node2", "node3", "node4", "node5"]
    assert set(data["k8s_cluster"]["children"]) == {"krios_control", "krios_workers"}
    hv = data["_meta"]["hostvars"][f"node6.{DEMO}"]
    assert hv["ansible_host"] == "pc606.utah.cloudlab.example" and hv["ansible_port"] == 22
    assert (hv["krios_role"], hv["krios_node_ip"], hv["krios_public_ip"]) == ("client", "10.10.1.6", "192.0.2.16")
    assert hv["krios_login_users"] == ["alice", "bob"] and "ansible_user" not in hv


def test_manifest_12_nodes_multi_user_control_network(tmp_path):
    data = inventory_list(source(tmp_path, manifest=str(FIX / "manifest_12.xml"), scenario="tokyo_6workers",
                                 base_node_idx=1, ansible_user="bob", node_network="control"))
    assert short(data["krios_control"]["hosts"]) == ["node1"]
    assert short(data["krios_workers"]["hosts"]) == ["node2", "node3", "node4", "node5", "node6", "node7"]
    assert short(data["krios_client"]["hosts"]) == ["node11"]
    assert short(data["krios_spare"]["hosts"]) == ["node0", "node8", "node9", "node10"]  # node10 after node9
    hv = data["_meta"]["hostvars"]
    node7 = hv[f"node7.{DOM}"]
    assert (node7["ansible_host"], node7["ansible_port"], node7["ansible_user"]) == (
        "pcvmpc507-1.utah.cloudlab.example", 27011, "bob")  # bob's own login on the shared VM
    assert node7["krios_worker_index"] == 5
    assert node7["krios_experiment_ip"] == "10.10.1.8"
    assert node7["krios_node_ip"] == node7["krios_public_ip"] == "198.51.100.27"  # node_network: control
    assert all(v["krios_node_ip"] == v["krios_public_ip"] for v in hv.values())
    assert hv[f"node9.{DOM}"]["krios_experiment_ip"] is None  # no experiment interface
    assert {v["krios_scenario"] for v in hv.values()} == {"tokyo_6workers"}


def test_manifest_experiment_network_falls_back_to_public(tmp_path):
    data = inventory_list(source(tmp_path, manifest=str(FIX / "manifest_12.xml"), scenario="sf_4workers",
                                 base_node_idx=7, client="node0"))
    hv = data["_meta"]["hostvars"]
    assert short(data["krios_workers"]["hosts"]) == ["node8", "node9", "node10", "node11"]
    assert short(data["krios_client"]["hosts"]) == ["node0"]
    assert hv[f"node9.{DOM}"]["krios_node_ip"] == "198.51.100.29"  # no experiment interface
    assert hv[f"node10.{DOM}"]["krios_node_ip"] == "10.10.1.11"
    assert hv[f"node7.{DOM}"]["ansible_port"] == 27010  # first login without ansible_user


def test_ip_mapping_14_nodes_ordered_by_number_with_env_scenario(tmp_path):
    path = source(tmp_path, ip_mapping=str(FIX / "ip_mapping_14.json"), base_node_idx=8)
    data = inventory_list(path, env={"KRIOS_SCENARIO": "sf_4workers"})
    assert short(data["krios_workers"]["hosts"]) == ["node9", "node10", "node11", "node12"]
    assert short(data["krios_client"]["hosts"]) == ["node13"]
    assert short(data["krios_spare"]["hosts"]) == [f"node{i}" for i in range(8)]
    hv = data["_meta"]["hostvars"][f"node10.{DOM}"]
    assert hv["ansible_host"] == hv["krios_node_ip"] == "203.0.113.50" and "ansible_port" not in hv
    assert (hv["krios_node_index"], hv["krios_worker_index"]) == (10, 1)


def test_constructed_compose_groups_keyed_groups(tmp_path):
    path = source(
        tmp_path, manifest=str(EXAMPLE / "manifest.xml"), scenario="sf_4workers", strict=True,
        compose={"ansible_host": "krios_public_ip", "k8s_node_name": "inventory_hostname.split('.')[0]"},
        groups={"satellites": "krios_role == 'worker'"},
        keyed_groups=[{"key": "krios_role", "prefix": "role"}, {"key": "krios_scenario", "separator": ""}],
    )
    data = inventory_list(path)
    assert short(data["satellites"]["hosts"]) == ["node2", "node3", "node4", "node5"]
    assert short(data["role_control"]["hosts"]) == ["node1"]
    assert short(data["role_client"]["hosts"]) == ["node6"]
    assert len(data["sf_4workers"]["hosts"]) == 6
    hv = data["_meta"]["hostvars"][f"node3.{DEMO}"]
    assert (hv["ansible_host"], hv["k8s_node_name"]) == ("192.0.2.13", "node3")


def test_cache_plugin_stores_nodes_and_notices_a_changed_file(tmp_path):
    cache = tmp_path / "cache"
    node_file = tmp_path / "ip_mapping.json"
    shutil.copy(EXAMPLE / "ip_mapping.json", node_file)
    path = source(tmp_path, ip_mapping="ip_mapping.json", scenario="sf_4workers", cache=True,
                  cache_plugin="ansible.builtin.jsonfile", cache_connection=str(cache))
    first = inventory_list(path)
    [entry] = list(cache.iterdir())
    assert "192.0.2.16" in entry.read_text()
    assert inventory_list(path) == first
    mapping = json.loads(node_file.read_text())
    mapping[f"node6.{DEMO}"] = "192.0.2.66"
    node_file.write_text(json.dumps(mapping) + "\n")
    assert inventory_list(path)["_meta"]["hostvars"][f"node6.{DEMO}"]["krios_public_ip"] == "192.0.2.66"
    both = source(tmp_path, ip_mapping="ip_mapping.json", manifest=str(EXAMPLE / "manifest.xml"),
                  scenario="sf_4workers", cache=True, cache_plugin="ansible.builtin.jsonfile",
                  cache_connection=str(cache))
    proc = run("ansible-inventory", "-i", str(both), "--graph")
    assert proc.returncode != 0 and "not both" in proc.stderr  # a cached node list never hides bad options


def test_ansible_doc_renders():
    proc = run("ansible-doc", "-t", "inventory", "krios.testbed.krios")
    assert proc.returncode == 0, proc.stderr
    for word in ("ip_mapping", "manifest", "base_node_idx", "node_network", "keyed_groups", "cache_plugin",
                 "EXAMPLES", "plugin: krios.testbed.krios"):
        assert word in proc.stdout
    doc = json.loads(run("ansible-doc", "-t", "inventory", "--json", "krios.testbed.krios").stdout)
    options = doc["krios.testbed.krios"]["doc"]["options"]
    assert options["scenario"]["required"] is True
    assert options["node_network"]["choices"] == ["experiment", "control"]


BAD = FIX / "bad"
SIX = str(EXAMPLE / "ip_mapping.json")


def bad(name: str) -> str:
    return str(BAD / name)


@pytest.mark.parametrize(
    ("options", "line"),
    [
        pytest.param({"ip_mapping": "nope.json"}, "{tmp}/nope.json: no such file", id="missing-file"),
        pytest.param({"ip_mapping": str(BAD)}, f"{BAD}: cannot read: Is a directory", id="unreadable"),
        pytest.param({"ip_mapping": bad("not_json.json")},
                     "{bad}/not_json.json: line 4 column 3: invalid JSON: Expecting ',' delimiter", id="bad-json"),
        pytest.param({"ip_mapping": bad("not_object.json")}, "{bad}/not_object.json: must be a JSON object",
                     id="json-not-object"),
        pytest.param({"manifest": bad("not_xml.xml")},
                     "{bad}/not_xml.xml: line 16 column 7: invalid XML: mismatched tag", id="bad-xml"),
        pytest.param({"manifest": bad("dtd.xml")}, "{bad}/dtd.xml: refusing XML with a DTD or entity declaration",
                     id="xml-dtd"),
        pytest.param({"manifest": bad("request.xml")},
                     "{bad}/request.xml: rspec type: a request RSpec, not a manifest", id="request-rspec"),
        pytest.param({"manifest": bad("wrong_root.xml")}, "{bad}/wrong_root.xml: not a GENI RSpec v3 document",
                     id="wrong-root"),
        pytest.param({"ip_mapping": SIX, "manifest": str(EXAMPLE / "manifest.xml")},
                     "{tmp}/krios.yml: ip_mapping/manifest: give either ip_mapping or manifest, not both",
                     id="both-sources"),
        pytest.param({}, "{tmp}/krios.yml: ip_mapping/manifest: give one of ip_mapping", id="no-source"),
        pytest.param({"ip_mapping": bad("no_index.json")},
                     "{bad}/no_index.json: head.{demo}: hostname has no numeric index in its first label 'head'",
                     id="json-no-index"),
        pytest.param({"manifest": bad("no_index.xml")},
                     "{bad}/no_index.xml: node node2 host name: hostname has no numeric index", id="xml-no-index"),
        pytest.param({"ip_mapping": bad("dup_index.json")},
                     "{bad}/dup_index.json: node03.{demo}: index 3 is also used by node3.{demo}",
                     id="json-dup-index"),
        pytest.param({"manifest": bad("dup_index.xml")},
                     "{bad}/dup_index.xml: node05.{demo}: index 5 is also used by node5.{demo}", id="xml-dup-index"),
        pytest.param({"ip_mapping": bad("dup_host.json")},
                     "{bad}/dup_host.json: node1.krios-demo.example: hostname listed twice", id="json-dup-host"),
        pytest.param({"ip_mapping": bad("bad_ipv4.json")},
                     "{bad}/bad_ipv4.json: node4.{demo}: invalid IPv4 address '192.0.2.300'", id="json-bad-ipv4"),
        pytest.param({"manifest": bad("bad_ipv4.xml")},
                     "{bad}/bad_ipv4.xml: node node4 host ipv4: invalid IPv4 address '192.0.2.999'",
                     id="xml-bad-ipv4"),
        pytest.param({"manifest": bad("bad_port.xml")}, "{bad}/bad_port.xml: node node1: invalid login port 'ssh'",
                     id="xml-bad-port"),
        pytest.param({"ip_mapping": SIX, "scenario": "nyc_2workers"},
                     "{tmp}/krios.yml: scenario nyc_2workers: unknown scenario "
                     "(known: seattle_4workers, sf_4workers, tokyo_6workers)", id="unknown-scenario"),
        pytest.param({"ip_mapping": SIX, "scenario": "tokyo_6workers"},
                     f"{SIX}: node index 7: too few nodes for tokyo_6workers with base_node_idx 1: "
                     "need indices 1 (control), 2-7 (6 workers) and a client; missing 7", id="too-few-workers"),
        pytest.param({"ip_mapping": SIX, "base_node_idx": 2},
                     f"{SIX}: client: too few nodes for sf_4workers with base_node_idx 2", id="no-client-left"),
        pytest.param({"ip_mapping": SIX, "client": "node3"},
                     "{tmp}/krios.yml: client node3: node3.{demo} is a worker (2 of 4) of sf_4workers",
                     id="client-is-worker"),
        pytest.param({"ip_mapping": SIX, "client": "node1"},
                     "{tmp}/krios.yml: client node1: node1.{demo} is the control node", id="client-is-control"),
        pytest.param({"ip_mapping": SIX, "client": "node9"}, "{tmp}/krios.yml: client node9: no such node",
                     id="client-unknown"),
    ],
)
def test_bad_input_fails_with_one_line(tmp_path, options, line):
    path = source(tmp_path, **{"scenario": "sf_4workers", "base_node_idx": 1, **options})
    proc = run("ansible-inventory", "-i", str(path), "--graph")
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert f"Completely failed to parse inventory source {path}" in proc.stderr
    expected = line.format(tmp=tmp_path, bad=BAD, demo=DEMO)
    ours = [ln for ln in proc.stderr.splitlines() if "krios' plugin:" in ln]
    assert ours, proc.stderr
    assert ours[0].split("krios' plugin: ", 1)[1].startswith(expected), ours[0]


def test_missing_krios_package_is_a_clear_error(tmp_path):
    """Ansible run by a Python without the krios package says what to do."""
    path = source(tmp_path, ip_mapping=SIX, scenario="sf_4workers")
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "krios.py").write_text("raise ImportError('krios hidden for this test')\n")
    proc = run("ansible-inventory", "-i", str(path), "--graph", env={"PYTHONPATH": str(blocker)})
    assert proc.returncode != 0
    assert "needs the krios Python package" in proc.stderr
    assert "Traceback" not in proc.stderr

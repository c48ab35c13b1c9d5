"""The krios.testbed.krios_netem module: ansible-doc, check mode and idempotence in real playbook runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from emulation_helpers import veth_namespace

from krios.emulation import netem

NS_DESIRED = [netem.Destination("10.99.0.2", 20), netem.Destination("10.99.0.3", 35, 1)]

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture
def veth_netns():
    with veth_namespace() as name:
        yield name


def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        PATH=f"{BIN}:{env.get('PATH', '')}",
    )
    return env


def run_playbook(tmp_path: Path, tasks: list[dict], extra: dict | None = None) -> list[dict]:
    """Run tasks on localhost; return each task's result for localhost, in order."""
    book = tmp_path / f"play{len(list(tmp_path.glob('play*.yml')))}.yml"
    book.write_text(yaml.safe_dump([{"name": "Netem", "hosts": "localhost", "gather_facts": False,
                                     "tasks": tasks}], sort_keys=False))  # fmt: skip
    argv = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
            "-e", f"ansible_python_interpreter={sys.executable}", str(book)]  # fmt: skip
    for k, v in (extra or {}).items():
        argv += ["-e", f"{k}={v}"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=ansible_env(), cwd=REPO, timeout=180)
    assert "{" in proc.stdout, proc.stderr
    # the JSON document; ansible.cfg's profile_tasks/timer callbacks print lines around it
    doc, _end = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("\n{") + 1:])
    results = [t["hosts"]["localhost"] for t in doc["plays"][0]["tasks"]]
    assert proc.returncode == 0 or any(r.get("failed") for r in results), proc.stderr
    return results


def test_ansible_doc_documents_the_module():
    proc = subprocess.run([str(BIN / "ansible-doc"), "krios.testbed.krios_netem"], capture_output=True,
                          text=True, env=ansible_env(), cwd=REPO, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for word in ("destinations", "delay_ms", "jitter_ms", "state", "check_mode", "EXAMPLES", "commands"):
        assert word in proc.stdout


def task(name: str, check: bool = False, **args: object) -> dict:
    t = {"name": name, "krios.testbed.krios_netem": args}
    if check:
        t["check_mode"] = True
    return t


def test_module_check_mode_and_idempotence_in_a_netns(tmp_path, veth_netns):
    ns = veth_netns
    dests = [{"ip": d.ip, "delay_ms": d.delay_ms, "jitter_ms": d.jitter_ms} for d in NS_DESIRED]
    tc = netem.Tc("v0", netns=ns)
    has_netem, _why = netem.netem_support()

    # 1. fresh device: check mode reports the full plan and changes nothing; absent is a no-op
    r = run_playbook(tmp_path, [
        task("plan", check=True, dev="v0", netns=ns, destinations=dests),
        task("absent on a clean device", dev="v0", netns=ns, state="absent"),
    ])  # fmt: skip
    assert r[0]["changed"] is True and r[0]["commands"] == plan_cmds(tc, NS_DESIRED)
    assert len(r[0]["commands"]) == 7
    assert r[1]["changed"] is False and r[1]["commands"] == []
    assert not tc.state().managed  # check mode ran nothing

    # 2. with the structure in place (and the leaves where the kernel has netem)
    tc.execute(c for c in netem.plan(tc.state(), NS_DESIRED) if has_netem or "netem" not in c)
    r = run_playbook(tmp_path, [
        task("plan again", check=True, dev="v0", netns=ns, destinations=dests),
        task("absent, check mode", check=True, dev="v0", netns=ns, state="absent"),
        task("absent", dev="v0", netns=ns, state="absent"),
        task("absent again", dev="v0", netns=ns, state="absent"),
    ])  # fmt: skip
    if has_netem:
        assert r[0]["changed"] is False and r[0]["commands"] == []
    else:  # only the netem leaves are missing: exactly those are planned
        assert r[0]["changed"] is True
        assert [c[2] for c in r[0]["commands"]] == ["add", "add"]
        assert all(c[9] == "netem" for c in r[0]["commands"])
    assert r[1]["changed"] is True and r[1]["commands"] == [["tc", "qdisc", "del", "dev", "v0", "root"]]
    assert r[2]["changed"] is True and r[3]["changed"] is False
    assert not tc.state().managed


def test_module_applies_for_real_where_netem_exists(tmp_path, veth_netns):
    has_netem, why = netem.netem_support()
    if not has_netem:
        pytest.skip(f"needs a kernel with netem: {why}")
    dests = [{"ip": d.ip, "delay_ms": d.delay_ms, "jitter_ms": d.jitter_ms} for d in NS_DESIRED]
    r = run_playbook(tmp_path, [
        task("apply", dev="v0", netns=veth_netns, destinations=dests),
        task("apply again", dev="v0", netns=veth_netns, destinations=dests),
        task("change one", dev="v0", netns=veth_netns, destinations=[{**dests[0], "delay_ms": 50}, dests[1]]),
    ])  # fmt: skip
    assert r[0]["changed"] and not r[1]["changed"]
    assert [c[2] for c in r[2]["commands"]] == ["change"]


def test_module_reports_bad_input_as_one_failure(tmp_path, veth_netns):
    r = run_playbook(tmp_path, [
        {**task("bad ip", dev="v0", netns=veth_netns, destinations=[{"ip": "node-1", "delay_ms": 5}]),
         "ignore_errors": True},
    ])  # fmt: skip
    assert r[0]["failed"] and "destination: node-1: not an IP address" in r[0]["msg"]


def plan_cmds(tc: netem.Tc, dests: list[netem.Destination]) -> list[list[str]]:
    return netem.plan(tc.state(), dests)

"""Role krios_cni_bridge (krios_cni: bridge) against the real local apiserver and a Debian 12 chroot.

Two Node objects are created in the session's real control plane with the
``spec.podCIDR`` and InternalIP a controller-manager and a kubelet would give
them. The role then runs for real on a chroot host named after the first one:
Debian's containernetworking-plugins are installed from the mirror, the Nodes
are read from the API, and the conflist is written on that node's podCIDR; the
routes it computes (exported with ``public: true``) go to the other node's
podCIDR via its address. Routes and iptables belong to a running kernel, so in
a chroot (``krios_runtime_changes`` false) they are computed, not applied; the
lab test applies them on real nodes.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from provisioning_helpers import BIN, REPO, PlaybookRun, env, write_inventory
from test_provisioning_chroot import debian_root  # noqa: F401  (fixture)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

PLAY = """\
- name: The bridge pod network on a chroot node
  hosts: k8s_cluster
  become: false
  gather_facts: false
  tasks:
    - name: Run krios_cni_bridge
      ansible.builtin.include_role:
        name: krios_cni_bridge
        public: true
    - name: Export the routes the role computed
      ansible.builtin.copy:
        content: "{{ krios_cni_bridge_peers | to_json }}"
        dest: /root/krios-peers.json
        mode: "0600"
"""


def _task(output: str, start: str) -> str:
    """The output of the first task whose name starts with ``start``."""
    part = output.split(f": {start}", 1)[1] if f": {start}" in output else ""
    return part.split("\nTASK [", 1)[0]


def test_conflist_on_the_nodes_pod_cidr_and_routes_to_the_others(
    tmp_path: Path, control_plane, core_v1, debian_root: Path  # noqa: F811
) -> None:
    from kubernetes import client

    if os.geteuid() != 0:
        pytest.skip("chroot needs root")
    prefix = f"cni-{uuid.uuid4().hex[:8]}"
    nodes = {f"{prefix}-a": ("10.244.7.0/24", "10.213.0.17"), f"{prefix}-b": ("10.244.8.0/24", "10.213.0.18")}
    for name, (cidr, address) in nodes.items():
        core_v1.create_node(client.V1Node(metadata=client.V1ObjectMeta(name=name),
                                          spec=client.V1NodeSpec(pod_cidr=cidr)))
        core_v1.patch_node_status(name, {"status": {"addresses": [{"type": "InternalIP", "address": address}]}})
    try:
        host = {"ansible_host": str(debian_root), "ansible_connection": "community.general.chroot",
                "ansible_python_interpreter": "/usr/bin/python3", "krios_node_ip": "10.213.0.17",
                "krios_node_index": 1}
        inv = write_inventory(tmp_path / "chroot.yml", {"all": {"children": {"k8s_cluster": {"children": {
            "krios_control": {"hosts": {f"{prefix}-a": host}}}}}}})
        (tmp_path / "play.yml").write_text(PLAY)
        # krios_runtime_changes false: the role finds the chroot itself; said here too, because routes
        # and iptables applied from a chroot would change THIS machine's kernel.
        extra = {"krios_kubeconfig": str(control_plane.kubeconfig), "krios_cni": "bridge",
                 "krios_pod_cidr": "10.244.0.0/16", "krios_runtime_changes": False}
        proc = subprocess.run([str(BIN / "ansible-playbook"), str(tmp_path / "play.yml"), "-i", str(inv),
                               "-e", json.dumps(extra)], cwd=REPO, env=env(), capture_output=True, text=True,
                              timeout=900, check=False)
        run = PlaybookRun(proc.args, proc.returncode, proc.stdout + proc.stderr)
        assert run.returncode == 0, run.explain()
        # the chroot was recognised: nothing was applied to the running kernel
        assert "Masquerade pod traffic" in run.output and "changed: [" not in _task(run.output, "Masquerade")
        conflist = json.loads((debian_root / "etc/cni/net.d/10-krios-bridge.conflist").read_text())
        bridge, portmap = conflist["plugins"]
        assert (bridge["type"], bridge["bridge"], bridge["isGateway"], bridge["ipMasq"]) == ("bridge", "cni0", True,
                                                                                             False)
        assert bridge["ipam"]["type"] == "host-local"
        assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.7.0/24"}]]
        assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}}
        peers = json.loads((debian_root / "root/krios-peers.json").read_text())
        assert peers == [{"name": f"{prefix}-b", "cidr": "10.244.8.0/24", "address": "10.213.0.18"}]
        for plugin in ("bridge", "host-local", "portmap"):
            assert (debian_root / "usr/lib/cni" / plugin).is_file(), plugin
    finally:
        for name in nodes:
            core_v1.delete_node(name)

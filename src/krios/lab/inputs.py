"""The files a user of real nodes would have, written for the lab's nodes.

* ``ip_mapping.json``: fully-qualified hostname -> address (what ``krios_setup.py`` reads);
* ``manifest.xml``: a CloudLab/GENI manifest RSpec with, per node, ``<host name= ipv4=>``
  (the "public" address) and one experiment-LAN ``<interface><ip>``. In the lab both
  are the node's one address on the lab subnet: one bridge is enough, and Kubernetes
  uses the experiment address as on CloudLab (``node_network: experiment``);
* a scenario file ``lab_<N>workers.yml`` (when no scenario is given) whose ``workers``
  matches the lab, so the inventory's role assignment fits;
* ``krios.yml`` for the ``krios.testbed.krios`` inventory plugin, with the SSH key and
  the lab's own ``known_hosts`` composed into every host;
* ``ssh_config`` for people: ``ssh -F .krios/lab/ssh_config node0``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

#: DNS suffix of the lab's hostnames (CloudLab's are node<i>.<exp>.<proj>.<site>.cloudlab.us).
DOMAIN = "lab.krios.local"


@dataclass(frozen=True)
class LabNode:
    """One node container."""

    index: int
    role: str  # control | worker | client
    container: str  # podman container name
    hostname: str  # short hostname inside the node (node0)
    address: str  # its address on the lab subnet
    volume: str  # podman volume mounted at /var/lib/containerd

    @property
    def fqdn(self) -> str:
        return f"{self.hostname}.{DOMAIN}"

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "role": self.role,
            "container": self.container,
            "hostname": self.hostname,
            "fqdn": self.fqdn,
            "address": self.address,
            "volume": self.volume,
        }


def ip_mapping(nodes: Sequence[LabNode]) -> str:
    return json.dumps({n.fqdn: n.address for n in nodes}, indent=2) + "\n"


def manifest(nodes: Sequence[LabNode], name: str, user: str = "root") -> str:
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f"<!-- krios lab {name}: node containers on one machine (krios.lab); public and experiment",
        "     addresses are the same lab-subnet address. -->",
        '<rspec xmlns="http://www.geni.net/resources/rspec/3"'
        ' xmlns:emulab="http://www.protogeni.net/resources/rspec/ext/emulab/1" type="manifest">',
    ]
    for n in nodes:
        lines += [
            f'  <node client_id="{n.hostname}" exclusive="true"'
            f' component_id="urn:publicid:IDN+{DOMAIN}+node+{n.container}">',
            '    <sliver_type name="raw-pc"/>',
            '    <hardware_type name="krios-lab"/>',
            "    <services>",
            f'      <login authentication="ssh-keys" hostname={quoteattr(n.address)} port="22"'
            f" username={quoteattr(user)}/>",
            "    </services>",
            f'    <interface client_id="{n.hostname}:eth0">',
            f'      <ip address="{n.address}" type="ipv4" netmask="255.255.255.0"/>',
            "    </interface>",
            f'    <host name="{n.fqdn}" ipv4="{n.address}"/>',
            "  </node>",
        ]
    lines.append("</rspec>")
    return "\n".join(lines) + "\n"


def scenario(workers: int) -> tuple[str, str]:
    """``(file name, YAML)`` of a scenario for the lab (sf_4workers' zone, ``workers`` workers)."""
    name = f"lab_{workers}workers"
    text = (
        "---\n"
        f"# Scenario {name}: written by krios.lab for a lab of {workers} worker node container(s).\n"
        f"name: {name}\n"
        f'description: "San Francisco (37.7749, -122.4194), {workers} worker node container(s) on one machine"\n'
        "zone:\n  lat: 37.7749\n  lon: -122.4194\n  radius_km: 100\n  min_elevation_deg: 25\n"
        f"workers: {workers}\n"
        'constellation:\n  shell: starlink-1\n  epoch: "2026-01-01T00:00:00Z"\n'
        'start: "2026-01-01T00:00:00Z"\nduration_s: 120\nacceleration: 10\nseed: 42\ntick_s: 1.0\npolicy: krios\n'
    )
    return f"{name}.yml", text


def krios_yml(
    state_dir: Path,
    scenario_ref: str,
    base_node_idx: int,
    client: str,
    key: Path,
    known_hosts: Path,
    user: str = "root",
) -> str:
    ssh_args = (
        f"-o IdentitiesOnly=yes -o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes "
        "-o ControlMaster=auto -o ControlPersist=60s"
    )
    return (
        "---\n"
        "# Written by krios.lab (krios lab up): the lab's node containers, for the krios inventory plugin.\n"
        f"#   ansible -i {state_dir / 'krios.yml'} all -m ping\n"
        "plugin: krios.testbed.krios\n"
        "manifest: manifest.xml\n"
        f"scenario: {json.dumps(scenario_ref)}\n"
        f"base_node_idx: {base_node_idx}\n"
        f"client: {client}\n"
        f"ansible_user: {user}\n"
        "node_network: experiment\n"
        "compose:\n"
        f"  ansible_ssh_private_key_file: {json.dumps(repr(str(key)))}\n"
        f"  ansible_ssh_common_args: {json.dumps(repr(ssh_args))}\n"
        "  ansible_python_interpreter: \"'/usr/bin/python3'\"\n"
    )


def group_vars() -> str:
    """``group_vars/all.yml`` beside the lab's ``krios.yml``: what the lab needs that CloudLab does not.

    The offline artifact source at the one Kubernetes version built here
    (binaries of scripts/build-control-plane.sh, image archives of
    scripts/build-node-images.sh tagged ``registry.krios.local``), the bridge CNI
    (Calico's images are not reachable here), and what nodes in containers on
    cgroup v1 without CAP_SYS_RESOURCE need (docs/guide/lab.md says why each).
    """
    return """---
# Written by krios.lab (krios lab up): settings for the lab's node containers.
# Ansible reads this file because it sits beside krios.yml (docs/guide/lab.md).
krios_artifact_source: local                           # binaries + image archives built on this machine
krios_kubernetes_version: "1.20"                       # what Debian's source package builds
krios_kubeadm_image_repository: registry.krios.local   # the names the archives are tagged with
krios_kubeadm_etcd_image_tag: "3.4.23"                 # Debian's etcd in the etcd image
# crictl: Debian 12 has none (a shim stands in); SystemVerification: no /lib/modules;
# ImagePull: no CoreDNS image (its phase is skipped).
krios_kubeadm_ignore_preflight_errors: [FileExisting-crictl, SystemVerification, ImagePull]
krios_cni: bridge                                      # bridge + host-local per podCIDR, routes between nodes
krios_pod_cidr: 10.244.0.0/16
krios_cgroup_driver: cgroupfs                          # nodes in containers on cgroup v1
krios_kubelet_fail_swap_on: false
krios_container_runtime_restrict_oom_score_adj: true   # no CAP_SYS_RESOURCE in a node container
krios_kubeadm_control_plane_kube_proxy_config: {mode: iptables, conntrack: {maxPerCore: 0}}
krios_kubeadm_control_plane_kubelet_config: {imageGCHighThresholdPercent: 100}
krios_deploy_app_image: registry.krios.local/krios-app:0.1   # the seed's nginx: not in any registry here
"""


def ssh_config(nodes: Sequence[LabNode], key: Path, known_hosts: Path, user: str = "root") -> str:
    out = ["# Written by krios.lab: ssh -F <this file> node0"]
    for n in nodes:
        out += [
            f"Host {n.hostname} {n.fqdn} {n.address}",
            f"  HostName {n.address}",
            f"  User {user}",
            f"  IdentityFile {key}",
            "  IdentitiesOnly yes",
            f"  UserKnownHostsFile {known_hosts}",
            "  StrictHostKeyChecking yes",
            "",
        ]
    return "\n".join(out)

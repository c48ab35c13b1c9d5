# Copyright (c) krios-testbed contributors
# Apache License 2.0 (see the repository's pyproject.toml)

from __future__ import annotations

DOCUMENTATION = r"""
name: krios
author:
  - krios-testbed contributors
short_description: Krios experiment nodes from ip_mapping.json or a CloudLab manifest
version_added: 0.1.0
requirements:
  - the C(krios) Python package (this repository, C(pip install -e .)) importable by the Python that runs Ansible
description:
  - Reads the machines of one Krios experiment from an C(ip_mapping.json) file (hostname to IPv4)
    or a CloudLab/GENI manifest RSpec (C(manifest.xml)), and gives them roles for a scenario.
  - Uses a YAML configuration file whose name ends with C(krios.yml) or C(krios.yaml)
    (for example C(inventories/cloudlab/krios.yml)).
  - Every hostname must carry a numeric index in its first label (C(node7.exp.proj.utah.cloudlab.us));
    nodes are ordered by that number, so C(node10) comes after C(node2).
  - The node with index O(base_node_idx) is the Kubernetes control plane (group C(krios_control)); the next
    N indices, N being the scenario's C(workers), are the satellite workers (C(krios_workers)); both form
    C(k8s_cluster). The client (C(krios_client)) is O(client), by default the node with the highest index.
    Any other node lands in C(krios_spare).
  - Host variables set on every host are C(ansible_host) (the manifest's login hostname, else the public
    IPv4), C(ansible_port) (manifest login port, when given), C(ansible_user) (when O(ansible_user) is set),
    C(krios_role) (control, worker, client or spare), C(krios_node_index), C(krios_public_ip),
    C(krios_experiment_ip) (first experiment-LAN IPv4 or null), C(krios_node_ip) (the address kubelet and
    Calico use, see O(node_network)), C(krios_scenario), C(krios_leozone); workers also get
    C(krios_worker_index) (0-based); manifest nodes also get C(krios_client_id) and C(krios_login_users).
  - String options may be Jinja2 templates (for example V("{{ lookup('ansible.builtin.env', 'USER') }}")).
  - Any bad input (missing or unreadable file, invalid JSON or XML, both or neither source, a hostname
    without an index, two hosts with one index, an invalid IPv4 address, an unknown scenario, too few
    nodes, a client that is the control node or a worker) fails the inventory with one line naming the
    file and the entry.
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: Marks this file as a source for this plugin.
    type: string
    required: true
    choices: ['krios', 'krios.testbed.krios']
  ip_mapping:
    description:
      - JSON file mapping each node's fully-qualified hostname to its public IPv4 address,
        as the original C(krios_setup.py) reads it.
      - A relative path is resolved against the folder of this inventory file.
      - Give exactly one of O(ip_mapping) and O(manifest).
    type: string
  manifest:
    description:
      - CloudLab/GENI manifest RSpec (XML, namespace C(http://www.geni.net/resources/rspec/3)) of the experiment,
        as downloaded from the experiment page (C(Manifest) tab).
      - Each C(<node>) gives C(<host name= ipv4=>) (public, control network), C(<interface><ip type=ipv4>)
        (experiment LAN, the first one is used) and C(<services><login hostname= port= username=>).
      - A relative path is resolved against the folder of this inventory file.
    type: string
  scenario:
    description:
      - Scenario name (a file C(scenarios/<name>.yml), or on C(KRIOS_SCENARIO_PATH)) or a path to a scenario file.
        Its C(workers) sets how many worker nodes follow the control node.
      - Built in are C(sf_4workers), C(seattle_4workers) and C(tokyo_6workers).
    type: string
    required: true
    env:
      - name: KRIOS_SCENARIO
  base_node_idx:
    description:
      - Index of the control node; workers take the next indices.
      - Default is the lowest index present.
    type: int
    env:
      - name: KRIOS_BASE_NODE_IDX
  client:
    description:
      - The client node, by full hostname, first label (C(node7)), manifest C(client_id) or index.
      - It must exist and be neither the control node nor a worker. Default is the node with the highest index.
    type: string
  ansible_user:
    description:
      - SSH user set as C(ansible_user) on every host.
      - With O(manifest), also picks which C(<login>) (hostname and port) to use when a node lists several users;
        without it, the first login is used.
    type: string
  node_network:
    description:
      - Which address becomes C(krios_node_ip), the one kubelet and Calico bind to.
      - V(experiment) uses the node's experiment-LAN address when it has one, else its public address;
        V(control) always uses the public address.
    type: string
    default: experiment
    choices: ['experiment', 'control']
"""

EXAMPLES = r"""
---
# inventories/cloudlab/krios.yml: nodes from ip_mapping.json (next to this file).
# ansible-inventory -i inventories/cloudlab/krios.yml --graph
plugin: krios.testbed.krios
ip_mapping: ip_mapping.json
scenario: sf_4workers
base_node_idx: 1

---
# From the CloudLab manifest, SSH as one of several project users, Kubernetes on the
# public network, an explicit client and extra groups per role.
plugin: krios.testbed.krios
manifest: manifest.xml
scenario: tokyo_6workers
base_node_idx: 0
client: node9
ansible_user: alice
node_network: control
keyed_groups:
  - key: krios_role
    prefix: role
compose:
  ansible_host: krios_public_ip
groups:
  satellites: krios_role == 'worker'

---
# Cache the parsed nodes (re-read when the node file changes).
plugin: krios.testbed.krios
manifest: manifest.xml
scenario: seattle_4workers
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/krios/inventory
"""

import os  # noqa: E402  (imports follow the documentation, as in every Ansible plugin)

from ansible.errors import AnsibleError, AnsibleParserError  # noqa: E402
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable  # noqa: E402
from ansible.utils.unsafe_proxy import wrap_var  # noqa: E402

try:  # ansible-core 2.19+ (data tagging): plain values must be marked trusted explicitly
    from ansible.template import trust_as_template
except ImportError:  # older ansible-core: values are trusted unless wrapped with wrap_var
    trust_as_template = None

try:
    from krios.config import inventory as krios_inventory
    from krios.errors import KriosError
except ImportError as exc:  # the Python running Ansible lacks the krios package
    KRIOS_IMPORT_ERROR: ImportError | None = exc
else:
    KRIOS_IMPORT_ERROR = None


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    """Nodes of a Krios experiment, with roles for a scenario."""

    NAME = "krios.testbed.krios"

    def verify_file(self, path):
        """Accept readable files whose name ends with krios.yml or krios.yaml."""
        if not super().verify_file(path):
            return False
        if path.endswith(("krios.yml", "krios.yaml")):
            return True
        self.display.vvv(f"Skipping {path}: krios inventory files end with 'krios.yml' or 'krios.yaml'")
        return False

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path)
        config = self._read_config_data(path)
        if KRIOS_IMPORT_ERROR is not None:
            raise AnsibleError(
                f"{path}: the krios.testbed.krios inventory needs the krios Python package, "
                f"which the Python running Ansible cannot import ({KRIOS_IMPORT_ERROR}); "
                "run Ansible from the repository's venv (.venv/bin/ansible-inventory) "
                "or 'pip install -e <repository>'"
            )
        try:
            # a typo (base_node_index) would silently leave the default in place
            krios_inventory.check_options(config, self._options, source=path)
            roles = self._roles(path, cache)
        except KriosError as err:
            raise AnsibleParserError(str(err)) from None
        self._populate(roles)

    # ----------------------------------------------------------------- helpers

    def _str_option(self, name):
        """A string option as plain text, rendered first if it is a Jinja2 template."""
        value = self.get_option(name)
        if value is None:
            return None
        if self.templar.is_template(value):
            value = self.templar.template(value)
        return None if value is None else str(value)

    def _file_option(self, name, folder):
        value = self._str_option(name)
        if not value:
            return None
        return os.path.normpath(os.path.join(folder, os.path.expanduser(value)))

    def _scenario(self, path, folder):
        text = self._str_option("scenario") or ""
        if text.endswith((".yml", ".yaml")) or os.sep in text:
            text = os.path.normpath(os.path.join(folder, os.path.expanduser(text)))
        return krios_inventory.load_scenario(text, options=path)

    def _roles(self, path, cache):
        """Read the options, the scenario and the node file; assign roles."""
        folder = os.path.dirname(os.path.abspath(path))
        ip_mapping = self._file_option("ip_mapping", folder)
        manifest = self._file_option("manifest", folder)
        ansible_user = self._str_option("ansible_user")
        scenario = self._scenario(path, folder)
        nodes, source = self._nodes(path, ip_mapping, manifest, ansible_user, cache)
        return krios_inventory.assign_roles(
            nodes,
            scenario,
            base_node_idx=self.get_option("base_node_idx"),
            client=self._str_option("client"),
            node_network=self.get_option("node_network"),
            source=source,
            options=path,
        )

    def _nodes(self, path, ip_mapping, manifest, ansible_user, cache):
        """Parsed nodes, from the cache when it holds them for this exact node file."""
        use_cache = bool(cache and self.get_option("cache"))
        key = self.get_cache_key(path)
        # Only a single node file is cached: "both" or "neither" must still fail.
        stamp = _stamp(ip_mapping or manifest, ansible_user) if bool(ip_mapping) != bool(manifest) else None
        if use_cache and stamp is not None:
            try:
                entry = self._cache[key]
            except KeyError:
                entry = None
            if isinstance(entry, dict) and entry.get("stamp") == stamp:
                nodes = [krios_inventory.Node.from_dict(n) for n in entry["nodes"]]
                self.display.vvv(f"krios inventory: {len(nodes)} nodes from the cache")
                return nodes, entry["source"]
        nodes, source = krios_inventory.load_nodes(
            ip_mapping, manifest, ansible_user=ansible_user, source=path
        )
        if self.get_option("cache"):
            self._cache[key] = {
                "stamp": stamp,
                "source": source,
                "nodes": [n.to_dict() for n in nodes],
            }
        return nodes, source

    def _populate(self, roles):
        strict = self.get_option("strict")
        for group in roles.groups():
            self.inventory.add_group(group)
        self.inventory.add_child(krios_inventory.CLUSTER_GROUP, krios_inventory.GROUPS["control"])
        self.inventory.add_child(krios_inventory.CLUSTER_GROUP, krios_inventory.GROUPS["worker"])
        hostvars = roles.hostvars(self._str_option("ansible_user"))
        for role, node in roles.nodes():
            host = node.hostname
            self.inventory.add_host(host, group=krios_inventory.GROUPS[role])
            for key, value in hostvars[host].items():
                self.inventory.set_variable(host, key, _safe(value))
        for host in hostvars:
            variables = self.inventory.get_host(host).get_vars()
            self._set_composite_vars(self.get_option("compose"), variables, host, strict=strict)
            variables = self.inventory.get_host(host).get_vars()
            self._add_host_to_composed_groups(self.get_option("groups"), variables, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), variables, host, strict=strict)


_TEMPLATE_MARKERS = ("{{", "{%", "{#")


def _safe(value):
    """``value`` with every string that could template marked unsafe (never rendered), the rest trusted.

    Node names and addresses come from files a user downloaded (a CloudLab
    manifest): a ``{{ ... }}`` in them must stay text. On ansible-core 2.19 every
    string an inventory plugin sets is untrusted unless tagged, and
    ``ansible-inventory --list`` prints untrusted strings as
    ``{"__ansible_unsafe": ...}``; so plain strings (which cannot template) are
    tagged trusted and print plain, and only template-like strings stay unsafe.
    """
    if isinstance(value, str):
        if any(m in value for m in _TEMPLATE_MARKERS):
            return wrap_var(value)
        return trust_as_template(value) if trust_as_template is not None else value
    if isinstance(value, dict):
        return {k: _safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_safe(v) for v in value]
    return value


def _stamp(node_file, ansible_user):
    """What the cached nodes depend on: the node file's path, size and mtime, and the user."""
    if not node_file:
        return None
    try:
        st = os.stat(node_file)
    except OSError:
        return None
    return [node_file, st.st_size, st.st_mtime_ns, ansible_user]

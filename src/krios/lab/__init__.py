"""Real nodes on one machine: podman node containers that look like bare CloudLab hosts.

``up`` builds a Debian 12 node image (debootstrap root, no registry), a bridge network on
a subnet of its own, and node containers ``<name>-node0..N`` (hostnames ``node0..N``: 1
control, ``workers`` workers, ``clients`` clients) running systemd and sshd, and writes
the inputs a CloudLab user has (``ip_mapping.json``, ``manifest.xml``, ``krios.yml``) under
``state_dir``, so that ``ansible -i <state_dir>/krios.yml all -m ping`` works. Installing
Kubernetes on the nodes is the Ansible roles' job, not this package's.

    from krios import lab
    state = lab.up(workers=2)          # no-op if already up
    lab.status(state.state_dir)
    lab.down(state.state_dir)          # removes exactly what up made
"""

from __future__ import annotations

from krios.lab.network import LabError
from krios.lab.nodes import LabState, down, load, ssh, status, up

__all__ = ["LabError", "LabState", "down", "load", "ssh", "status", "up"]

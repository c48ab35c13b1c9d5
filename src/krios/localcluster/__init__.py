"""The local Kubernetes control plane: real etcd + kube-apiserver (+ kube-scheduler,
kube-controller-manager) on loopback, and a virtual kubelet that serves virtual nodes.

>>> from krios.localcluster import LocalCluster
>>> cl = LocalCluster("/tmp/krios-demo", workers=4).up()   # doctest: +SKIP
>>> cl.down()                                               # doctest: +SKIP
"""

from krios.localcluster.controlplane import LocalCluster
from krios.localcluster.state import default_state_dir

__all__ = ["LocalCluster", "default_state_dir"]

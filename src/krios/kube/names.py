"""Every well-known name krios uses in the cluster, defined once.

The emulator, the scheduler, the controller, the client, the benchmarks and
the local cluster meet in the API through these names: the namespace and
ConfigMaps the emulator publishes, the labels on nodes and pods, the
annotations the controller keeps its state in, and the Leases. Ansible's
``krios_deploy`` role uses the same names (``krios_deploy_namespace`` and the
service accounts); change them there too.
"""

from __future__ import annotations

from krios.config import defaults as _defaults

# -- namespace and ConfigMaps (written by the emulator, read by every daemon) ---------------
#: Namespace of the shared ConfigMaps and (by default) of the daemons' Leases.
SYSTEM_NAMESPACE = _defaults.LEASE_NAMESPACE
#: The emulated clock ``{"epoch_wall", "epoch_sim", "rate"}`` (:mod:`krios.kube.clock`).
CLOCK_CONFIGMAP, CLOCK_KEY = "krios-clock", "clock.json"
#: The emulator's node -> satellite mapping, one tick record.
MAPPING_CONFIGMAP, MAPPING_KEY = "krios-emulator", "mapping.json"
#: The latency matrix ``{"updated", "rtt": {from: {node: ms}}}`` (ms).
LATENCY_CONFIGMAP, LATENCY_KEY = "krios-latency", "matrix.json"
#: Label on every object krios creates.
PART_OF_LABEL, PART_OF = "app.kubernetes.io/part-of", "krios"

# -- labels ------------------------------------------------------------------------------
#: Node label: the satellite (0-based index in the constellation) the node plays.
SAT_LABEL = "sat_id"
#: Pod label ``<lat>_<lon>`` (degrees): the zone the app serves.
LEOZONE_LABEL = "leozone"
#: Pod label: the zone's radius in km (default 0, a point).
RADIUS_LABEL = "radius"
#: Pod label prefix ``delay_<from>: "<ms>"``: the edge scheduler's RTT limits.
DELAY_PREFIX = "delay_"
#: Pod label shared by every copy of one app (the first copy's name).
APP_LABEL = "krios.io/app-instance"
#: Pod label of the benchmark sweep's pods (value: the run).
BENCH_LABEL = "krios.io/bench"
#: Node role labels: control-plane nodes carry either one.
CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/master", "node-role.kubernetes.io/control-plane")
CONTROL_ROLE_LABEL = "node-role.kubernetes.io/control-plane"
WORKER_ROLE_LABEL = "node-role.kubernetes.io/worker"
#: Node label of the nodes a virtual kubelet serves (value ``true``).
VIRTUAL_KUBELET_LABEL = "krios.dev/virtual-kubelet"

# -- annotations -------------------------------------------------------------------------
#: Prefix of every krios annotation (the controller does not copy them to a successor).
ANNOTATION_PREFIX = "krios.io/"
#: On a successor pod: the name of the pod it replaces.
HANDOVER_FROM_ANNOTATION = "krios.io/handover-from"
#: On a successor pod: wall unix s the handover started.
HANDOVER_STARTED_ANNOTATION = "krios.io/handover-started"
#: On a successor pod: emulated unix s its predecessor's satellite leaves the zone.
HANDOVER_EXIT_ANNOTATION = "krios.io/handover-exit"
#: On a pod: ``node=sat,...`` of failed successor attempts.
HANDOVER_FAILED_ANNOTATION = "krios.io/handover-failed"
#: On a virtual node: its InternalIP.
INTERNAL_IP_ANNOTATION = "krios.dev/internal-ip"

# -- schedulers, components and Leases ------------------------------------------------------
#: ``spec.schedulerName`` of the pods the krios scheduler places (by default), and its Lease's name.
SCHEDULER_NAME = _defaults.SCHEDULER_NAME
#: The handover controller's Lease name.
CONTROLLER_NAME = "krios-controller"
#: kube-scheduler's ``spec.schedulerName``.
DEFAULT_SCHEDULER_NAME = "default-scheduler"
#: ``reportingController`` of a component's Events: ``krios.io/<component>``.
EVENT_CONTROLLER_PREFIX = "krios.io/"
#: Namespace of the nodes' heartbeat Leases (one per node, named after it).
NODE_LEASE_NAMESPACE = "kube-node-lease"

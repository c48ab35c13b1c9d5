"""Talking to the Kubernetes API, one way for every part of krios.

- :mod:`~krios.kube.config`: the one place that reads kubeconfigs (``load_client``);
- :mod:`~krios.kube.client`: the QPS-limited JSON client, API paths and the small
  operations every component repeats (``ensure_namespace``, ``put_configmap`` ...);
- :mod:`~krios.kube.objects`: reading the JSON objects (pod Ready, node InternalIP ...);
- :mod:`~krios.kube.names`: every well-known name (namespace, ConfigMaps, labels, annotations);
- :mod:`~krios.kube.reflector`: the one list/watch engine; :mod:`~krios.kube.informer`
  (watch-fed caches on it), :mod:`~krios.kube.workqueue`, :mod:`~krios.kube.leader`
  (Lease election), :mod:`~krios.kube.recorder` (Events), :mod:`~krios.kube.clock`
  (the emulated clock's ConfigMap).
"""

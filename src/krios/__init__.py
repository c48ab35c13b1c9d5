"""krios-testbed: LEO edge-compute experiments on Kubernetes.

The package holds the domain (orbits, zones, placement policies, the scheduler,
the controller, the emulator, benchmarks, results); the Ansible collection in
this repository stays thin and calls it.
"""

__version__ = "0.1.0"

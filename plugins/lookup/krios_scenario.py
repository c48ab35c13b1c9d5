# Copyright: krios-testbed contributors
# Apache License 2.0 (see galaxy.yml)
"""Lookup plugin krios.testbed.krios_scenario: a scenario as the Python loader reads it."""

from __future__ import annotations

DOCUMENTATION = r"""
name: krios_scenario
author: krios-testbed contributors
short_description: Load a Krios scenario (scenarios/NAME.yml) on the controller
description:
  - Loads one scenario with C(krios.config.scenarios.load), the same loader the C(krios) CLI and the
    daemons use, so playbooks never parse scenario files on their own.
  - The search path is C(KRIOS_SCENARIO_PATH) (colon-separated folders), then the repository's
    C(scenarios/) folder. A term ending in C(.yml)/C(.yaml) or holding a slash is a file path.
  - The result is the scenario merged over the loader's defaults (every key of
    C(scenarios/README.md)), plus C(leozone) (the pod label value C(<lat>_<lon>)) and C(path).
  - An unknown scenario, an unreadable file or a bad key fails with one line naming the file and
    the field, for example C(scenario) C(mars_4workers) C(unknown scenario (known sf_4workers, ...)).
  - Runs on the controller in the Python of C(ansible-playbook), which must be able to import the
    C(krios) package (run Ansible from the repository's C(.venv)).
options:
  _terms:
    description: Scenario name (or path); only the first term is used.
    required: true
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Show where the app is pinned
  ansible.builtin.debug:
    msg: "{{ lookup('krios.testbed.krios_scenario', 'sf_4workers').leozone }}"

- name: Expect one worker per satellite of the scenario
  ansible.builtin.assert:
    that: groups['krios_workers'] | length == lookup('krios.testbed.krios_scenario', scenario).workers
"""

RETURN = r"""
_raw:
  description: The scenario (one dictionary).
  type: list
  elements: dict
  contains:
    name:
      description: Scenario name (equals the file name).
      type: str
    workers:
      description: Worker nodes, each emulating one satellite.
      type: int
    zone:
      description: Ground zone, C(lat)/C(lon) in degrees, C(radius_km), C(min_elevation_deg).
      type: dict
    leozone:
      description: Pod label value C(<lat>_<lon>) of the zone.
      type: str
    duration_s:
      description: Emulator experiment time in seconds.
      type: int
    benchmark:
      description: C(latency_ms) (list of ms), C(samples_per_latency), C(warmup_samples).
      type: dict
    path:
      description: The scenario file that was read.
      type: str
"""

from ansible.errors import AnsibleLookupError  # noqa: E402
from ansible.plugins.lookup import LookupBase  # noqa: E402


class LookupModule(LookupBase):
    """Return ``[scenario_dict]`` for the first term."""

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        if not terms or not str(terms[0]).strip():
            raise AnsibleLookupError(
                "scenario: no scenario given (pass -e scenario=NAME or set krios_scenario in the inventory)"
            )
        try:
            from krios.config import scenarios
            from krios.errors import ConfigError
        except ImportError as exc:
            raise AnsibleLookupError(
                f"krios_scenario: cannot import the krios package ({exc}); "
                "run ansible-playbook from the repository's .venv"
            ) from exc
        try:
            scenario = scenarios.load(str(terms[0]).strip())
        except ConfigError as exc:
            raise AnsibleLookupError(str(exc)) from None
        data = dict(scenario.data)
        data["leozone"] = scenario.leozone
        data["path"] = str(scenario.path)
        return [data]

# Copyright: krios-testbed contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options every experiment module of krios.testbed shares (results run, database, cluster, folder)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  run_id:
    description:
      - Results run to write into (joined when it exists); default a new run of the module's kind.
    type: str
  db:
    description: Results database. Default C($KRIOS_RESULTS_DB) or C(results/krios.sqlite) (relative to O(chdir)).
    type: path
  kubeconfig:
    description: Kubeconfig of the cluster. Default C($KUBECONFIG), the local cluster, in-cluster.
    type: path
  chdir:
    description: Working directory (relative paths and the default results folder resolve against it).
    type: path
"""

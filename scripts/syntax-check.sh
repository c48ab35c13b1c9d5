#!/usr/bin/env bash
# ansible-playbook --syntax-check on every playbook (against the local inventory).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -d .venv/bin ]] && PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$PWD/ansible.cfg"
rc=0
for pb in playbooks/*.yml; do
  if ! out=$(ansible-playbook --syntax-check -i inventories/local "$pb" 2>&1); then
    echo "syntax-check failed: $pb"; echo "$out"; rc=1
  fi
done
[[ $rc -eq 0 ]] && echo "syntax-check: $(ls playbooks/*.yml | wc -l) playbooks ok"
exit $rc

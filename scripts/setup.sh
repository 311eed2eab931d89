#!/usr/bin/env bash
# Set up a fresh machine for erun: a virtual environment in .venv with torch (CPU) and erun.
# Idempotent and quick when already done. Sourced or run by scripts/test.sh, scripts/example.sh
# and .ci/run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PYTHON" -m venv .venv
fi
# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build.
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  echo "setup: installing torch==2.13.0 (CPU)" >&2
  .venv/bin/pip install --quiet --disable-pip-version-check torch==2.13.0
fi
stamp=".venv/.erun-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing erun and its test tools" >&2
  # compat: a plain path entry. setuptools' default editable finder is imported by every Python
  # that starts in the venv (about 9 ms each: the agent, every worker), which no installed erun costs.
  .venv/bin/pip install --quiet --disable-pip-version-check -e ".[test]" --config-settings editable_mode=compat
  touch "$stamp"
fi
# The etcd rendezvous tests start a real etcd server (Debian's etcd-server has the v2 API).
if ! command -v etcd >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing etcd-server (for the etcd rendezvous tests)" >&2
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq etcd-server >/dev/null
fi
# The Slurm tests (tests/cluster/) start a real two-node Slurm cluster on loopback
# (tests/slurm_cluster.py): Debian's slurm-wlm and munge. About 50 s the first time.
if ! command -v slurmctld >/dev/null 2>&1 && [ ! -x /usr/sbin/slurmctld ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing slurm-wlm and munge (for the Slurm tests)" >&2
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq slurm-wlm munge >/dev/null
fi

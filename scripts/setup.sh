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
# System packages, in one apt run (each only where missing), started first and in the background:
# apt mostly downloads while pip mostly unpacks and compiles, so on a fresh machine the two
# overlap instead of adding up (about 50 s saved); the script waits for it before it ends.
# - etcd-server: the etcd rendezvous tests start a real etcd server (Debian's has the v2 API);
# - slurm-wlm and munge: the Slurm tests (tests/cluster/) start a real two-node Slurm cluster on
#   loopback (tests/slurm_cluster.py). About 50 s the first time.
apt_packages=()
if ! command -v etcd >/dev/null 2>&1; then
  apt_packages+=(etcd-server)
fi
if ! command -v slurmctld >/dev/null 2>&1 && [ ! -x /usr/sbin/slurmctld ]; then
  apt_packages+=(slurm-wlm munge)
fi
apt_pid=""
if [ "${#apt_packages[@]}" -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing ${apt_packages[*]} (for the etcd and Slurm tests)" >&2
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  (
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${apt_packages[@]}" >/dev/null
  ) &
  apt_pid=$!
fi
# torch and erun in one pip run (one resolution, not two), torch pinned: an unpinned torch would
# pull a multi-GB CUDA build. pip writes the bytecode file by file on one core (about 40 s of CPU
# for torch alone): it is written afterwards on every core instead.
packages=()
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  echo "setup: installing torch==2.13.0 (CPU)" >&2
  packages+=(torch==2.13.0)
fi
stamp=".venv/.erun-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing erun and its test tools" >&2
  # compat: a plain path entry. setuptools' default editable finder is imported by every Python
  # that starts in the venv (about 9 ms each: the agent, every worker), which no installed erun costs.
  packages+=(-e ".[test]" --config-settings editable_mode=compat)
fi
if [ "${#packages[@]}" -gt 0 ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check --no-compile "${packages[@]}"
  # A file that does not compile (a template shipped as .py) is skipped, as pip skips it.
  .venv/bin/python -m compileall -q -j 0 .venv/lib/python3*/site-packages >/dev/null || true
  touch "$stamp"
fi
if [ -n "$apt_pid" ]; then
  wait "$apt_pid"  # its failure (a non-zero status) fails the set-up, as before
fi

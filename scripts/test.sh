#!/usr/bin/env bash
# Run erun's test suite from a fresh clone: sets up .venv, then lint, type check and tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
.venv/bin/ruff check runner tests bench examples hydra_plugins docs
.venv/bin/mypy
# Two pytest workers (pytest-xdist; tests that share a module or session fixture stay together,
# tests/conftest.py): the tests mostly wait on the processes they start, and CI has 2 cores and a
# time budget. The slowest tests are listed at the end. Arguments after the script go to pytest (`-n 0` runs in one process, e.g. with --pdb).
.venv/bin/python -m pytest -n "${ERUN_TEST_WORKERS:-2}" --dist loadgroup --durations=25 "$@"

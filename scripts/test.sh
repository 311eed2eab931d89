#!/usr/bin/env bash
# Run erun's test suite from a fresh clone: sets up .venv, then lint, type check and tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
.venv/bin/ruff check runner tests bench examples hydra_plugins docs
.venv/bin/mypy
# The slowest tests are listed at the end: CI has a time budget, and this is where it goes.
.venv/bin/python -m pytest --durations=25 "$@"

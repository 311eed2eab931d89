#!/usr/bin/env bash
# Run erun's test suite from a fresh clone: sets up .venv, then lint, type check and tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
.venv/bin/ruff check runner tests bench examples hydra_plugins docs
.venv/bin/mypy
.venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# Run the example job from a fresh clone: sets up .venv, then trains a small model with DDP on
# CPU (2 workers, gloo). Extra arguments are job keys: bash scripts/example.sh nproc=4 params.steps=500
# Runs where it is invoked: the run directory is ./outputs/DATE/TIME_ddp of the current directory,
# so `cd "$(mktemp -d)" && bash PATH/TO/erun/scripts/example.sh` leaves the clone untouched.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
exec "$root/.venv/bin/erun" +job=ddp "$@"

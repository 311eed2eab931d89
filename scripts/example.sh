#!/usr/bin/env bash
# Run the example job from a fresh clone: sets up .venv, then trains a small model with DDP on
# CPU (2 workers, gloo). Extra arguments are job keys: bash scripts/example.sh nproc=4 params.steps=500
# Runs where it is invoked (the run directory is ./outputs/DATE/TIME_ddp), except inside the
# clone, which it never writes into: there it runs in a fresh temporary directory, printed first.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
bash "$root/scripts/setup.sh"
here="$(pwd -P)"
if [ "$here" = "$root" ] || [ "${here#"$root"/}" != "$here" ]; then
  cd "$(mktemp -d -t erun-example-XXXXXX)"
  echo "example: running in $(pwd) (not inside the clone)" >&2
fi
exec "$root/.venv/bin/erun" +job=ddp "$@"

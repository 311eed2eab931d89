#!/usr/bin/env bash
# Run erun's test suite from a fresh clone: sets up .venv, then lint, type check and tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
# Lint and type check run beside the tests, their output held until the tests end: mypy works on
# one core for about 30 s (it reads torch's stubs) while the tests, which mostly wait on the
# processes they start, leave CPU idle. Either failing fails the script.
checks_log="$(mktemp -t erun-checks-XXXXXX)"
checks=""
trap 'if [ -n "$checks" ]; then kill "$checks" 2>/dev/null || true; fi; rm -f "$checks_log"' EXIT
(.venv/bin/ruff check runner tests bench examples hydra_plugins docs && exec .venv/bin/mypy) >"$checks_log" 2>&1 &
checks=$!
# Two pytest workers (pytest-xdist; tests that share a module or session fixture stay together,
# tests/conftest.py): the tests mostly wait on the processes they start, and CI has 2 cores and a
# time budget. The slowest tests are listed at the end. Arguments after the script go to pytest (`-n 0` runs in one process, e.g. with --pdb).
status=0
.venv/bin/python -m pytest -n "${ERUN_TEST_WORKERS:-2}" --dist loadgroup --durations=25 "$@" || status=$?
checks_status=0
wait "$checks" || checks_status=$?
checks=""
cat "$checks_log"
if [ "$checks_status" -ne 0 ]; then
  echo "test.sh: lint or type check failed (above)" >&2
  exit "$checks_status"
fi
exit "$status"

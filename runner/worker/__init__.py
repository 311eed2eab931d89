"""Runs inside worker processes: standard library only, and nothing else of erun.

`runner.heartbeat()` (liveness), `runner.result()` (the job's result), the `call` entrypoint
(`python -m runner.worker.call`) and the warm spare (`spare.py`, run by path) live here. A worker
pays nothing for them: no torch, no Hydra, no other erun module (tests/test_layers.py fails if
one creeps in).
"""

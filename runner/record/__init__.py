"""The run directory's record: written by the runtime (`writer`), read by reports, status and
sweeps (`read`). With `runner.paths`, the one place that knows its files and formats.

No torch, no Hydra: `erun report` and `erun status` start fast.
"""

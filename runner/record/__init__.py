"""The run directory's record: written by the runtime (`writer`), read by reports, status and
sweeps (`read`, into the dataclasses of `model`); `cause` says what a root cause says, for the
console and the reports alike. With `runner.paths`, the one place that knows its files and formats.

No torch, no Hydra: `erun report` and `erun status` start fast.
"""

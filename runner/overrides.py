"""The job override: how `+job=NAME` is spelled on erun's command line and for Hydra.

Job files hold top-level keys, so Hydra loads them in the `job` group with package `_global_`:
erun rewrites `+job=train.yaml` to `job@_global_=train` (config/argv.py) and shows it as the
user typed it wherever an override is read back (record/read.py, sweep labels).
"""

from __future__ import annotations

JOB_GROUP = "job"
JOB_OVERRIDE_KEY = f"{JOB_GROUP}@_global_"
# Every way a command line may name the job file.
JOB_SPELLINGS = ("+job=", "++job=", "job=", f"{JOB_OVERRIDE_KEY}=", f"+{JOB_OVERRIDE_KEY}=")
TYPED_JOB = "+job="


def override_key(override: str) -> str:
    """The key an override sets, without its +/++/~ prefix; the job override's is `job`."""
    key = override.split("=", 1)[0].lstrip("+~")
    return JOB_GROUP if key == JOB_OVERRIDE_KEY else key


def as_typed(override: str) -> str:
    """erun's rewrite of the job override back as the user typed it (`+job=NAME`)."""
    prefix = f"{JOB_OVERRIDE_KEY}="
    return TYPED_JOB + override[len(prefix):] if override.startswith(prefix) else override

"""How overrides are spelled on erun's command line and for Hydra's composition.

Job files hold top-level keys, so Hydra loads them in the `job` group with package `_global_`:
`+job=train.yaml` is composed as `job@_global_=train`, and `params.x=1` (a key the job file may
lack) as `++params.x=1` (`Spelling`). What is recorded is what the user typed; `as_typed`
reads back the rewrite that records of earlier versions of erun hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class Spelling:
    """The command line's overrides as Hydra composes them, from the spelling the user typed.

    Hydra gets the overrides as typed, and erun's config loader (runner.config.typed_loader)
    composes each with `internal`, then records the typed spelling (.hydra/overrides.yaml,
    multirun.yaml, JobReturn.overrides, hydra.job.override_dirname): a sweeper (Optuna) sees and
    reports `params.x`, never erun's rewrite.
    """

    jobs: Mapping[str, str] = field(default_factory=dict)  # a typed job value -> Hydra's choice
    open_keys: tuple[str, ...] = ()  # job keys that take new subkeys: `params.x=1` adds x

    def internal(self, override: str) -> str:
        """`+job=train.yaml` -> `job@_global_=train`; `params.x=1` -> `++params.x=1`; else as is."""
        spelling = next((s for s in JOB_SPELLINGS if override.startswith(s)), None)
        if spelling is not None:
            values = override[len(spelling):].split(",")
            return f"{JOB_OVERRIDE_KEY}={','.join(self.jobs.get(v, v) for v in values)}"
        key = override.split("=", 1)[0]
        if "=" not in override or key.startswith(("+", "~", "-")):
            return override
        return f"++{override}" if any(key.startswith(k + ".") for k in self.open_keys) else override

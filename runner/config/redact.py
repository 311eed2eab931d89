"""Secrets out of what erun writes and prints: env values whose names look secret
(`JobPlan.redact`) become `<redacted>` in job.yaml, .hydra/*.yaml and the dry run; the workers'
environment keeps the real values (the plan in memory has them, `JobPlan.to_json` redacts).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from runner.plan import REDACTED, JobPlan, looks_secret


def redacted_config(cfg: Any, plan: JobPlan, resolve: bool) -> str:
    """A job config as YAML (as `OmegaConf.to_yaml` writes it), its secret-looking `env` values
    redacted. The data is dumped as it is, never made a config again: a resolved value may
    hold a literal `${` that OmegaConf would take for an interpolation."""
    import yaml
    from omegaconf import OmegaConf
    from omegaconf._utils import get_omega_conf_dumper

    data = OmegaConf.to_container(cfg, resolve=resolve, enum_to_str=True)
    if isinstance(data, dict) and isinstance(data.get("env"), dict):
        env = data["env"]
        data["env"] = {k: REDACTED if looks_secret(str(k), plan.redact) else v for k, v in env.items()}
    text = yaml.dump(data, default_flow_style=False, allow_unicode=True, sort_keys=False,
                     Dumper=get_omega_conf_dumper())
    return scrub(text, plan.secret_env())


def scrub(text: str, secrets: Mapping[str, str]) -> str:
    """`text` with every `env.NAME=value` override of a secret, and every secret value of some
    length, redacted (Hydra's own record repeats the command line in several places)."""
    for name in secrets:
        text = re.sub(rf"(env\.{re.escape(name)}=)[^\s,'\"\]]*", rf"\g<1>{REDACTED}", text)
    for value in sorted(secrets.values(), key=len, reverse=True):
        if len(value) >= 4:  # shorter: too likely to be part of other words
            text = text.replace(value, REDACTED)
    return text


def redacted_saved_config(text: str, plans: Sequence[JobPlan]) -> str:
    """Hydra's multirun.yaml (the sweep's config, saved before the points were compiled): its
    `env` and every point's secret values redacted."""
    from omegaconf import OmegaConf

    if not plans:
        return text
    secrets = {k: v for plan in plans for k, v in plan.secret_env().items()}
    return scrub(redacted_config(OmegaConf.create(text), plans[0], resolve=False), secrets)

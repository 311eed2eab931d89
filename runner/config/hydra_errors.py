"""Hydra's and OmegaConf's exceptions, as erun's one-line `ConfigError`s with a fix.

Hydra reports a bad override, an unknown key, a wrong type or a missing preset as a multi-line
message (or a traceback); `translate` keeps what the user needs: the key, where it was set,
what is wrong, and a "did you mean" when a near miss exists.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from hydra.errors import MissingConfigException, OverrideParseException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from runner.config.jobfile import JobFile
from runner.config.keys import did_you_mean, suggest_key
from runner.errors import COMMAND_LINE, ConfigError
from runner.words import display_path

TYPE_WORDS = {
    "Integer": "a whole number", "Float": "a number", "Boolean": "true or false",
    "ListConfig": "a list, e.g. [0,1]", "Dict": "a mapping, e.g. {a: 1}", "DictConfig": "a mapping",
}


class HasJobs(Protocol):
    """The invocation being composed: its Hydra arguments and its job files."""

    @property
    def hydra_args(self) -> list[str]: ...

    def job(self, choice: str | None) -> JobFile | None: ...


def translate(error: BaseException, invocation: HasJobs) -> ConfigError:
    """The one-line error for `error`, raised while Hydra composed the config."""
    message = str(error)
    source = _source(message, invocation)
    if isinstance(error, OverrideParseException):
        return _bad_override(error, invocation.hydra_args)
    if isinstance(error, MissingConfigException):
        return _missing_preset(error, source)
    preset = re.search(r"Multiple values for ([\w/]+)\.", message)
    if preset:
        group = preset.group(1)
        fix = f"choose with {group}=NAME (no +), or `- override /{group}: NAME` in a job file"
        return ConfigError(group, "is a preset group, already in the defaults", fix, source)
    cause = error if isinstance(error, OmegaConfBaseException) else (error.__cause__ or error.__context__)
    key = getattr(cause, "full_key", None) or _full_key(message)
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and key and key.startswith("hydra."):
        # Hydra's own node (hydra.job.env_set.NAME=...): a new key is added with +, as in Hydra.
        return ConfigError(key, "is not in Hydra's config",
                           f"add it with +{key}=... (or check its spelling)", source)
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and key:
        return ConfigError(key, "is not a job key", suggest_key(key), source)
    if isinstance(cause, ValidationError) and key:
        return ConfigError(key, _type_problem(str(cause)), "see `erun --help` for the key's type", source)
    if isinstance(cause, OmegaConfBaseException) and key:
        return ConfigError(key, _first_line(str(cause)), "", source)
    return ConfigError(None, _first_line(message), "see `erun --help`", source)


def _full_key(message: str) -> str | None:
    match = re.search(r"full_key: (\S+)", message)
    return match.group(1) if match else None


def _source(message: str, invocation: HasJobs) -> str | None:
    match = re.search(r"'job/([^']+)'", message)
    job = invocation.job(match.group(1)) if match else None
    if job is not None:
        return display_path(job.path)
    return COMMAND_LINE if "override" in message.lower() else None


def _bad_override(error: OverrideParseException, args: list[str]) -> ConfigError:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for arg in (a for a in args if not a.startswith("-")):
        try:
            parser.parse_overrides([arg])
        except OverrideParseException:
            key = arg.split("=", 1)[0].lstrip("+~")
            return ConfigError(key, f"cannot be parsed in `{arg}` ({_first_line(str(error))})",
                               "write KEY=VALUE, and quote values with spaces or brackets", COMMAND_LINE)
    return ConfigError(None, _first_line(str(error)), "write KEY=VALUE", COMMAND_LINE)


def _missing_preset(error: MissingConfigException, source: str | None) -> ConfigError:
    match = re.search(r"Could not find '(.+)/([^/']+)'", str(error))
    if match is None:
        return ConfigError(None, _first_line(str(error)), "check the config name", source)
    group, name = match.groups()
    options: list[Any] = list(getattr(error, "options", None) or [])
    hint = did_you_mean(name, [str(o) for o in options])
    choices = f"choose one of {', '.join(str(o) for o in options)}" if options else "no presets exist"
    return ConfigError(group, f"has no preset {name!r}", hint or choices, source or COMMAND_LINE)


def _type_problem(message: str) -> str:
    first = _first_line(message)
    match = re.search(r"Value '(.*)' of type '\w+' could not be converted to (\w+)", first)
    if match:
        value, kind = match.groups()
        return f"is {value!r}, not {TYPE_WORDS.get(kind, kind)}"
    for word, text in TYPE_WORDS.items():
        if word in first:
            return f"must be {text} ({first})"
    return f"has the wrong type ({first})"


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else "invalid configuration"

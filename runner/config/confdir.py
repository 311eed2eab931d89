"""Where erun's shipped config lives: conf/ (config.yaml, the preset groups, the shipped jobs).

The repository keeps conf/ and examples/ at its top level, next to runner/: a git checkout and an
editable install use them there. A wheel installs the same two folders inside the package, as
runner/conf and runner/examples (pyproject.toml maps them). Either way conf/ and examples/ are
side by side, so the shipped jobs' relative paths (`entrypoint: ../../examples/ddp_train.py`)
hold in both layouts and the YAML files exist once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

CONF = "conf"
CONFIG_FILE = "config.yaml"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # runner/


def roots() -> list[Path]:
    """Where conf/ is looked for: inside the installed package first, then the checkout."""
    return [PACKAGE_DIR, PACKAGE_DIR.parent]


def find_conf(candidates: Sequence[Path]) -> Path:
    """The first `ROOT/conf` that holds config.yaml; the last candidate's if none does."""
    for root in candidates:
        if (root / CONF / CONFIG_FILE).is_file():
            return (root / CONF).resolve()
    return (candidates[-1] / CONF).resolve()


def shipped_conf() -> Path:
    """erun's own conf/ folder, installed or in the checkout (resolved: no symlinks)."""
    return find_conf(roots())

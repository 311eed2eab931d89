"""`call=` targets checked without importing user code: what is surely wrong is refused, what
cannot be known statically is left to the worker. No processes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from runner.config.calltarget import check_call_target
from runner.errors import ConfigError


def _module(tmp_path: Path, name: str, source: str) -> list[str]:
    (tmp_path / f"{name}.py").write_text(source)
    return [str(tmp_path), *sys.path]


@pytest.mark.parametrize("source", [
    "def main(): pass\n",
    "class main: pass\n",
    "from helpers import main\n",
    "try:\n    from fast import main\nexcept ImportError:\n    def main(): pass\n",
    "main = make_main()\n",
    "from helpers import *\n",
    "def __getattr__(name): return print\n",
    "def setup():\n    global main\n    main = print\nsetup()\n",
    "globals()['main'] = print\n",
    "main = 1\nmain = make_main()\n",
])
def test_what_may_be_a_callable_is_accepted(tmp_path: Path, source: str) -> None:
    check_call_target("ctmod:main", _module(tmp_path, "ctmod", source))


@pytest.mark.parametrize(("source", "text"), [
    ("def mian(): pass\n", "defines no main; did you mean `mian`?"),
    ("main = 'train'\n", "main is a str in ctmod2.py"),
    ("main = [1, 2]\n", "main is a list in ctmod2.py"),
])
def test_what_is_surely_no_callable_is_refused(tmp_path: Path, source: str, text: str) -> None:
    with pytest.raises(ConfigError, match="call") as caught:
        check_call_target("ctmod2:main", _module(tmp_path, "ctmod2", source))
    assert text in str(caught.value)


def test_user_code_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = _module(tmp_path, "sideeffect", f"open({str(marker)!r}, 'w').close()\ndef main(): pass\n")
    check_call_target("sideeffect:main", path)
    assert not marker.exists() and "sideeffect" not in sys.modules


def test_a_module_that_does_not_parse_is_left_to_the_worker(tmp_path: Path) -> None:
    check_call_target("broken:main", _module(tmp_path, "broken", "def main(:\n"))

"""The documentation: the site builds in strict mode, and every command marked runnable runs.

Markers (an HTML comment on the line before a fenced block; docs/contributing.md says which to use):
- `<!-- run -->`: the shell block runs with bash (errexit, pipefail) and must exit 0;
- `<!-- run: console -->`: each `$ COMMAND` line of the console block runs so, and the output
  the block shows must agree on how each job ended (`erun: job succeeded`, `restarting now`...);
- `<!-- run by: PATH -->`: too long to run here (the test suite itself, a full DDP training):
  each command line of the block must appear verbatim in PATH, which runs it (`.ci/run`, a test);
- `<!-- same as below -->`: each command line appears verbatim in a later runnable block;
- `<!-- not run: WHY -->`: never run here (installing packages), with the reason;
- `<!-- file: NAME -->`: writes the block to NAME first.
Each page's blocks run in order in one temporary directory, with this venv's bin first on PATH
and erun's state (the recent-runs index) kept in that directory. Every shell block of README.md
carries one of these markers.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK_TIMEOUT_S = 120
MARKER = re.compile(r"^<!--\s*(?P<kind>run(?::\s*(?P<mode>console))?|run by:\s*(?P<by>[\w.\-/]+)"
                    r"|same as below|not run:\s*(?P<why>\S.*?)|file:\s*(?P<name>[\w.\-/]+))\s*-->\s*$")
FENCE = re.compile(r"^(`{3,})")
SHELL_FENCE = re.compile(r"^`{3,}(bash|sh|shell|console)\s*$")
# What a console block shows and the real run must agree on: how each job ended.
OUTCOMES = re.compile(r"erun: job \w+|restarting now|\d+ succeeded")


@dataclass(frozen=True)
class Block:
    """One marked fenced block; `kind` is run, console, run by, same as below, not run or file."""

    page: Path
    line: int
    text: str
    kind: str
    arg: str | None = None  # the file to write, the file that runs it, or why not run

    @property
    def file(self) -> str | None:
        return self.arg if self.kind == "file" else None

    @property
    def runnable(self) -> bool:
        return self.kind in ("run", "console")

    def commands(self) -> list[str]:
        """The command lines: a console block's `$ ` lines, else every line but comments."""
        lines = self.text.splitlines()
        if self.kind == "console" or any(x.startswith("$ ") for x in lines):
            return [x[2:] for x in lines if x.startswith("$ ")]
        return [x.split("  #")[0].rstrip() for x in lines if x.strip() and not x.lstrip().startswith("#")]


def marked_blocks(page: Path) -> list[Block]:
    lines = page.read_text().splitlines()
    blocks: list[Block] = []
    for i, line in enumerate(lines):
        match = MARKER.match(line)
        if match is None:
            continue
        fence = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if fence is None:
            raise AssertionError(f"{page.name}:{i + 1}: a marker must be followed by a fenced block")
        end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith(fence.group(1)))
        text = "\n".join(lines[i + 2:end]) + "\n"
        if match.group("name"):
            kind, arg = "file", match.group("name")
        elif match.group("by"):
            kind, arg = "run by", match.group("by")
        elif match.group("why"):
            kind, arg = "not run", match.group("why")
        else:
            kind, arg = match.group("mode") or match.group("kind"), None
        blocks.append(Block(page, i + 2, text, kind, arg))
    return blocks


def shell_blocks(page: Path) -> list[int]:
    """The line numbers (1-based) of the shell and console fences of `page`."""
    return [i + 1 for i, line in enumerate(page.read_text().splitlines()) if SHELL_FENCE.match(line)]


def test_markers_are_found():
    """The README walks through a whole job: if its markers vanish, nothing below runs it."""
    assert len([b for b in marked_blocks(ROOT / "README.md") if b.runnable]) >= 8


def test_every_readme_command_is_run_or_says_who_runs_it():
    """Every shell block of the front page is run here, run by a named file, or says why not."""
    readme = ROOT / "README.md"
    marked = {b.line for b in marked_blocks(readme)}
    unmarked = [line for line in shell_blocks(readme) if line not in marked]
    assert not unmarked, f"README.md: shell blocks at lines {unmarked} carry no marker (tests/test_docs.py)"
    blocks = marked_blocks(readme)
    for at, block in enumerate(blocks):
        where = f"README.md:{block.line}"
        if block.kind == "run by":
            runner_text = (ROOT / str(block.arg)).read_text()
            for command in block.commands():
                assert command in runner_text, f"{where}: `{command}` is not run by {block.arg}"
        elif block.kind == "same as below":
            later = [c for b in blocks[at + 1:] if b.runnable for c in b.commands()]
            for command in block.commands():
                assert command in later, f"{where}: `{command}` is run by no later block"


def test_marked_python_files_compile():
    """A script the docs write but no marked command runs (the README's train.py imports torch:
    too slow to run here) is still checked to be valid Python."""
    for page in PAGES:
        for block in marked_blocks(page):
            if block.file is not None and block.file.endswith(".py"):
                compile(block.text, f"{page.name}:{block.line} ({block.file})", "exec")


# README.md trains five times (about a minute): marked slow, so a worker takes it first.
@pytest.mark.parametrize("page", [pytest.param(p, marks=[pytest.mark.slow] if p.name == "README.md" else [])
                                  for p in PAGES if marked_blocks(p)], ids=lambda p: p.name)
def test_runnable_blocks_exit_0(page: Path, tmp_path: Path):
    env = dict(os.environ, ERUN_STATE_DIR=str(tmp_path / ".erun-state"), ERUN_REPO=str(ROOT),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("TERM", None)
    work = tmp_path / "work"
    work.mkdir()
    for block in marked_blocks(page):
        if block.file is not None:
            (work / block.file).write_text(block.text)
        elif block.kind == "run":
            run_bash(f"{page.name}:{block.line}", block.text, work, env)
        elif block.kind == "console":
            output = ""
            for command in block.commands():
                done = run_bash(f"{page.name}:{block.line}", command, work, env)
                output += done.stdout + done.stderr
            for outcome in OUTCOMES.findall(block.text):
                assert outcome in output, (f"{page.name}:{block.line}: the block shows `{outcome}`; "
                                           f"the run printed:\n{output[-3000:]}")


def run_bash(where: str, text: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", text], cwd=cwd, env=env, text=True,
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{where}: still running after {BLOCK_TIMEOUT_S} s:\n{text}")
    assert done.returncode == 0, (f"{where} exited {done.returncode}:\n{text}\n"
                                  f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}")
    return done


def test_site_builds_strict(tmp_path: Path):
    """Broken links, missing pages, pages left out of the nav: each a warning, each a failure."""
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    assert mkdocs, "mkdocs is not installed: pip install -e '.[test]'"
    done = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-5000:]
    assert "WARNING" not in done.stderr, done.stderr[-5000:]
    assert (tmp_path / "site" / "reference" / "index.html").exists()

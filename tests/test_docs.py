"""The documentation: the site builds in strict mode, and every command marked runnable runs.

A fenced block preceded by `<!-- run -->` is run with bash (errexit, pipefail) and must exit 0;
`<!-- file: NAME -->` writes the block to NAME first. Each page's blocks run in order in one
temporary directory, with this venv's bin first on PATH and erun's state (the recent-runs
index) kept in that directory. docs/contributing.md says which commands to mark.
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
BLOCK_TIMEOUT_S = 60
MARKER = re.compile(r"^<!--\s*(run|file:\s*(?P<name>[\w.\-/]+))\s*-->\s*$")
FENCE = re.compile(r"^(`{3,})")


@dataclass(frozen=True)
class Block:
    """One marked fenced block: run it (`file` None) or write it to `file`."""

    page: Path
    line: int
    text: str
    file: str | None


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
        blocks.append(Block(page, i + 2, "\n".join(lines[i + 2:end]) + "\n", match.group("name")))
    return blocks


def test_markers_are_found():
    """The README walks through a whole job: if its markers vanish, nothing below runs it."""
    assert len(marked_blocks(ROOT / "README.md")) >= 5


def test_marked_python_files_compile():
    """A script the docs write but no marked command runs (the README's train.py imports torch:
    too slow to run here) is still checked to be valid Python."""
    for page in PAGES:
        for block in marked_blocks(page):
            if block.file is not None and block.file.endswith(".py"):
                compile(block.text, f"{page.name}:{block.line} ({block.file})", "exec")


@pytest.mark.parametrize("page", [p for p in PAGES if marked_blocks(p)], ids=lambda p: p.name)
def test_runnable_blocks_exit_0(page: Path, tmp_path: Path):
    env = dict(os.environ, ERUN_STATE_DIR=str(tmp_path / ".erun-state"), ERUN_REPO=str(ROOT),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("TERM", None)
    work = tmp_path / "work"
    work.mkdir()
    for block in marked_blocks(page):
        if block.file is not None:
            (work / block.file).write_text(block.text)
            continue
        where = f"{page.name}:{block.line}"
        try:
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", block.text], cwd=work, env=env,
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=BLOCK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{where}: still running after {BLOCK_TIMEOUT_S} s:\n{block.text}")
        assert done.returncode == 0, (f"{where} exited {done.returncode}:\n{block.text}\n"
                                      f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}")


def test_site_builds_strict(tmp_path: Path):
    """Broken links, missing pages, pages left out of the nav: each a warning, each a failure."""
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    assert mkdocs, "mkdocs is not installed: pip install -e '.[test]'"
    done = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-5000:]
    assert "WARNING" not in done.stderr, done.stderr[-5000:]
    assert (tmp_path / "site" / "reference" / "index.html").exists()

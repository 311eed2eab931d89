"""examples/launch_notebook.ipynb run headless (nbclient, a real ipykernel): DDP trains from a
cell, the workers' output lands in the cell, prefixed, without escape codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, RUN_TIMEOUT_S

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

NOTEBOOK = REPO / "examples" / "launch_notebook.ipynb"


def cell_text(cell: Any) -> str:
    return "".join(o.get("text", "") or "".join(o.get("data", {}).get("text/plain", ""))
                   for o in cell.get("outputs", []))


def test_the_notebook_trains_ddp_from_a_cell(tmp_path: Path, no_survivors: str) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=int(RUN_TIMEOUT_S), kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    launch_cell, error_cell = notebook.cells[3], notebook.cells[4]
    out = cell_text(launch_cell)
    assert "[0]: step 0: loss" in out and "[1]: step 40: loss" in out
    assert "return values: {0: " in out and ", 1: " in out
    assert "\x1b" not in out
    assert "`nproc` is 0" in cell_text(error_cell)
    assert list(tmp_path.glob("outputs/*/*_train/summary.json"))

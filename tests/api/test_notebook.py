"""examples/launch_notebook.ipynb run headless (nbclient, a real ipykernel): DDP trains from a
cell, the workers' output lands in the cell, prefixed, without escape codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, RUN_TIMEOUT_S, read_summary, wait_for

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

NOTEBOOK = REPO / "examples" / "launch_notebook.ipynb"


def cell_text(cell: Any) -> str:
    return "".join(o.get("text", "") or "".join(o.get("data", {}).get("text/plain", ""))
                   for o in cell.get("outputs", []))


@pytest.mark.slow
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


HANG_CELL = """
import os, time
from pathlib import Path
import runner

def hang(marker_dir):
    Path(marker_dir, "ready_" + os.environ["RANK"]).write_text(str(os.getpid()))
    time.sleep(60)

try:
    runner.launch(hang, {markers!r}, nproc=2, run_dir={run_dir!r})
except KeyboardInterrupt:
    print("interrupted")
"""


def test_the_interrupt_button_stops_every_worker(tmp_path: Path, no_survivors: str) -> None:
    from jupyter_client.manager import start_new_kernel  # nbclient's dependency

    markers = tmp_path / "markers"
    markers.mkdir()
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        msg_id = client.execute(HANG_CELL.format(markers=str(markers), run_dir=str(tmp_path / "run")))
        wait_for(lambda: len(list(markers.glob("ready_*"))) == 2, what="both ranks ready")
        manager.interrupt_kernel()  # what the notebook's interrupt button does: SIGINT to the kernel
        reply = client.get_shell_msg(timeout=RUN_TIMEOUT_S)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = client.get_shell_msg(timeout=RUN_TIMEOUT_S)
        assert reply["content"]["status"] == "ok"
        assert "interrupted" in "".join(cell_output(client, msg_id))
        assert read_summary(tmp_path / "run")["state"] == "INTERRUPTED"  # the agent stopped them
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def cell_output(client: Any, msg_id: str) -> list[str]:
    """The stream text of the execution `msg_id`, up to its kernel going idle."""
    printed: list[str] = []
    while True:
        msg = client.get_iopub_msg(timeout=RUN_TIMEOUT_S)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            printed.append(msg["content"]["text"])
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return printed

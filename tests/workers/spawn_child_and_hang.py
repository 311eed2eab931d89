"""spawn_child_and_hang.py MARKER_DIR [FAILING_RANK]: a worker with a child in its process
group and a grandchild that left it (setsid). The worker writes pids_a<attempt>_r<rank>.json
({"worker", "child", "grandchild"}) then its ready marker, and hangs; FAILING_RANK instead
exits 1 once every rank is ready, leaving its child and grandchild behind.

Internally re-run as `--child` and `--grandchild`.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import attempt, hang, rank, ready, wait_all_ready


def wait_for(path: Path) -> int:
    deadline = time.monotonic() + 30
    while not path.exists():
        if time.monotonic() > deadline:
            sys.exit(4)
        time.sleep(0.02)
    return int(path.read_text())


def write_pid(path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(str(os.getpid()))
    os.replace(tmp, path)


def spawn(role: str, new_session: bool = False) -> None:
    subprocess.Popen([sys.executable, __file__, marker_dir, role], start_new_session=new_session)


marker_dir = sys.argv[1]
role = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2].startswith("--") else "--worker"
stem = Path(marker_dir) / f"a{attempt()}_r{rank()}"
if role == "--grandchild":
    write_pid(Path(f"{stem}.grandchild"))
    hang()
if role == "--child":
    spawn("--grandchild", new_session=True)
    wait_for(Path(f"{stem}.grandchild"))
    write_pid(Path(f"{stem}.child"))
    hang()
spawn("--child")
pids = {
    "worker": os.getpid(),
    "child": wait_for(Path(f"{stem}.child")),
    "grandchild": wait_for(Path(f"{stem}.grandchild")),
}
(Path(marker_dir) / f"pids_a{attempt()}_r{rank()}.json").write_text(json.dumps(pids))
ready(marker_dir)
if len(sys.argv) > 2 and role == "--worker" and rank() == int(sys.argv[2]):
    wait_all_ready(marker_dir)
    sys.exit(1)
hang()

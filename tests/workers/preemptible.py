"""preemptible.py MARKER_DIR: a training loop that checkpoints on SIGUSR1 and resumes from it.

Starts at the step of $ERUN_JOB_DIR/ckpt_r<rank> (0 without one) and writes
MARKER_DIR/start_a<attempt>_r<rank>.json (that step, TORCHELASTIC_RESTART_COUNT and
$API_TOKEN) and its ready marker. Each SIGUSR1 saves the
checkpoint (the step) and is counted; each SIGTERM is counted too: on the first one the rank
collects any further SIGTERM for 1 s, writes MARKER_DIR/signals_a<attempt>_r<rank>.json
({"USR1": n, "TERM": n}) and exits 143. A rank that resumed from a checkpoint finishes 20 steps
later and exits 0.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

from _common import HANG_S, attempt, rank, ready

marker_dir = Path(sys.argv[1])
ckpt = Path(os.environ["ERUN_JOB_DIR"]) / f"ckpt_r{rank()}"
start = json.loads(ckpt.read_text())["step"] if ckpt.exists() else 0
step = start
counts = {"USR1": 0, "TERM": 0}


def save(signum: int, frame: object) -> None:
    counts["USR1"] += 1
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    tmp.write_text(json.dumps({"step": step}))
    os.replace(tmp, ckpt)


def stop(signum: int, frame: object) -> None:
    counts["TERM"] += 1
    if counts["TERM"] > 1:
        return
    deadline = time.monotonic() + 1.0  # a second delivery, if any, comes within milliseconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
    (marker_dir / f"signals_a{attempt()}_r{rank()}.json").write_text(json.dumps(counts))
    sys.exit(143)


signal.signal(signal.SIGUSR1, save)
signal.signal(signal.SIGTERM, stop)
(marker_dir / f"start_a{attempt()}_r{rank()}.json").write_text(json.dumps({
    "step": start, "restart": os.environ.get("TORCHELASTIC_RESTART_COUNT"),
    "token": os.environ.get("API_TOKEN")}))
ready(str(marker_dir))
deadline = time.monotonic() + HANG_S
while time.monotonic() < deadline:
    step += 1
    if start and step >= start + 20:
        print(f"rank {rank()}: resumed at step {start}, done at step {step}", flush=True)
        sys.exit(0)
    time.sleep(0.05)
sys.exit(3)

"""A checkpointing worker for the preemption bench (bench/slurm_preempt.py), the same under every
launcher: it trains (a step every 0.05 s) and saves its step to OUT_DIR/ckpt_r<rank> on the first
SIGUSR1 (the warning, where the launcher forwards it) and on SIGTERM (the stop), then exits 143 on
SIGTERM. Started with a checkpoint, it has resumed: it stamps `resumed` and exits 0 a few steps
later. Stamps (OUT_DIR/<kind>_0_<rank>, time.time()): `ready` once training runs, `resumed`
after a restart from the checkpoint. The attempt in the name is always 0: a requeued job's
restart count is Slurm's under torchrun and continues under erun.

Usage: preemptible.py OUT_DIR gloo|plain  (gloo: init a gloo group before training, as a DDP job)
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from stamp import rank

OUT = sys.argv[1]
CKPT = os.path.join(OUT, f"ckpt_r{rank()}")
HANG_S = 600.0
state = {"step": 0, "stopping": False}


def stamp(kind: str) -> None:
    name = os.path.join(OUT, f"{kind}_0_{rank()}")
    with open(name + ".tmp", "w") as f:
        f.write(repr(time.time()))
    os.replace(name + ".tmp", name)


def save() -> None:
    with open(CKPT + ".tmp", "w") as f:
        json.dump({"step": state["step"]}, f)
    os.replace(CKPT + ".tmp", CKPT)


def on_warning(signum: int, frame: object) -> None:
    save()


def on_stop(signum: int, frame: object) -> None:
    if state["stopping"]:  # a second SIGTERM (torchrun passes Slurm's on): already leaving
        return
    state["stopping"] = True
    save()
    sys.exit(143)


def main() -> None:
    signal.signal(signal.SIGUSR1, on_warning)
    signal.signal(signal.SIGTERM, on_stop)
    resumed = os.path.exists(CKPT)
    if resumed:
        with open(CKPT) as f:
            state["step"] = json.load(f)["step"]
    if sys.argv[2] == "gloo":
        import torch.distributed as dist

        dist.init_process_group("gloo")
    stamp("resumed" if resumed else "ready")
    last = state["step"] + (5 if resumed else 10**9)
    deadline = time.monotonic() + HANG_S
    while state["step"] < last and time.monotonic() < deadline:
        state["step"] += 1
        time.sleep(0.05)
    sys.exit(0 if resumed else 3)


if __name__ == "__main__":
    main()

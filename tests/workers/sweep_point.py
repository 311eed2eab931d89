"""A sweep point: stamps its start (time, pid, devices, its agent's command line and its own
environment) in --markers, prints --lines lines, waits until
the sweep folder holds --wait_for (a sibling point's folder; 10 s at most), sleeps --sleep
seconds, exits --code (1 when the file fail_<tag> exists in --markers). Appends to ran_<tag>:
one line per run."""

import json
import os
import sys
import time
from pathlib import Path

args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
markers, tag, rank = Path(args["markers"]), args["tag"], os.environ["RANK"]
with open(markers / f"ran_{tag}", "a") as f:
    f.write(f"{os.getpid()}\n")
run_dir = os.environ["ERUN_RUN_DIR"]
with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
    agent = [a.decode() for a in f.read().split(b"\0") if a]
stamp = {"time": time.time(), "pid": os.getpid(), "devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
         "run_dir": run_dir, "agent": agent,
         "env": dict(os.environ)}
name = f"start_{tag}_r{rank}_{os.getpid()}"
(markers / f"{name}.tmp").write_text(json.dumps(stamp))
os.replace(markers / f"{name}.tmp", markers / name)
print(f"point {tag} rank {rank} running", flush=True)
for i in range(int(args.get("lines", "0"))):  # chatty: many lines, each written in pieces
    print(f"point {tag} line {i} ", end="", flush=True)
    print("x" * 200, flush=True)
if "wait_for" in args:
    awaited, deadline = Path(run_dir).parent / args["wait_for"], time.monotonic() + 10
    while not awaited.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    (markers / f"awaited_{tag}").write_text(json.dumps(awaited.exists()))
time.sleep(float(args.get("sleep", "1")))
sys.exit(1 if (markers / f"fail_{tag}").exists() else int(args.get("code", "0")))

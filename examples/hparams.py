"""Hyperparameters three ways: flags (params rendered as --key=value), ERUN_PARAMS (JSON)
and ERUN_CONFIG (the whole resolved job config, as YAML, in the run directory).

    erun +job=hparams params.lr=1e-3 params.optimizer.momentum=0.5
"""

import argparse
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--batch_size", type=int, default=32)
parser.add_argument("--optimizer.name", dest="optimizer_name", default="sgd")
parser.add_argument("--optimizer.momentum", dest="momentum", type=float, default=0.0)
parser.add_argument("--tags", type=json.loads, default=[])
args = parser.parse_args()

rank = os.environ["RANK"]
print(f"rank {rank}: lr={args.lr} batch_size={args.batch_size} optimizer={args.optimizer_name} "
      f"momentum={args.momentum} tags={args.tags}", flush=True)
params = json.loads(os.environ.get("ERUN_PARAMS", "{}"))
assert params["lr"] == args.lr, (params, args)
if rank == "0" and "ERUN_CONFIG" in os.environ:
    with open(os.environ["ERUN_CONFIG"]) as f:
        lines = len(f.read().splitlines())
        print(f"rank 0: job config {os.environ['ERUN_CONFIG']} has {lines} lines", flush=True)

"""A job for Hydra's habits: writes seen.json (its working directory and FOO) into the run dir,
reports params.x * 10 through runner.result, and fails (exit 1) when params.x is 3."""

import json
import os
import sys

import runner

x = int(json.loads(os.environ["ERUN_PARAMS"])["x"])
seen = {"cwd": os.getcwd(), "FOO": os.environ.get("FOO")}
with open(os.path.join(os.environ["ERUN_RUN_DIR"], "seen.json"), "w") as f:
    json.dump(seen, f)
if x == 3:
    sys.exit(1)
runner.result(x * 10)

"""parent_maps.py OUT_DIR: record whether the parent (the agent) has torch's libraries mapped."""

import json
import os
import sys
from pathlib import Path

from _common import rank

maps = Path(f"/proc/{os.getppid()}/maps").read_text()
libs = sorted({line.split()[-1] for line in maps.splitlines() if "torch" in line.split()[-1]})
(Path(sys.argv[1]) / f"maps_{rank()}.json").write_text(json.dumps({"ppid": os.getppid(), "torch": libs}))

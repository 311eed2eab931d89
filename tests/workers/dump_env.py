"""dump_env.py OUT_DIR: write this worker's environment to OUT_DIR/env_<rank>.json."""

import json
import os
import sys
from pathlib import Path

from _common import rank

path = Path(sys.argv[1]) / f"env_{rank()}.json"
tmp = path.with_name(path.name + ".tmp")
tmp.write_text(json.dumps(dict(os.environ), sort_keys=True))
os.replace(tmp, path)

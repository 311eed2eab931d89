"""pdeathsig.py OUT_DIR: write this worker's parent-death signal (prctl PR_GET_PDEATHSIG) and pid."""

import ctypes
import json
import os
import sys
from pathlib import Path

from _common import rank

signum = ctypes.c_int(0)
ctypes.CDLL(None, use_errno=True).prctl(2, ctypes.byref(signum), 0, 0, 0)  # PR_GET_PDEATHSIG
(Path(sys.argv[1]) / f"pdeathsig_{rank()}.json").write_text(json.dumps({"signal": signum.value,
                                                                        "ppid": os.getppid()}))

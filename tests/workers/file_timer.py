"""file_timer.py MARKER_DIR: torch's FileTimerClient (TORCHELASTIC_TIMER_FILE) with a 1 s timer
around a hang on attempt 0; exits 0 at once on later attempts."""

import os
import sys

from _common import attempt, hang, ready
from torch.distributed.elastic.timer import FileTimerClient, configure, expires

if attempt() > 0:
    sys.exit(0)
configure(FileTimerClient(os.environ["TORCHELASTIC_TIMER_FILE"]))
ready(sys.argv[1])
with expires(after=1, scope="train_step"):
    hang()

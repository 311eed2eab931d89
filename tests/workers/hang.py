"""hang.py MARKER_DIR: say ready, then hang until signalled."""

import sys

from _common import hang, ready

ready(sys.argv[1])
hang()

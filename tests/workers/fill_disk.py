"""Fill the disk of the run directory, write to stdout (which cannot reach the log), then free
the disk again unless told to keep it full; exit 0.

    fill_disk.py FILLER_PATH free|keep BYTES_TO_PRINT
"""

import os
import sys

filler, mode, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(filler, "wb") as f:
    try:
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    except OSError:
        pass
sys.stdout.write("x" * (count - 1) + "\n")
sys.stdout.flush()
if mode == "free":
    os.unlink(filler)
print("done", flush=True)

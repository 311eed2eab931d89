"""touch_rank.py --touch-file-dir DIR [--fail]: a launcher-conformance worker.

Checks that the launcher's own environment reached it (CONFORMANCE_SENTINEL), then creates
DIR/<RANK> holding LOCAL_RANK and WORLD_SIZE; with --fail it raises instead (exit status 1).
"""

import argparse
import os
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--touch-file-dir", required=True)
    p.add_argument("--fail", action="store_true")
    args = p.parse_args()
    if args.fail:
        raise RuntimeError("failed on purpose")
    assert os.environ["CONFORMANCE_SENTINEL"] == "parent", "the launcher's environment is missing"
    seen = f"{os.environ['LOCAL_RANK']} {os.environ['WORLD_SIZE']}"
    Path(args.touch_file_dir, os.environ["RANK"]).write_text(seen)


if __name__ == "__main__":
    main()

"""record_error.py [RANK]: that rank (default 0) raises under torch's @record; others exit 0."""

import os
import sys

if int(os.environ["RANK"]) != (int(sys.argv[1]) if len(sys.argv) > 1 else 0):
    sys.exit(0)

from torch.distributed.elastic.multiprocessing.errors import record  # noqa: E402


def load_shard(index: int) -> None:
    raise ValueError(f"shard {index} is corrupt")


@record
def main() -> None:
    print("about to fail", file=sys.stderr, flush=True)
    load_shard(7)


main()

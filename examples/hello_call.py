"""A `call` entrypoint: erun imports this module in each worker and calls main(**params).

    erun +job=call params.greeting=hi
"""

import os


def main(greeting: str = "hello", repeat: int = 1) -> int:
    for _ in range(repeat):
        print(f"rank {os.environ['RANK']} of {os.environ['WORLD_SIZE']}: {greeting}", flush=True)
    return 0

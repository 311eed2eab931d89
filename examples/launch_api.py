"""erun from Python: train a small DDP model on 2 CPU workers (gloo) with `runner.launch`, and
get every rank's final loss back. The function below lives in `__main__`: erun ships it to the
workers by value, so this works from a notebook cell too.

    python examples/launch_api.py            # 2 workers; rank 1 crashes once, erun restarts
"""

from __future__ import annotations

import os

import runner


def train(steps: int, lr: float, crash_at: int = -1) -> float:
    """A linear model learns y = 3x on each rank's own data; returns the last loss."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo")  # torchrun's environment: RANK, WORLD_SIZE, MASTER_ADDR...
    rank = dist.get_rank()
    torch.manual_seed(rank)
    model = DistributedDataParallel(torch.nn.Linear(1, 1))
    optim = torch.optim.SGD(model.parameters(), lr=lr)
    loss = torch.tensor(0.0)
    for step in range(steps):
        if step == crash_at and rank == 1 and os.environ["TORCHELASTIC_RESTART_COUNT"] == "0":
            raise RuntimeError(f"rank 1 crashes once at step {step}")
        x = torch.randn(32, 1)
        loss = torch.nn.functional.mse_loss(model(x), 3 * x)
        optim.zero_grad()
        loss.backward()
        optim.step()
        if step % 50 == 0:
            print(f"step {step}: loss {loss.item():.4f}", flush=True)
        runner.heartbeat()
    dist.destroy_process_group()
    return loss.item()


if __name__ == "__main__":
    result = runner.launch(train, 200, 0.05, nproc=2, kwargs={"crash_at": 60},
                           restart={"max_restarts": 1}, health={"heartbeat_timeout_s": 60})
    print(f"final loss by rank: {result.return_values}; run dir {result.run_dir}")
    try:
        runner.launch(train, 10, 0.05, nproc=2, kwargs={"crash_at": 5})  # no restart allowed
    except runner.JobFailedError as e:
        print(f"as expected, rank {e.rank} failed: {e.exception!r}")

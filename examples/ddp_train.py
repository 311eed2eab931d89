"""A real DDP training on CPU (gloo): a small MLP learns a fixed random linear map.

Rank 0 saves a checkpoint every --ckpt_every steps (atomically, into --ckpt_dir); every rank
resumes from the latest one when it starts, so a crash loses at most ckpt_every steps.
--fail_at_step=S makes rank 1 crash once at step S (first attempt only) to show a recovery.

Runs under erun (`erun +job=ddp`) or torchrun alike: it only reads torchrun's environment.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

FEATURES, HIDDEN = 32, 64


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--ckpt_every", type=int, default=50)
    run_dir = os.environ.get("ERUN_RUN_DIR", ".")
    parser.add_argument("--ckpt_dir", default=os.path.join(run_dir, "checkpoints"))
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--fail_at_step", type=int, default=-1)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def batch(step: int, rank: int, size: int, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Data depends only on (step, rank): a resumed run sees exactly what it would have seen."""
    gen = torch.Generator().manual_seed(step * 1009 + rank)
    x = torch.randn(size, FEATURES, generator=gen)
    return x, x @ target


def save(path: Path, model: nn.Module, optim: torch.optim.Optimizer, step: int) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optim": optim.state_dict(), "step": step}, tmp)
    os.replace(tmp, path)  # a crash never leaves half a checkpoint


def load(path: Path, model: nn.Module, optim: torch.optim.Optimizer) -> int:
    if not path.exists():
        return 0
    state = torch.load(path, map_location="cpu")
    model.load_state_dict(state["model"])
    optim.load_state_dict(state["optim"])
    return int(state["step"])


def main() -> None:
    args = parse_args()
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    torch.manual_seed(args.seed)
    target = torch.randn(FEATURES, 1, generator=torch.Generator().manual_seed(args.seed))
    model = nn.Sequential(nn.Linear(FEATURES, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, 1))
    ddp = DistributedDataParallel(model)
    optim = torch.optim.SGD(ddp.parameters(), lr=args.lr)
    ckpt = Path(args.ckpt_dir) / "last.pt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    start = load(ckpt, model, optim)
    if rank == 0:
        print(f"attempt {attempt}: world size {world}, starting at step {start} of {args.steps}", flush=True)
    began, loss = time.time(), torch.tensor(0.0)
    for step in range(start, args.steps):
        if step == args.fail_at_step and rank == min(1, world - 1) and attempt == 0:
            raise RuntimeError(f"simulated crash at step {step} (rank {rank}, attempt {attempt})")
        x, y = batch(step, rank, args.batch_size, target)
        loss = nn.functional.mse_loss(ddp(x), y)
        optim.zero_grad()
        loss.backward()
        optim.step()
        done = step + 1
        if rank == 0 and (done % args.ckpt_every == 0 or done == args.steps):
            save(ckpt, model, optim, done)
            print(f"step {done}: loss {loss.item():.4f} (checkpoint saved)", flush=True)
    if rank == 0:
        print(f"done: {args.steps - start} steps in {time.time() - began:.1f} s, "
              f"final loss {loss.item():.4f}, resumed from step {start}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

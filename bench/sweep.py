"""sweep: a Hydra multirun (`erun -m`) of small jobs, erun's launcher vs Hydra's basic and joblib
launchers: its wall time, and how soon its first point runs.

The sweep: N points (`params.i=0,...,N-1`), each a 1-process job whose worker stamps its start
(bench/workers/sleeper.py, in the point's own run directory) and sleeps S seconds. Two values
per run: the command's wall time, start to exit, and the first point running (start to the
earliest start stamp). A run counts only when it exits 0 and every point stamped.

- `erun -m`: erun's launcher (the default) with its default slots: one per usable core;
- `erun -m slots=N`: one slot per point, as on a node with N GPUs running N 1-GPU points;
- `hydra basic`: `hydra/launcher=basic`, Hydra's launcher: the points one after the other;
- `hydra joblib`: `hydra/launcher=joblib` (hydra-joblib-launcher), its defaults: n_jobs=-1,
  one loky process per core, as many side by side as `erun -m`.

All go through the same erun CLI and agent; only the launcher differs. Repetitions interleave
the launchers, each starting with the next one, so load hits all alike; both values come from
the same run of each, measured alike for every launcher. Targets (bench/targets.py): `erun -m` at least 1.3x
faster than joblib, and its first point running within 0.5 s of the basic launcher's.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from bench.common import Row, log, run_command, workdir, worker_script
from bench.config import BenchConfig

NAME = "sweep"
TITLE = ("sweep: `erun -m` over N sleeping 1-process jobs, erun's launcher vs Hydra's basic and joblib: "
         "wall time, and the first point running")
WALL = "{points} points x 1 proc sleeping {sleep:g} s"
FIRST = "first point running ({points} points)"
PENDING: str | None = None


@dataclass(frozen=True)
class Size:
    points: int
    sleep_s: float
    reps: int
    timeout_s: float

    @classmethod
    def of(cls, cfg: BenchConfig) -> Size:
        """The mode's sizes (bench/config.py, sweep_*)."""
        return cls(cfg.sweep_points, cfg.sweep_sleep_s, cfg.sweep_reps, cfg.sweep_timeout_s)


def launchers(size: Size, chosen: tuple[str, ...]) -> dict[str, list[str]]:
    """Launcher name -> the extra erun arguments that choose it (those of `chosen`, bench/config.py)."""
    known = {"erun -m": [], "erun -m slots=N": [f"hydra.launcher.slots={size.points}"],
             "hydra basic": ["hydra/launcher=basic"], "hydra joblib": ["hydra/launcher=joblib"]}
    return {name.replace("=N", f"={size.points}"): known[name] for name in chosen}


def write_job(work: Path, size: Size) -> None:
    (work / "job.yaml").write_text(
        f"entrypoint: {worker_script('sleeper.py')}\n"
        f"args: ['${{hydra:runtime.output_dir}}', '{size.sleep_s}']\n"
        "params_as: env\nparams:\n  i: 0\nlogs:\n  console: false\n")


def measure(extra: list[str], size: Size) -> tuple[float, float] | None:
    """The run's wall time and its first point running (seconds from its start); None: it failed."""
    with workdir("sweep") as work:
        write_job(work, size)
        points = ",".join(str(i) for i in range(size.points))
        argv = [sys.executable, "-m", "runner", "-m", "+job=job.yaml", f"params.i={points}",
                "hydra.sweep.dir=sweep", *extra]
        result = run_command(argv, work / "output.log", size.timeout_s, cwd=work)
        stamps = [float(p.read_text()) for p in (work / "sweep").glob("*/start_0_0")]
        if not result.ok or len(stamps) != size.points:
            log(f"sweep {' '.join(extra) or '(erun launcher)'} failed (rc {result.returncode}, "
                f"{len(stamps)}/{size.points} points ran):\n{result.output_tail}")
            return None
        return result.end - result.start, min(stamps) - result.start


def run(cfg: BenchConfig) -> list[Row]:
    size = Size.of(cfg)
    wall, first = WALL.format(points=size.points, sleep=size.sleep_s), FIRST.format(points=size.points)
    log(f"sweep {wall}")
    named = launchers(size, cfg.sweep_launchers)
    walls = {name: Row(NAME, wall, name) for name in named}
    firsts = {name: Row(NAME, first, name) for name in named}
    order = list(named.items())
    for rep in range(size.reps):
        # Interleaved, so noise hits every launcher alike; each repetition starts with the next
        # launcher, so none always runs first (or right after another's heavy run).
        for name, extra in order[rep % len(order):] + order[:rep % len(order)]:
            measured = measure(extra, size)
            walls[name].add(measured and measured[0])
            firsts[name].add(measured and measured[1])
    return [*walls.values(), *firsts.values()]

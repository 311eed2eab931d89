"""`python -m bench`: run every metric under erun, torchrun and the bare Popen floor.

    python -m bench              # full: every size, 5 repetitions (roughly 40 minutes on 2 cores)
    python -m bench --quick      # every metric, 1-3 repetitions (about 2.5 minutes; CI runs it)
    python -m bench --smoke      # one tiny run per metric, about 15 s (tests/test_bench.py)
    python -m bench --save       # also copy the Markdown to bench/RESULTS.md (for docs/benchmarks.md)

Writes <out>/latest.md and <out>/latest.json (default out: bench/results, git-ignored).
Exits 1 when the suite did not work (bench/checks.py: a metric raised or measured nothing
for erun, a launcher never succeeded, processes were left behind), never because of speed.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import traceback
from pathlib import Path
from types import FrameType

from bench import checks, common, report
from bench.config import MODES, BenchConfig
from bench.registry import BY_NAME, METRICS, Metric
from bench.targets import verdicts


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", dest="mode", const="quick")
    mode.add_argument("--smoke", action="store_const", dest="mode", const="smoke")
    parser.add_argument("--only", nargs="+", choices=sorted(BY_NAME), help="run only these metrics")
    parser.add_argument("--out", type=Path, default=common.BENCH_DIR / "results", help="results folder")
    parser.add_argument("--save", action="store_true", help="also write the Markdown to bench/RESULTS.md")
    parser.set_defaults(mode="full")
    return parser.parse_args(argv)


def public_argv(argv: list[str]) -> list[str]:
    """argv without --out's value (a path of this machine)."""
    out, skip = [], False
    for arg in argv:
        if skip or arg.startswith("--out="):
            skip = False
            continue
        skip = arg == "--out"
        if not skip:
            out.append(arg)
    return out


def selected(only: list[str] | None) -> list[Metric]:
    return [m for m in METRICS if not m.pending and (not only or m.name in only)]


def measure_one(metric: Metric, cfg: BenchConfig, results: report.Results) -> bool:
    """Run one metric; a crash is recorded as a problem (False) and the other metrics still run."""
    begin = time.time()
    try:
        results.rows += metric.run(cfg)
        return True
    except Exception as exc:  # a crash fails the suite, but the rest is still measured and written
        common.log(f"{metric.name} crashed:\n{traceback.format_exc()}")
        results.problems.append(f"{metric.name}: crashed: {type(exc).__name__}: {exc}")
        return False
    finally:
        common.sweep_session()
        results.durations[metric.name] = time.time() - begin


def measure(cfg: BenchConfig, metrics: list[Metric], results: report.Results) -> None:
    finished = [m.name for m in metrics if measure_one(m, cfg, results)]
    results.problems += checks.problems(finished, results.rows)


def write(results: report.Results, out: Path, save: bool) -> str:
    text = report.markdown(results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.md").write_text(text)
    (out / "latest.json").write_text(json.dumps(results.to_dict(), indent=2) + "\n")
    if save:
        (common.BENCH_DIR / "RESULTS.md").write_text(text)
    return text


def on_stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally that kills what is left


def main(argv: list[str]) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, on_stop)
    results = report.Results(report.command_line(public_argv(argv)), args.mode, time.time())
    common.precompile_erun()
    try:
        measure(MODES[args.mode], selected(args.only), results)
    finally:
        common.sweep_session()
    results.survivors = len(common.survivors())
    results.duration_s = time.time() - results.started
    results.verdicts = verdicts(results.rows)
    failed = failures(results)
    if failed and args.save:
        common.log("the suite did not work: bench/RESULTS.md left as it was")
    report.echo(write(results, args.out, args.save and not failed))
    for problem in failed:
        common.log(f"PROBLEM: {problem}")
    common.log(f"{'FAILED' if failed else 'done'} in {results.duration_s:.0f} s; "
               f"results in {args.out}/latest.md and latest.json")
    return 1 if failed else 0


def failures(results: report.Results) -> list[str]:
    """Why the suite did not work (empty when it did, whatever the numbers)."""
    left = [f"{results.survivors} process(es) left behind"] if results.survivors else []
    return results.problems + left


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

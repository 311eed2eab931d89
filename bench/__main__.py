"""`python -m bench`: run every metric under erun, torchrun and the bare Popen floor.

    python -m bench              # full: more repetitions and sizes (tens of minutes)
    python -m bench --quick      # few repetitions, under ~3 minutes
    python -m bench --smoke      # one tiny run per metric (the test suite's check)
    python -m bench --save       # also copy the Markdown to bench/RESULTS.md (for the README)

Writes <out>/latest.md and <out>/latest.json (default out: bench/results, git-ignored).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from bench import common, report
from bench.config import MODES, BenchConfig
from bench.registry import BY_NAME, METRICS
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


def measure(cfg: BenchConfig, only: list[str] | None, results: report.Results) -> None:
    for metric in METRICS:
        if metric.pending or (only and metric.name not in only):
            continue
        results.rows += metric.run(cfg)
        common.sweep_session()


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
    try:
        measure(MODES[args.mode], args.only, results)
    finally:
        common.sweep_session()
    results.survivors = len(common.survivors())
    results.duration_s = time.time() - results.started
    results.verdicts = verdicts(results.rows)
    report.echo(write(results, args.out, args.save))
    return 0 if results.survivors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

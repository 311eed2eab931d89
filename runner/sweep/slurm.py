"""`erun -m ... cluster=slurm`: every point of the sweep becomes a Slurm job, submitted at once.

Each point is composed and compiled first, as for a local sweep (runner.sweep.launch; a bad
point is a one-line error before anything is submitted), but for the cluster
(runner.cluster.slurm): its own run directory, plan and record files. Points that ask for the
same resources go as one job array (runner.cluster.array), the others as jobs of their own.
erun returns once they are queued (`--wait`: once they have all ended) and records every
point's job id in sweep_dir/slurm.json (and each point's in its run_dir/slurm.json), where
`erun status SWEEP_DIR` finds them.

--resume: points that succeeded are skipped, and so are points whose job is still queued or
running; the others are submitted again into fresh N_retryK folders (the earlier run is kept).
A refusal (no sbatch, sbatch's own) cancels whatever this launch already submitted: nothing is
left queued, and the files written for it are removed.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus

from runner.cluster import array, jobview, registry
from runner.cluster.slurm import SbatchRequest, check_partition_size, remove_files, submit, write_files
from runner.cluster.startable import check_can_start
from runner.errors import COMMAND_LINE, ConfigError, ErunError
from runner.paths import RunPaths, SweepPaths
from runner.record.read import read_json
from runner.sweep.launch import Sweep
from runner.sweep.points import EarlierRun, batch_labels, earlier_runs, recorded_state, succeeded_run
from runner.words import display_path

WAIT_INTERVAL_S = 0.5
ACTIVE = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD",
          "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT")


@dataclass
class ClusterPoint:
    """One point of the sweep: to submit (`request`), or kept as it is (`note` says why)."""

    index: int
    overrides: tuple[str, ...]
    label: str
    run_dir: Path
    request: SbatchRequest | None = None
    files: dict[str, str] = field(default_factory=dict)
    job_id: str = ""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"point": self.index, "label": self.label, "overrides": list(self.overrides),
                "run_dir": str(self.run_dir), "job_id": self.job_id, "note": self.note}


class SlurmSweep(Sweep):
    """One launch of a sweep on Slurm (the launcher's `launch`)."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
        earlier = earlier_runs(self.sweep_dir) if self.settings.resume else {}
        names = batch_labels(self.history, job_overrides)
        points = [self.point(initial_job_idx + n, tuple(o), names[n], earlier.get(frozenset(o), []))
                  for n, o in enumerate(job_overrides)]
        check_distinct(points, self.context.cwd)
        todo = [p for p in points if p.request is not None]
        if self.context.dry_run:
            for group in array.groups([p.request for p in todo if p.request]):
                print(self.describe([todo[i] for i in group]), flush=True)
            print(f"erun: dry run: {len(todo)} point(s) for Slurm; nothing submitted", file=sys.stderr,
                  flush=True)
            return [JobReturn(overrides=list(p.overrides), status=JobStatus.COMPLETED) for p in points]
        if todo:
            self.submit_all(todo)
        record_points(self.sweep_dir, points)
        print(f"erun: sweep of {len(points)} point(s) on Slurm: {len(todo)} submitted: "
              f"{display_path(self.sweep_dir, self.context.cwd)}\n{table(points, self.context.cwd)}",
              file=sys.stderr, flush=True)
        status = wait_for_points(points) if self.context.wait else 0
        self.session.finish(status)
        return [JobReturn(overrides=list(p.overrides), status=JobStatus.COMPLETED) for p in points]

    def point(self, index: int, overrides: tuple[str, ...], label: str,
              runs: list[EarlierRun]) -> ClusterPoint:
        """The point as this launch treats it: done earlier, still queued, or compiled to submit."""
        done = succeeded_run(runs)
        if done is not None:
            return ClusterPoint(index, overrides, label, done, job_id=job_of(done), note="succeeded earlier")
        queued = next((r.run_dir for r in runs if job_of(r.run_dir) and is_active(job_of(r.run_dir))), None)
        if queued is not None:
            return ClusterPoint(index, overrides, label, queued, job_id=job_of(queued), note="still queued")
        _, _, outcome = self.run_in_point(index, overrides, self.hydra_context, self.prepare_on_cluster)
        request, files = outcome
        return ClusterPoint(index, overrides, label, Path(request.plan.run_dir), request, dict(files))

    def prepare_on_cluster(self, cfg: Any) -> tuple[Any, dict[str, str]]:
        if registry.chosen(cfg) != "slurm":
            raise ConfigError("cluster", "differs between the sweep's points",
                              "sweep on one cluster: set cluster=... outside the swept keys", COMMAND_LINE)
        return self.session.prepare_cluster_point(cfg)

    def describe(self, group: list[ClusterPoint]) -> str:
        requests = [p.request for p in group if p.request is not None]
        if len(requests) == 1:
            return requests[0].describe()
        script = self.sweep_dir / "slurm_array_K.sbatch"
        return (f"# sbatch --parsable {script}  (dry run: nothing submitted; "
                f"points {', '.join(str(p.index) for p in group)} as one job array)\n"
                f"{array.array_script(requests, self.sweep_dir)}")

    def submit_all(self, todo: list[ClusterPoint]) -> None:
        """Every point's files and job (an array per group); on a refusal nothing stays queued."""
        if shutil.which("sbatch") is None:
            raise ConfigError("cluster", "is slurm, but sbatch is not on PATH", "load Slurm's client tools "
                              "(module load slurm), or use cluster=local", COMMAND_LINE)
        requests = [p.request for p in todo if p.request is not None]
        submitted: list[str] = []
        written: list[tuple[list[Path], Path]] = []
        try:
            for group in array.groups(requests):
                points = [todo[i] for i in group]
                check_partition_size(requests[group[0]].plan, requests[group[0]].slurm.partition)
                if len(points) == 1:
                    request = requests[group[0]]
                    written.append((write_files(request, points[0].files), points[0].run_dir))
                    points[0].job_id = submit(request)
                    submitted.append(points[0].job_id)
                    check_can_start(points[0].job_id, request.slurm.partition)
                    continue
                script = array.array_script([requests[i] for i in group], self.sweep_dir)
                for i, point in zip(group, points, strict=True):
                    request = dataclasses.replace(requests[i], script=script)
                    written.append((write_files(request, point.files), point.run_dir))
                job_id = array.submit_array(script, self.sweep_dir)
                submitted.append(job_id)
                check_can_start(job_id, requests[group[0]].slurm.partition)
                for task, point in enumerate(points):
                    point.job_id = f"{job_id}_{task}"
        except ErunError:
            if submitted and shutil.which("scancel"):
                subprocess.run(["scancel", *submitted], capture_output=True, check=False,
                               stdin=subprocess.DEVNULL)
            for files, run_dir in written:
                remove_files(files, run_dir)
            raise
        for point in todo:
            jobview.write_job(RunPaths(point.run_dir).slurm_job, point.job_id,
                              {"array_job": point.job_id.split("_")[0]} if "_" in point.job_id else None)


def check_distinct(points: list[ClusterPoint], cwd: Path) -> None:
    seen: dict[Path, ClusterPoint] = {}
    for point in points:
        if point.request is None:
            continue
        first = seen.setdefault(point.run_dir, point)
        if first is not point:
            shown = display_path(point.run_dir, cwd)
            raise ConfigError("hydra.sweep.subdir", f"puts point {first.index} {first.label} and point "
                              f"{point.index} {point.label} in the same folder {shown}",
                              "make it differ per point, e.g. ${hydra.job.num}", COMMAND_LINE)


def job_of(run_dir: Path) -> str:
    return jobview.recorded_job(RunPaths(run_dir).slurm_job) or ""


def is_active(job_id: str) -> bool:
    return jobview.views([job_id])[job_id].state in ACTIVE


def record_points(sweep_dir: Path, points: list[ClusterPoint]) -> None:
    """sweep_dir/slurm.json: every point's job id, by point (a later batch or --resume updates it)."""
    path = SweepPaths(sweep_dir).slurm_jobs
    known = {int(p["point"]): p for p in read_json(path).get("points", []) if isinstance(p, dict)
             and isinstance(p.get("point"), int)}
    known.update({p.index: p.to_dict() for p in points})
    data = {"backend": "slurm", "written_at": time.time(), "points": [known[k] for k in sorted(known)]}
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def table(points: list[ClusterPoint], cwd: Path) -> str:
    rows = [["point", "overrides", "slurm job", "run dir"]]
    rows += [[str(p.index), p.label, (p.job_id or "-") + (f" ({p.note})" if p.note else ""),
              display_path(p.run_dir, cwd)] for p in points]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def wait_for_points(points: list[ClusterPoint]) -> int:
    """--wait: until no point's job is queued or running; 0 when every point succeeded, else 1."""
    ids = [p.job_id for p in points if p.job_id]
    while any(v.state in ACTIVE for v in jobview.views(ids).values()):
        time.sleep(WAIT_INTERVAL_S)
    states = {p.index: recorded_state(p.run_dir) for p in points}
    failed = [str(i) for i, s in states.items() if s != "SUCCEEDED"]
    if failed:
        print(f"erun: sweep point(s) {', '.join(failed)} did not succeed (erun status SWEEP_DIR)",
              file=sys.stderr, flush=True)
    return 1 if failed else 0

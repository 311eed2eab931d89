"""`python -m runner.sweep.child PAYLOAD RESULT`: one point of a Hydra app's sweep, in a fresh
process of its own (started by `runner.sweep.tasks`).

PAYLOAD holds, pickled, the launcher's `sys.path` and (by cloudpickle, so closures and
`__main__` functions travel by value) the task function, Hydra's context, the point's config
and Hydra's global state (ConfigStore, plugins, OmegaConf resolvers). The child runs Hydra's own
`run_job` as the basic launcher does (HydraConfig, output dir, .hydra files, job logging,
`hydra.job.chdir`, `env_set`, callbacks) and writes the JobReturn, pickled, to RESULT, with
the traceback of a failed task. Exit status 0 when the task completed, else 1.
"""

from __future__ import annotations

import pickle
import sys
import traceback
from typing import Any


def run(payload: dict[str, Any]) -> Any:
    """Hydra's `run_job` for the point, with the launcher's global state restored first."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.singleton import Singleton
    from hydra.core.utils import run_job, setup_globals

    setup_globals()
    Singleton.set_state(payload["singletons"])
    HydraConfig.instance().set_config(payload["config"])
    return run_job(hydra_context=payload["hydra_context"], config=payload["config"],
                   task_function=payload["task_function"], job_dir_key="hydra.sweep.dir",
                   job_subdir_key="hydra.sweep.subdir")


def sendable(job_return: Any) -> tuple[bytes, str]:
    """The JobReturn pickled, and a failed task's traceback (also in the pickle). A return value
    or exception that cannot be pickled is replaced by an error that says so (the point then
    failed: the sweeper could not have used it)."""
    import cloudpickle
    from hydra.core.utils import JobStatus

    value = job_return._return_value
    failed = job_return.status is not JobStatus.COMPLETED and isinstance(value, BaseException)
    shown = "".join(traceback.format_exception(value)) if failed else ""
    try:
        return cloudpickle.dumps({"job_return": job_return, "traceback": shown}), shown
    except Exception as e:  # any pickling error: what cannot be sent is named instead
        what = f"{type(value).__name__}: {value}" if failed else f"its return value ({type(value).__name__})"
        job_return._return_value = RuntimeError(f"{what} could not be sent back to the launcher: {e}")
        job_return.status = JobStatus.FAILED
        return cloudpickle.dumps({"job_return": job_return, "traceback": shown}), shown


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m runner.sweep.child PAYLOAD RESULT", file=sys.stderr)
        return 2
    with open(argv[0], "rb") as f:
        shipped = pickle.load(f)
    # The launcher's import path first: functions shipped by reference import from there.
    sys.path[:] = [*shipped["sys_path"], *(p for p in sys.path if p not in shipped["sys_path"])]
    job_return = run(pickle.loads(shipped["blob"]))
    data, shown = sendable(job_return)
    with open(argv[1], "wb") as f:
        f.write(data)
    if shown:
        print(shown, file=sys.stderr, end="", flush=True)
    return 0 if job_return.status.name == "COMPLETED" else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

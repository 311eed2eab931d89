"""A Hydra callback (hydra.callbacks.rec._target_=hydra_callbacks.Recorder, this folder on
PYTHONPATH) that appends one JSON line per event to $CALLBACK_LOG: the event, the working
directory, FOO from the environment, and for on_job_end the JobReturn's status, value and
overrides, and the state summary.json holds then."""

import json
import os
from typing import Any

from hydra.experimental.callback import Callback


class Recorder(Callback):
    def _write(self, event: str, **fields: Any) -> None:
        line = {"event": event, "cwd": os.getcwd(), "FOO": os.environ.get("FOO"), **fields}
        with open(os.environ["CALLBACK_LOG"], "a") as f:
            f.write(json.dumps(line) + "\n")

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self._write("multirun_start")

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        self._write("multirun_end")

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        self._write("job_start", run_dir=config.hydra.runtime.output_dir)

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        value = job_return._return_value  # the public getter raises a failed job's error
        summary = os.path.join(config.hydra.runtime.output_dir, "summary.json")
        state = json.load(open(summary)).get("state") if os.path.exists(summary) else None
        self._write("job_end", run_dir=config.hydra.runtime.output_dir, status=job_return.status.name,
                    summary_state=state,
                    value=value if isinstance(value, (int, float, type(None))) else type(value).__name__,
                    overrides=list(job_return.overrides))

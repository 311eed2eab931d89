"""erun: a config-driven elastic job runner for distributed PyTorch.

The package imports neither torch nor Hydra: the single-node agent starts fast, and workers
can `import runner` for `runner.heartbeat()` at no cost. The Python API (`runner.launch`,
`runner.compose`, runner.api.launcher) is imported on first use.
"""

from typing import Any

from runner.worker.liveness import heartbeat, step
from runner.worker.result import result

__all__ = ["JobFailedError", "LaunchResult", "compose", "heartbeat", "launch", "result", "step"]
__version__ = "0.1.0"

_API = ("launch", "compose", "LaunchResult", "JobFailedError")


def __getattr__(name: str) -> Any:
    """The Python API, imported when first asked for (`import runner` stays light)."""
    if name in _API:
        from runner.api import launcher as api

        return getattr(api, name)
    raise AttributeError(f"module 'runner' has no attribute {name!r}")

"""erun: a config-driven elastic job runner for distributed PyTorch.

The package imports neither torch nor Hydra: the single-node agent starts fast, and workers
can `import runner` for `runner.heartbeat()` at no cost.
"""

from runner.worker.liveness import heartbeat, step
from runner.worker.result import result

__all__ = ["heartbeat", "result", "step"]
__version__ = "0.1.0"

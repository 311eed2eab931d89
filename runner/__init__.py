"""erun: a config-driven elastic job runner for distributed PyTorch.

The package imports neither torch nor Hydra: the single-node agent starts fast, and workers
can `import runner` for `runner.heartbeat()` at no cost.
"""

from runner.worker.liveness import heartbeat, step

__all__ = ["heartbeat", "step"]
__version__ = "0.1.0"

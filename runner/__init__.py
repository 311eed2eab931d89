"""erun: a config-driven elastic job runner for distributed PyTorch.

The package imports neither torch nor Hydra: the single-node agent starts fast.
"""

__version__ = "0.1.0"

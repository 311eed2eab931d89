"""Sweeps on erun's launcher (hydra_plugins/erun_launcher is the thin Hydra shim): `erun -m`
runs every point as a full erun job; any other Hydra app runs each point's task function in a
process of its own; either way side by side on the node's slots.
"""

"""Sweeps (`erun -m ...`): every point of a Hydra multirun is a full erun job, run side by side
on the node's slots by erun's launcher (hydra_plugins/erun_launcher is the thin Hydra shim).
"""

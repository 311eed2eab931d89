"""The runtime: an agent per node that runs a `JobPlan`, supervises its workers, restarts them.

Takes a frozen plan, never a DictConfig; imports no Hydra; imports torch only in
`rendezvous.py`, for multi-node plans. Writes the run's record through `runner.record`.
"""

"""Cluster launchers: submit a compiled job to a scheduler (cluster=slurm); the agents inside the
allocation are ordinary erun agents. May import foundation, config and record, never the runtime."""

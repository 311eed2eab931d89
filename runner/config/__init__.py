"""The config layer: erun's command line and job files, composed by Hydra, compiled into a
frozen `runner.plan.JobPlan`.

Imports Hydra and OmegaConf (lazily where start-up time matters); never the runtime, the record
or the reports. Every user mistake found here is one `ConfigError` naming the key, where it was
set, and the fix.
"""

"""erun from Python and notebooks (`runner.launch`, `runner.compose`; torch's API in runner.compat).
Rule: the caller's process only packs, starts and reads; the agent always runs in the child
(`python -m runner.api.child`), so its cgroup and its sweep of escaped processes never touch the
caller. `import runner` imports none of this until it is used (runner/__init__.py).
"""

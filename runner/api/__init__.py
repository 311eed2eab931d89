"""erun from Python and notebooks: `runner.launch`, `runner.compose`, `runner.compat`.

The caller's process only packs, starts and reads: the agent always runs in a child process
(`python -m runner.api.child`), so its cgroup and its sweep of escaped processes never touch
the caller. Nothing here is imported by `import runner` until used (runner/__init__.py).
"""

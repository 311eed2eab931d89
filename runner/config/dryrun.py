"""`erun ... --dry-run`: the compiled plan in words: what would run, on which ranks, with which env.

Reads only the plan (no torch, no processes). `--dry-run=json` prints `JobPlan.to_json()` instead.
"""

from __future__ import annotations

import json
import shlex

from runner.plan import ExitRule, JobPlan, redacted_env


def describe(plan: JobPlan) -> str:
    """A few aligned lines a person can check before starting a job."""
    lines = [
        f"erun: dry run of job `{plan.name}`; nothing was started",
        _row("command", shlex.join(plan.entrypoint.argv())),
        _row("cwd", plan.cwd or "(erun's working directory)"),
        _row("workers", _workers(plan)),
        *_ranks(plan),
        _row("env", _env(plan)),
        _row("restart", _restart(plan)),
        _row("health", _health(plan)),
        _row("rendezvous", _rdzv(plan)),
        _row("run dir", plan.run_dir),
        _row("config", f"ERUN_CONFIG={plan.config_file}" if plan.config_file else "(none)"),
    ]
    if plan.numa_binding:
        lines.append(_row("cpus", f"numa_binding={plan.numa_binding}: each local rank's CPUs near its GPU, "
                                  "chosen from /sys when the agent starts"))
    if plan.logs.layout == "torchrun":
        lines.append(_row("rank logs", "attempt_N/<local_rank>/ (torchrun's layout)"))
    if plan.params:
        lines.append(_row("params", "ERUN_PARAMS=" + json.dumps(dict(plan.params), sort_keys=True)))
    return "\n".join(lines)


def _row(label: str, value: str) -> str:
    return f"  {label + ':':<12}{value}"


def _workers(plan: JobPlan) -> str:
    nodes = plan.rdzv.min_nodes, plan.rdzv.max_nodes
    where = "this node" if plan.rdzv.single_node else f"each of {nodes[0]}..{nodes[1]} nodes"
    return f"{plan.nproc} on {where}, role {plan.role}"


def _ranks(plan: JobPlan) -> list[str]:
    """One line per local rank: its rank variables and, with isolate_gpus or virtual_local_rank
    (every LOCAL_RANK 0), its device."""
    rows = []
    for local in range(plan.nproc):
        rank = f"RANK={local}" if plan.rdzv.single_node else "RANK=(set at rendezvous)"
        device = f" CUDA_VISIBLE_DEVICES={plan.devices[local]}" if plan.devices else ""
        world = f" WORLD_SIZE={plan.nproc}" if plan.rdzv.single_node else ""
        local_rank = 0 if plan.virtual_local_rank else local
        rows.append(_row(f"rank {local}", f"LOCAL_RANK={local_rank} {rank}{world}{device}"))
    return rows


def _env(plan: JobPlan) -> str:
    own = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(redacted_env(plan.env, plan.redact).items()))
    return (own + " " if own else "") + "+ torchrun's worker variables (MASTER_ADDR, MASTER_PORT, ...)"


def _restart(plan: JobPlan) -> str:
    r = plan.restart
    parts = ["never" if r.max_restarts == 0 else f"up to {r.max_restarts} times after a failure"]
    if r.backoff.kind.value != "none":
        b = r.backoff
        wait = f"{b.initial_s:g} s" if b.kind.value == "fixed" else (
            f"{b.initial_s:g} s x{b.multiplier:g} up to {b.max_s:g} s")
        parts.append(f"backoff {wait}" + (f" +-{b.jitter:.0%}" if b.jitter else ""))
    parts += [_rule(rule) for rule in r.rules]
    if r.crash_loop_failures:
        parts.append(f"give up after {r.crash_loop_failures} failures within {r.crash_loop_window_s:g} s")
    if r.reset_after_s:
        parts.append(f"budget back after {r.reset_after_s:g} s healthy")
    parts.append(f"stop grace {r.stop_grace_s:g} s")
    if plan.warm_spares:
        parts.append(f"warm spares importing {', '.join(r.prewarm.modules)} from {r.prewarm.after_s:g} s "
                     "into each attempt")
    return "; ".join(parts)


def _rule(rule: ExitRule) -> str:
    matches = [*(f"exit {c}" for c in rule.exit_codes), *rule.signals, *rule.reasons]
    return f"{' or '.join(matches)}: {rule.action.value}"


def _health(plan: JobPlan) -> str:
    h = plan.health
    watch = [f"heartbeat {h.heartbeat_timeout_s:g} s" if h.heartbeat_timeout_s else "",
             f"stall {h.stall_timeout_s:g} s" if h.stall_timeout_s else "",
             f"memory {h.memory_limit_mb:g} MiB per rank" if h.memory_limit_mb else "",
             "torch file timers" if h.file_timer else ""]
    return ", ".join(w for w in watch if w) or "no watchdogs"


def _rdzv(plan: JobPlan) -> str:
    r = plan.rdzv
    if r.backend == "standalone":
        return "standalone (one node, no rendezvous service)"
    return f"{r.backend} at {r.endpoint}, id {r.id}, nodes {r.min_nodes}..{r.max_nodes}"

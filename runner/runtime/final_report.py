"""What the user reads when a job ends: a one-line success, or a failure report to act on."""

from __future__ import annotations

from runner.record.cause import cause_facts
from runner.state import Failure, JobState, RunResult, WorkerState, signal_name


def render(result: RunResult, elapsed_s: float) -> str:
    if result.state is JobState.SUCCEEDED:
        return (f"erun: job succeeded in {elapsed_s:.1f} s "
                f"({len(result.attempts)} attempt{'s' if len(result.attempts) != 1 else ''}, "
                f"{result.restarts} restart{'s' if result.restarts != 1 else ''}); "
                f"run dir {result.run_dir}")
    if result.state is JobState.INTERRUPTED:
        return interruption_line(result, elapsed_s)
    return failure_report(result, elapsed_s)


def interruption_line(result: RunResult, elapsed_s: float) -> str:
    """What was stopped, and where the logs are."""
    sig = signal_name(result.signal) if result.signal else "a signal"
    what, killed = "no worker was running", ""
    if result.attempts:
        last = result.attempts[-1]
        stopped = [str(w.rank) for w in last.workers if w.state is WorkerState.STOPPED]
        if stopped:
            what = f"stopped rank(s) {', '.join(stopped)} of attempt {last.attempt}"
        if last.killed_after_grace:
            killed = f" (SIGKILL after the grace: {', '.join(map(str, last.killed_after_grace))})"
    return f"erun: interrupted by {sig} after {elapsed_s:.1f} s; {what}{killed}; logs in {result.run_dir}"


def failure_report(result: RunResult, elapsed_s: float) -> str:
    cause = result.root_cause
    lines = [
        "=" * 72,
        f"erun: job FAILED after {elapsed_s:.1f} s, {len(result.attempts)} attempt(s), "
        f"{result.restarts} restart(s)",
    ]
    if cause is None:
        lines.append("  no rank failed; see the events log")
    else:
        lines += _cause_lines(cause)
    others = [f for f in result.failures if f is not cause]
    if others:
        lines.append("  other failures:")
        lines += [f"    attempt {f.attempt} rank {f.rank}: {f.exit.describe()}" for f in others]
    lines += [f"  run dir:   {result.run_dir}", "=" * 72]
    return "\n".join(lines)


def _cause_lines(cause: Failure) -> list[str]:
    """The root cause's facts (runner.record.cause), laid out for the terminal."""
    facts = cause_facts(cause)
    where = f"rank {cause.rank} (local rank {cause.local_rank}), attempt {cause.attempt}"
    lines = [_fact("root cause:", f"{where}: {facts.what}")]
    if facts.message:
        lines.append(_fact("message:", facts.message))
    if facts.traceback:
        lines.append("  traceback (from the error file):")
        lines += ["    " + line for line in facts.traceback.rstrip().splitlines()]
    if facts.stderr_tail:
        lines.append(f"  last {len(facts.stderr_tail)} lines of its stderr:")
        lines += ["    " + line for line in facts.stderr_tail]
    else:
        lines.append("  its stderr is empty")
    lines += [_fact("stderr:", facts.stderr_log), _fact("stdout:", facts.stdout_log)]
    if cause.error_file:
        lines.append(_fact("error file:", cause.error_file))
    return lines


def _fact(label: str, value: str) -> str:
    return f"  {label:<10} {value}"

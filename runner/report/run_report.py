"""`erun report RUN_DIR [--html PATH]`: what happened in a run (or a sweep), as text and as a page.

The text goes to stdout; the page (runner.report.page) to RUN_DIR/report.html unless --html says
where. Works on finished, failed and interrupted runs, on runs still going (or whose agent died:
the record then stops at RUNNING), and on Hydra multirun directories.
(runner.runtime.final_report is the other report: the lines the agent prints when a job ends.)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from runner.paths import RunPaths
from runner.record import read as runlog
from runner.record.cause import cause_facts
from runner.record.model import AttemptRecord, FailureRecord, RunRecord, SegmentRecord, SweepRecord
from runner.report.cluster import cluster_facts
from runner.report.liveness import agent_gone
from runner.report.runs import newest_run_dir
from runner.report.text import INDENT, ArgParser, fact
from runner.words import clock, duration, plural


def main(args: Sequence[str]) -> int:
    """The `report` subcommand."""
    parser = ArgParser(prog="erun report", description="Summarise a run directory (or a multirun sweep "
                       "directory) and write an HTML page with its timeline.")
    parser.add_argument("run_dir", metavar="RUN_DIR", nargs="?",
                        help="the job's run directory, or a sweep directory (default: the newest run)")
    parser.add_argument("--html", metavar="PATH",
                        help="where to write the page (default RUN_DIR/report.html)")
    options = parser.parse_args(list(args))
    run_dir = Path(options.run_dir) if options.run_dir else newest_run_dir()
    record = runlog.load(run_dir)
    html_path = Path(options.html) if options.html else RunPaths(run_dir).report_html
    print(render(record, html_path), flush=True)
    return 0


def render(record: RunRecord | SweepRecord, html_path: Path) -> str:
    """Write the page; return the text summary, which ends with where the page is."""
    from runner.report import page
    if isinstance(record, SweepRecord):
        page.write_page(html_path, page.sweep_page(record))
        text = sweep_text(record)
    else:
        page.write_page(html_path, page.run_page(record, html_path.parent, cluster_facts(record)))
        text = run_text(record)
    return f"{text}\n{fact('html:', html_path)}"


def run_text(record: RunRecord) -> str:
    """The run in a few lines: state, attempts with durations, failures, the root cause."""
    lines = [f"erun report: {record.name}", *_facts(record), f"{INDENT}attempts:"]
    lines += [INDENT * 2 + _attempt_line(record, a) for a in record.attempts] or [INDENT * 2 + "none yet"]
    if len(record.segments) > 1:  # a rerun or a requeued job continued the record
        lines.append(f"{INDENT}segments:")
        lines += [INDENT * 2 + segment_line(s) for s in record.segments]
    if record.failures:
        lines.append(f"{INDENT}failures:")
        lines += [INDENT * 2 + _failure_line(record, f) for f in record.failures]
    lines += _cause_lines(record.root_cause)
    if record.damaged_lines:
        skipped = plural(record.damaged_lines, "unreadable line")
        lines.append(f"{INDENT}note: {skipped} in events.jsonl skipped")
    return "\n".join(lines)


def _facts(record: RunRecord) -> list[str]:
    state = record.state.value
    if record.exit_code is not None:
        state += f" (exit {record.exit_code}{', ' + record.signal if record.signal else ''})"
    gone = agent_gone(record)
    if gone:
        assert record.agent is not None
        state += (f", but its agent (pid {record.agent.get('pid')}) is gone: killed (or its node lost) "
                  "before it recorded the job's end")
    elif gone is None and not record.finished:
        state += ", still running (or its agent died: see erun status)"
    elif not record.finished:
        state += ", still running"
    facts = [("run dir:", str(record.run_dir)), ("state:", state),
             ("elapsed:", f"{duration(record.elapsed)}, {plural(len(record.attempts), 'attempt')}, "
                          f"{plural(record.restarts, 'restart')}")]
    if record.entrypoint:
        facts.append(("runs:", record.entrypoint))
    if record.overrides:
        facts.append(("overrides:", " ".join(record.overrides)))
    facts += cluster_facts(record)
    return [fact(label, value) for label, value in facts]


def _attempt_line(record: RunRecord, attempt: AttemptRecord) -> str:
    started = clock(attempt.start) if attempt.start else "-"
    ranks = ", ".join(f"{s.rank}: {s.describe()}" for s in attempt.ranks)
    return (f"attempt {attempt.attempt}  {attempt.state:<9}  started {started}  "
            f"{duration(attempt.duration(record.now)):>9}  ranks {ranks or '-'}")


def segment_line(segment: SegmentRecord) -> str:
    """`segment 1  started 12:00:01  FAILED (exit 1), attempts 0-1`."""
    return f"segment {segment.number}  started {clock(segment.start)}  {segment.describe()}"


def _failure_line(record: RunRecord, failure: FailureRecord) -> str:
    offset = f" (+{duration(failure.time - record.start)})" if record.start else ""
    return (f"attempt {failure.attempt} rank {failure.rank} at {clock(failure.time)}{offset}: "
            f"{failure.describe()}")


def _cause_lines(cause: FailureRecord | None) -> list[str]:
    """The root cause's facts (runner.record.cause), laid out as the report's text."""
    if cause is None:
        return []
    facts = cause_facts(cause)
    lines = [fact("root cause:", f"rank {facts.rank}, attempt {facts.attempt}: {facts.what}")]
    if facts.message:
        lines.append(fact("message:", facts.message))
    if facts.stderr_tail:
        lines.append(f"{INDENT}last {plural(len(facts.stderr_tail), 'line')} of its stderr:")
        lines += [INDENT * 3 + line for line in facts.stderr_tail]
    if facts.stderr_log:
        lines.append(fact("stderr:", facts.stderr_log))
    return lines


def sweep_text(record: SweepRecord) -> str:
    """One line per point: its state, attempts, elapsed time, overrides and root cause."""
    lines = [f"erun report: sweep {record.sweep_dir} ({plural(len(record.points), 'point')})"]
    for point in record.points:
        run, overrides = point.run, " ".join(point.overrides) or "(no overrides)"
        if run is None:
            lines.append(f"{INDENT}{point.name:>3}  {'-':<11}  {'not started':<22}  {overrides}")
            continue
        how = f"{plural(len(run.attempts), 'attempt')}, {duration(run.elapsed)}"
        line = f"{INDENT}{point.name:>3}  {run.state.value:<11}  {how:<22}  {overrides}"
        if run.root_cause is not None:
            line += f"  [root cause: rank {run.root_cause.rank}, {run.root_cause.describe()}]"
        lines.append(line)
    if not record.points:
        lines.append(f"{INDENT}no points yet")
    return "\n".join(lines)

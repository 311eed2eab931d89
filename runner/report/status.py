"""`erun status RUN_DIR`: where a run started elsewhere stands now.

Reads the run record (runner.record.read) and asks the OS (psutil) about each rank's pid: the
current attempt, each rank's state, pid and whether that process is alive, the last events, and
the time elapsed, and each rank's last output line with its age. A record that says RUNNING
while its agent's pid (or every rank) is gone means the agent died without writing its end
(SIGKILL, a lost node): status says so. With no RUN_DIR, the newest run (runner.report.runs).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass

from runner.record import read as runlog
from runner.record.alive import pid_alive
from runner.record.model import Outcome, RankSpan, RunRecord, SweepRecord
from runner.report import sweep_status
from runner.report.cluster import cluster_facts, rank_host, rank_run_dir
from runner.report.liveness import agent_gone
from runner.report.runs import newest_run_dir
from runner.report.text import INDENT, ArgParser, describe_event, fact
from runner.words import clock, date_clock, describe_exit, duration, plural

LAST_EVENTS = 10
LAST_LINE_WIDTH = 100


@dataclass(frozen=True)
class RankStatus:
    """One rank of the current attempt, as recorded and as the OS sees it now."""

    span: RankSpan
    alive: bool | None  # None: the rank has ended (nothing to ask the OS)
    last_output: tuple[str, float] | None = None  # its last output line, and when it was written

    @property
    def alive_text(self) -> str:
        return "-" if self.alive is None else ("yes" if self.alive else "NO")


def main(args: Sequence[str]) -> int:
    """The `status` subcommand."""
    parser = ArgParser(prog="erun status", description="Show the state of a run, started here or "
                       "elsewhere: current attempt, ranks (pid, alive?), last events, elapsed time.")
    parser.add_argument("run_dir", metavar="RUN_DIR", nargs="?",
                        help="the job's run directory, or a sweep directory: every point's state, result "
                        "and Slurm job (default: the newest run, see erun runs)")
    parser.add_argument("-n", "--events", type=int, default=LAST_EVENTS, metavar="N",
                        help=f"how many of the last events to show (default {LAST_EVENTS})")
    options = parser.parse_args(list(args))
    record = runlog.load(options.run_dir or newest_run_dir())
    if isinstance(record, SweepRecord):
        print(sweep_status.render(record), flush=True)
        return 0
    print(render(record, rank_statuses(record), options.events), flush=True)
    return 0


def rank_statuses(record: RunRecord) -> list[RankStatus]:
    """The ranks of the current attempt, with a liveness check for the unfinished ones."""
    attempt = record.current
    if attempt is None:
        return []
    here, number = socket.gethostname(), attempt.attempt
    return [RankStatus(s, pid_alive(s.pid, s.start) if s.outcome is Outcome.RUNNING
                       and rank_host(record, s.rank) in (None, here) else None,  # another node's: unknown
                       runlog.last_output(rank_run_dir(record, number, s.rank), number, s.rank))
            for s in attempt.ranks]


def render(record: RunRecord, ranks: Sequence[RankStatus], last: int = LAST_EVENTS) -> str:
    lines = [f"erun status: {record.name}", *_header(record, ranks), *_rank_table(record, ranks),
             *_last_output(record, ranks)]
    events = record.events[-last:] if last > 0 else []
    if events:
        lines.append(f"{INDENT}last {plural(len(events), 'event')}:")
        lines += [f"{INDENT * 2}{clock(e.time)}  {describe_event(e)}" for e in events]
    return "\n".join(lines)


def _header(record: RunRecord, ranks: Sequence[RankStatus]) -> list[str]:
    attempt = record.current
    state = record.state.value
    if record.exit_code is not None:
        state += f" (exit {record.exit_code})"
    if attempt is not None:
        state += f", attempt {attempt.attempt} ({plural(record.restarts, 'restart')}), group {attempt.state}"
    started = date_clock(record.start) if record.start else "-"
    lines = [fact("run dir:", record.run_dir), fact("state:", state),
             fact("started:", f"{started}, elapsed {duration(record.elapsed)}"),
             *(fact(label, value) for label, value in cluster_facts(record))]
    if len(record.segments) > 1:  # a rerun or a requeued job continued the record
        lines += [fact("segment:", f"{s.number}, started {clock(s.start)}: {s.describe()}")
                  for s in record.segments]
    warning = _agent_warning(record, ranks)
    return lines + ([fact("warning:", warning)] if warning else [])


def _agent_warning(record: RunRecord, ranks: Sequence[RankStatus]) -> str:
    """A RUNNING record whose agent is gone, or with no live rank: backing off, or gone."""
    if record.finished:
        return ""
    gone = agent_gone(record)  # None: unknown (an older record, or another host's agent)
    if gone:
        assert record.agent is not None
        return (f"the record says RUNNING but its agent (pid {record.agent.get('pid')}) is gone: it was "
                "killed (or its node lost) without recording the job's end")
    running = [r for r in ranks if r.alive is not None]
    if running and not any(r.alive for r in running):
        if gone is False:
            return "none of its ranks is alive: the agent is noting their ends"
        return ("the record says RUNNING but none of its ranks is alive: the agent probably died "
                "(killed, or its node lost) without recording the job's end")
    if not running:
        died = "" if gone is False else ", or it died without recording the job's end"
        return f"no rank is running: the agent is between attempts{died}"
    dead = [str(r.span.rank) for r in running if not r.alive]
    return f"rank(s) {', '.join(dead)} recorded as running but not alive" if dead else ""


def _rank_table(record: RunRecord, ranks: Sequence[RankStatus]) -> list[str]:
    attempt = record.current
    if attempt is None or not ranks:
        return [f"{INDENT}ranks:      none started yet"]
    lines = [f"{INDENT}ranks (attempt {attempt.attempt}):",
             f"{INDENT * 2}{'rank':>4}  {'state':<10} {'pid':>8}  {'alive':<5}  {'for':>9}  exit"]
    for status in ranks:
        span = status.span
        end = span.end if span.end is not None else record.now
        took = duration(end - span.start) if span.start else "-"
        ended = "" if span.outcome is Outcome.RUNNING else describe_exit(span.exit_code, span.signal)
        lines.append(f"{INDENT * 2}{span.rank:>4}  {span.state:<10} {span.pid or '-':>8}  "
                     f"{status.alive_text:<5}  {took:>9}  {ended}".rstrip())
    return lines


def _last_output(record: RunRecord, ranks: Sequence[RankStatus]) -> list[str]:
    """Each rank's last output line and how long ago it was written (progress at a glance)."""
    shown = [r for r in ranks if r.last_output is not None]
    if not shown:
        return []
    lines = [f"{INDENT}last output:"]
    for status in shown:
        assert status.last_output is not None
        line, written = status.last_output
        if len(line) > LAST_LINE_WIDTH:
            line = line[:LAST_LINE_WIDTH - 3] + "..."
        ago = duration(max(0.0, record.read_at - written))
        lines.append(f"{INDENT * 2}{status.span.rank:>4}  {ago + ' ago':>13}  {line}")
    return lines

"""The report page: one self-contained HTML document (no scripts, no external assets) with a run's
or a sweep's facts, root cause, timeline (runner.report.chart), attempts, failures and events.

All text from the record is escaped: a worker's stderr ends up in the page.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from runner.errors import ConfigError
from runner.paths import RunPaths
from runner.record.cause import cause_facts
from runner.record.model import AttemptRecord, Event, FailureRecord, Outcome, RankSpan, RunRecord, SweepRecord
from runner.record.read import read_job_config
from runner.record.writer import write_file
from runner.report.chart import COLOURS, esc, render_svg, run_chart, sweep_chart
from runner.report.text import describe_event
from runner.state import JobState
from runner.words import clock, date_clock, duration, plural

JOB_STATE_OUTCOME: Mapping[JobState, Outcome] = {
    JobState.SUCCEEDED: Outcome.SUCCEEDED,
    JobState.FAILED: Outcome.FAILED,
    JobState.INTERRUPTED: Outcome.STOPPED,
    JobState.RUNNING: Outcome.RUNNING,
}
# A YAML line whose key looks like a secret's; its value is not shown on the page.
SECRET_LINE = re.compile(r"^(\s*[\w.-]*(?:key|token|secret|passw|credential|auth)[\w.-]*)[ \t]*:[ \t]*\S.*$",
                         re.I | re.M)
REDACTED = "<redacted>"
# The page shows this many of the last events (the file has them all).
EVENTS_SHOWN = 200

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px;
       color: #1f2328; max-width: 1000px; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border-bottom: 1px solid #d0d7de; padding: 4px 10px; text-align: left; vertical-align: top; }
dl { display: grid; grid-template-columns: max-content auto; gap: 4px 16px; font-size: 14px; }
dt { color: #57606a; } dd { margin: 0; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; font-size: 12px; }
.state { font-weight: bold; color: white; padding: 1px 8px; border-radius: 10px; }
.cause { border-left: 4px solid #cf222e; padding: 4px 12px; background: #fff5f5; }
"""


def html_document(title: str, body: Sequence[str]) -> str:
    """A complete HTML document around `body` (already escaped)."""
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8"/>',
        f"<title>{esc(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
        *body, "</body>", "</html>", "",
    ])


def run_page(record: RunRecord, page_dir: Path | None = None,
             extra: Sequence[tuple[str, str]] = ()) -> str:
    """The report page of one run: summary (and `extra` facts, as (label, text)), root cause,
    timeline, attempts (with links to each rank's logs, relative to `page_dir`, default the run
    directory), failures, events, job config."""
    links = LogLinks(RunPaths.of(record.run_dir, record.plan), page_dir or record.run_dir)
    body = [
        f"<h1>erun report: {esc(record.name)}</h1>",
        _run_facts(record, extra),
        *_cause_section(record.root_cause),
        "<h2>Timeline</h2>",
        render_svg(run_chart(record)),
        *_attempts_section(record, links),
        *_segments_section(record),
        *_failures_section(record),
        *_events_section(record.events),
        *_job_config_section(record.run_dir),
    ]
    return html_document(f"erun report: {record.name}", body)


@dataclass(frozen=True)
class LogLinks:
    """Links from the page to a rank's log files, relative (the folder can move as a whole)."""

    paths: RunPaths  # the run's, laid out as its plan says
    page_dir: Path

    def html(self, attempt: int, rank: int) -> str:
        paths = self.paths
        links = []
        for name, path in (("stdout", paths.stdout(attempt, rank)), ("stderr", paths.stderr(attempt, rank))):
            if path.is_file():
                href = os.path.relpath(path.resolve(), self.page_dir.resolve())
                links.append(f'<a href="{esc(quote(href))}">{name}</a>')
        return f" ({', '.join(links)})" if links else ""


def _job_config_section(run_dir: Path) -> list[str]:
    text = read_job_config(run_dir)
    if text is None:
        return []
    return ["<details><summary>Job config (job.yaml, secrets redacted)</summary>",
            f"<pre>{esc(redact(text))}</pre>", "</details>"]


def redact(yaml_text: str) -> str:
    """The config with the values of secret-looking keys (env.WANDB_API_KEY, password...) hidden:
    the page is made to be mailed or attached to an issue."""
    return SECRET_LINE.sub(lambda m: f"{m[1]}: {REDACTED}", yaml_text)


def sweep_page(record: SweepRecord) -> str:
    """The report page of a sweep: one row per point, then each point's own timeline."""
    body = [
        f"<h1>erun report: sweep {esc(record.sweep_dir.name)}</h1>",
        _dl([("sweep dir", esc(record.sweep_dir)), ("points", str(len(record.points)))]),
        "<h2>Points</h2>",
        render_svg(sweep_chart(record)),
        _points_table(record),
    ]
    for point in record.points:
        if point.run is not None and point.run.attempts:
            body += [f"<h2>Point {esc(point.name)}: {esc(' '.join(point.overrides))}</h2>",
                     render_svg(run_chart(point.run))]
    return html_document(f"erun report: sweep {record.sweep_dir.name}", body)


def write_page(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file(path, text)  # never through a link planted at `path`
    except OSError as e:
        raise ConfigError(None, f"cannot write {path}: {e.strerror}", "choose another --html PATH") from None


def _state_badge(state: JobState) -> str:
    colour = COLOURS[JOB_STATE_OUTCOME[state]]
    return f'<span class="state" style="background:{colour}">{esc(state.value)}</span>'


def _dl(items: Sequence[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _run_facts(record: RunRecord, extra: Sequence[tuple[str, str]] = ()) -> str:
    state = _state_badge(record.state)
    if record.exit_code is not None:
        state += f" exit {esc(record.exit_code)}"
    if record.signal:
        state += f" ({esc(record.signal)})"
    items = [("state", state), ("run dir", esc(record.run_dir)),
             ("attempts", f"{len(record.attempts)} ({plural(record.restarts, 'restart')})"),
             ("started", esc(date_clock(record.start)) if record.start else "-"),
             ("elapsed", esc(duration(record.elapsed)) + ("" if record.finished else " (still running)"))]
    if record.entrypoint:
        items.append(("runs", f"<code>{esc(record.entrypoint)}</code>"))
    if record.overrides:
        items.append(("overrides", f"<code>{esc(' '.join(record.overrides))}</code>"))
    items += [(label.rstrip(":"), esc(value)) for label, value in extra]
    return _dl(items)


def _cause_section(cause: FailureRecord | None) -> list[str]:
    """The root cause's facts (runner.record.cause), laid out as a box on the page."""
    if cause is None:
        return []
    facts = cause_facts(cause)
    parts = ['<div class="cause">', "<h2>Root cause</h2>",
             f"<p>rank {facts.rank}, attempt {facts.attempt}, at {esc(clock(cause.time))}: "
             f"{esc(facts.what)}</p>"]
    if facts.traceback:
        parts.append(f"<pre>{esc(facts.traceback)}</pre>")
    if facts.stderr_tail:
        parts.append(f"<p>last {esc(plural(len(facts.stderr_tail), 'line'))} of its stderr:</p>")
        parts.append(f"<pre>{esc(chr(10).join(facts.stderr_tail))}</pre>")
    if facts.stderr_log:
        parts.append(f"<p>stderr: <code>{esc(facts.stderr_log)}</code></p>")
    parts.append("</div>")
    return parts


def _attempts_section(record: RunRecord, links: LogLinks) -> list[str]:
    rows = [_attempt_row(record, a, links) for a in record.attempts]
    return ["<h2>Attempts</h2>", "<table><tr><th>attempt</th><th>state</th><th>started</th>"
            "<th>duration</th><th>port</th><th>ranks</th></tr>", *rows, "</table>"]


def _attempt_row(record: RunRecord, attempt: AttemptRecord, links: LogLinks) -> str:
    ranks = "<br/>".join(esc(f"rank {s.rank}: {_span_text(s)}") + links.html(attempt.attempt, s.rank)
                         for s in attempt.ranks)
    started = clock(attempt.start) if attempt.start else "-"
    return (f"<tr><td>{attempt.attempt}</td><td>{esc(attempt.state)}</td><td>{esc(started)}</td>"
            f"<td>{esc(duration(attempt.duration(record.now)))}</td>"
            f"<td>{esc(attempt.master_port or '-')}</td>"
            f"<td>{ranks}</td></tr>")


def _span_text(span: RankSpan) -> str:
    return f"{span.describe()}, pid {span.pid}" if span.pid else span.describe()


def _segments_section(record: RunRecord) -> list[str]:
    """The agents that ran in the directory one after the other (a rerun, a requeued job)."""
    if len(record.segments) < 2:
        return []
    rows = [f"<tr><td>{s.number}</td><td>{esc(clock(s.start))}</td><td>{esc(s.describe())}</td></tr>"
            for s in record.segments]
    return ["<h2>Segments</h2>", "<table><tr><th>segment</th><th>started</th><th>how it ended</th></tr>",
            *rows, "</table>"]


def _failures_section(record: RunRecord) -> list[str]:
    if not record.failures:
        return []
    rows = [f"<tr><td>{esc(clock(f.time))}</td><td>{f.attempt}</td><td>{f.rank}</td><td>{esc(f.reason)}</td>"
            f"<td>{esc(f.describe())}</td></tr>" for f in record.failures]
    return ["<h2>Failures</h2>", "<table><tr><th>time</th><th>attempt</th><th>rank</th><th>reason</th>"
            "<th>what happened</th></tr>", *rows, "</table>"]


def _events_section(events: Sequence[Event]) -> list[str]:
    shown = events[-EVENTS_SHOWN:]
    lines = "\n".join(f"{clock(e.time)}  {describe_event(e)}" for e in shown)
    more = f" (the last {len(shown)} of {len(events)})" if len(shown) < len(events) else ""
    return [f"<details><summary>Events{esc(more)}</summary>", f"<pre>{esc(lines)}</pre>", "</details>"]


def _points_table(record: SweepRecord) -> str:
    rows = []
    for point in record.points:
        run = point.run
        state = _state_badge(run.state) if run else "not started"
        attempts = str(len(run.attempts)) if run else "-"
        took = duration(run.elapsed) if run else "-"
        cause = run.root_cause if run else None
        why = esc(f"rank {cause.rank}: {cause.describe()}") if cause else ""
        rows.append(f"<tr><td>{esc(point.name)}</td><td><code>{esc(' '.join(point.overrides))}</code></td>"
                    f"<td>{state}</td><td>{attempts}</td><td>{esc(took)}</td><td>{why}</td></tr>")
    return ("<table><tr><th>point</th><th>overrides</th><th>state</th><th>attempts</th><th>elapsed</th>"
            "<th>root cause</th></tr>" + "".join(rows) + "</table>")

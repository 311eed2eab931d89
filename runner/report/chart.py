"""The run timeline as a chart: its model (rows of bars, markers, one time axis) and the inline SVG
that draws it (no scripts, no external assets); runner.report.page puts it in a page.

A run's chart has one row per rank and one bar per attempt, coloured by how the rank ended;
a sweep's chart has one row per point and one bar per attempt. Restarts, watchdog verdicts,
SIGKILLs after the grace and signals are vertical markers; every bar and marker carries a
<title> (the browser's tooltip). Bars are `rect` elements with `data-outcome` (and data-rank,
data-attempt, data-point), so tests and scripts can read the chart back as XML.
All text from the record is escaped (`esc`): a worker's stderr may end up in the chart.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from runner.record.model import AttemptRecord, Outcome, PointRecord, RunRecord, SweepRecord
from runner.report.markers import MarkerKind, run_markers
from runner.words import clock, duration

SVG_NS = "http://www.w3.org/2000/svg"
COLOURS: Mapping[Outcome, str] = {
    Outcome.SUCCEEDED: "#2da44e",
    Outcome.FAILED: "#cf222e",
    Outcome.STOPPED: "#8c959f",
    Outcome.RUNNING: "#0969da",
}
MARKER_COLOURS: Mapping[MarkerKind, str] = {
    MarkerKind.RESTART: "#bf8700",
    MarkerKind.GIVE_UP: "#cf222e",
    MarkerKind.WATCHDOG: "#8250df",
    MarkerKind.KILL: "#57606a",
    MarkerKind.SIGNAL: "#1f2328",
}
# XML 1.0 forbids most control characters; a worker may print them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def esc(text: object) -> str:
    """Text or attribute value, safe in HTML and in XML (the SVG must parse as XML)."""
    return html.escape(_NOT_XML.sub("\ufffd", str(text)), quote=True)


# -- the chart model -------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    """A span of time in one row, coloured by its outcome."""

    start: float
    end: float
    outcome: Outcome
    title: str
    data: Mapping[str, str] = field(default_factory=dict)
    label: str = ""  # written inside the bar when it fits


@dataclass(frozen=True)
class Row:
    """One row of the chart: a label and its bars."""

    label: str
    bars: list[Bar]
    title: str = ""


@dataclass(frozen=True)
class ChartMarker:
    """A vertical line over rows `first`..`last` (all rows when None), with a dot on `dot_row`."""

    time: float
    kind: MarkerKind
    title: str
    first: int | None = None
    last: int | None = None
    dot_row: int | None = None


@dataclass(frozen=True)
class Chart:
    """What the SVG draws: rows of bars on one time axis from `t0` to `t1`."""

    title: str
    rows: list[Row]
    markers: list[ChartMarker]
    t0: float
    t1: float


@dataclass(frozen=True)
class Geometry:
    """Sizes in SVG user units (pixels)."""

    width: int = 960
    label_w: int = 170
    right: int = 20
    top: int = 30
    row_h: int = 26
    bar_h: int = 16
    legend_h: int = 44

    @property
    def plot_w(self) -> int:
        return self.width - self.label_w - self.right

    def height(self, rows: int) -> int:
        return self.top + rows * self.row_h + self.legend_h

    def row_y(self, row: int) -> int:
        return self.top + row * self.row_h


GEOMETRY = Geometry()


def run_chart(record: RunRecord) -> Chart:
    """One row per rank, one bar per attempt the rank ran in."""
    ranks = record.ranks
    rows = [Row(f"rank {rank}", [b for b in (_rank_bar(record, a, rank) for a in record.attempts) if b])
            for rank in ranks]
    index = {rank: i for i, rank in enumerate(ranks)}
    markers = [ChartMarker(m.time, m.kind, m.label, dot_row=index.get(m.rank) if m.rank is not None else None)
               for m in run_markers(record)]
    return Chart(f"{record.name}: {record.state.value}", rows, markers, *_span(record.start, record.now))


def _rank_bar(record: RunRecord, attempt: AttemptRecord, rank: int) -> Bar | None:
    span = next((s for s in attempt.ranks if s.rank == rank), None)
    if span is None:
        return None
    start = span.start if span.start is not None else attempt.start
    if start is None:
        return None
    end = span.end if span.end is not None else _open_end(record, attempt)
    title = (f"rank {rank}, attempt {attempt.attempt}: {span.describe()}, pid {span.pid or '-'}, "
             f"{clock(start)} for {duration(end - start)}")
    return Bar(start, end, span.outcome, title, {"rank": str(rank), "attempt": str(attempt.attempt)},
               f"attempt {attempt.attempt}")


def _open_end(record: RunRecord, attempt: AttemptRecord) -> float:
    """A span without an end: it runs until now, or ended with its attempt (or the job)."""
    if attempt.end is not None:
        return attempt.end
    return record.now


def sweep_chart(record: SweepRecord) -> Chart:
    """One row per point, one bar per attempt."""
    rows: list[Row] = []
    markers: list[ChartMarker] = []
    for i, point in enumerate(record.points):
        rows.append(_point_row(point))
        markers += [ChartMarker(m.time, m.kind, f"point {point.name}: {m.label}", i, i)
                    for m in (run_markers(point.run) if point.run else [])]
    runs = record.runs
    starts = [r.start for r in runs if r.start is not None]
    t0 = min(starts, default=record.read_at)
    t1 = max((r.now for r in runs), default=record.read_at)
    return Chart(f"sweep {record.sweep_dir.name}", rows, markers, *_span(t0, t1))


def _point_row(point: PointRecord) -> Row:
    overrides = " ".join(point.overrides)
    label = f"{point.name}: {overrides}" if overrides else point.name
    run = point.run
    if run is None:
        return Row(label, [], f"point {point.name}: not started")
    bars = [_attempt_bar(point, run, a) for a in run.attempts if a.start is not None]
    return Row(label, bars, f"point {point.name}: {run.state.value}; {overrides or 'no overrides'}")


def _attempt_bar(point: PointRecord, run: RunRecord, attempt: AttemptRecord) -> Bar:
    assert attempt.start is not None
    end = attempt.end if attempt.end is not None else run.now
    title = (f"point {point.name}, attempt {attempt.attempt}: {attempt.state}, {clock(attempt.start)} "
             f"for {duration(end - attempt.start)}; {' '.join(point.overrides) or 'no overrides'}")
    data = {"point": point.name, "attempt": str(attempt.attempt)}
    return Bar(attempt.start, end, attempt.outcome, title, data, f"attempt {attempt.attempt}")


def _span(start: float | None, end: float) -> tuple[float, float]:
    t0 = end if start is None else start
    return t0, max(end, t0 + 1e-3)


# -- the SVG ---------------------------------------------------------------------------------


def render_svg(chart: Chart, geometry: Geometry = GEOMETRY) -> str:
    """The chart as one <svg> element (valid XML)."""
    g = geometry
    height = g.height(len(chart.rows))
    parts = [
        f'<svg xmlns="{SVG_NS}" class="timeline" width="{g.width}" height="{height}" '
        f'viewBox="0 0 {g.width} {height}" font-family="sans-serif" font-size="12">',
        f"<title>{esc(chart.title)}</title>",
        *_axis(chart, g, height),
        *_rows(chart, g),
        *(_marker(chart, m, g) for m in chart.markers),
        *_legend(chart, g, height),
        "</svg>",
    ]
    return "\n".join(parts)


def _x(chart: Chart, t: float, g: Geometry) -> float:
    return g.label_w + (t - chart.t0) / (chart.t1 - chart.t0) * g.plot_w


def _axis(chart: Chart, g: Geometry, height: int) -> list[str]:
    bottom = height - g.legend_h
    parts = [f'<rect x="{g.label_w}" y="{g.top}" width="{g.plot_w}" height="{bottom - g.top}" '
             f'fill="#f6f8fa" stroke="#d0d7de"/>']
    step = tick_step(chart.t1 - chart.t0)
    for i in range(int((chart.t1 - chart.t0) / step) + 1):
        x = _x(chart, chart.t0 + i * step, g)
        parts.append(f'<line x1="{x:.1f}" y1="{g.top}" x2="{x:.1f}" y2="{bottom}" stroke="#d0d7de"/>')
        parts.append(f'<text x="{x:.1f}" y="{g.top - 8}" text-anchor="middle" fill="#57606a">'
                     f"{esc(tick_label(i * step))}</text>")
    return parts


TICK_STEPS_S = (*(m * 10.0**e for e in range(-3, 1) for m in (1, 2, 5)), 10.0, 15.0, 30.0, 60.0, 120.0,
                300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0, 21600.0, 43200.0, 86400.0)


def tick_step(span_s: float, most: int = 8) -> float:
    """The smallest round step giving at most `most` ticks over `span_s` seconds."""
    return next((s for s in TICK_STEPS_S if span_s / s <= most), span_s / most)


def tick_label(offset_s: float) -> str:
    """Seconds under a minute, then minutes, then hours (`:g` hides float noise like 0.30000001)."""
    if offset_s < 60:
        return f"{offset_s:.3g} s" if offset_s else "0"
    if offset_s < 7200:
        return f"{offset_s / 60:.3g} min"
    return f"{offset_s / 3600:.3g} h"


def _rows(chart: Chart, g: Geometry) -> list[str]:
    parts: list[str] = []
    for i, row in enumerate(chart.rows):
        y = g.row_y(i)
        if i % 2:
            parts.append(f'<rect x="{g.label_w}" y="{y}" width="{g.plot_w}" height="{g.row_h}" '
                         f'fill="#eaeef2"/>')
        label = _clip(row.label, (g.label_w - 12) // 7)  # about 7 units a character
        parts.append(f'<text x="{g.label_w - 8}" y="{y + g.row_h / 2 + 4:.1f}" text-anchor="end">'
                     f"<title>{esc(row.title or row.label)}</title>{esc(label)}</text>")
        parts += [_bar(chart, bar, y, g) for bar in row.bars]
    return parts


def _bar(chart: Chart, bar: Bar, row_y: int, g: Geometry) -> str:
    x0 = _x(chart, bar.start, g)
    width = max(2.0, _x(chart, bar.end, g) - x0)  # a short bar stays visible
    y = row_y + (g.row_h - g.bar_h) / 2
    data = "".join(f' data-{k}="{esc(v)}"' for k, v in bar.data.items())
    rect = (f'<rect class="bar" x="{x0:.1f}" y="{y:.1f}" width="{width:.1f}" height="{g.bar_h}" rx="3" '
            f'fill="{COLOURS[bar.outcome]}" data-outcome="{bar.outcome.value}"{data}>'
            f"<title>{esc(bar.title)}</title></rect>")
    if not bar.label or width < 8 * len(bar.label):
        return rect
    return (rect + f'<text x="{x0 + 5:.1f}" y="{y + g.bar_h - 4:.1f}" fill="white" font-size="10" '
            f'pointer-events="none">{esc(bar.label)}</text>')


def _marker(chart: Chart, marker: ChartMarker, g: Geometry) -> str:
    x = _x(chart, marker.time, g)
    rows = len(chart.rows)
    first = 0 if marker.first is None else marker.first
    last = rows - 1 if marker.last is None else marker.last
    y1, y2 = g.row_y(first), g.row_y(last + 1) if rows else g.top
    colour = MARKER_COLOURS[marker.kind]
    dot = ""
    if marker.dot_row is not None:
        dot = f'<circle cx="{x:.1f}" cy="{g.row_y(marker.dot_row) + g.row_h / 2:.1f}" r="5" fill="{colour}"/>'
    # The wide transparent line is what the pointer finds; the thin dashed one is what shows.
    return (f'<g class="marker" data-kind="{marker.kind.value}"><title>{esc(clock(marker.time))}: '
            f'{esc(marker.title)}</title>'
            f'<line x1="{x:.1f}" y1="{y1 - 4}" x2="{x:.1f}" y2="{y2 + 4}" stroke="{colour}" stroke-width="2" '
            f'stroke-dasharray="4 3"/>'
            f'<line x1="{x:.1f}" y1="{y1 - 4}" x2="{x:.1f}" y2="{y2 + 4}" stroke="transparent" '
            f'stroke-width="9"/>{dot}</g>')


def _legend(chart: Chart, g: Geometry, height: int) -> list[str]:
    items = [(COLOURS[o], o.value, "rect") for o in Outcome]
    kinds = sorted({m.kind for m in chart.markers}, key=list(MarkerKind).index)
    items += [(MARKER_COLOURS[k], k.value.replace("_", " "), "line") for k in kinds]
    y = height - g.legend_h + 22
    parts: list[str] = []
    x = float(g.label_w)
    for colour, label, shape in items:
        if shape == "rect":
            parts.append(f'<rect class="legend" x="{x:.0f}" y="{y - 10}" width="14" height="10" rx="2" '
                         f'fill="{colour}"/>')
        else:
            parts.append(f'<line class="legend" x1="{x + 7:.0f}" y1="{y - 13}" x2="{x + 7:.0f}" y2="{y + 2}" '
                         f'stroke="{colour}" stroke-width="2" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{x + 18:.0f}" y="{y}">{esc(label)}</text>')
        x += 30 + 7 * len(label)
    return parts


def _clip(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"

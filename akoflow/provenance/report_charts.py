"""Time charts of the report, as inline SVG: the attempt timeline (Gantt) and resource use.

Both are drawn server-side from the manifest's numbers so the page needs no script and no
charting library. Times on every axis are seconds since the workflow started (`ReportData.t0`),
which is what a reader compares ("the join waited 40 s for the slow branch").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

from akoflow import query
from akoflow.provenance.report_base import (
    SERIES_COLOURS,
    attrs,
    esc,
    fmt_bytes,
    fmt_duration,
    fmt_tick,
    legend,
    nice_ticks,
    plural,
    state_class,
    truncate,
)
from akoflow.provenance.report_data import Bar, ReportData, Stats

PLOT_W = 900  # pixels of the time axis in the Gantt and the overview chart
LABEL_W = 180
COMPACT_ROWS = 300  # above this many rows the Gantt drops its labels and thins its rows
COMPACT_HEIGHT = 720.0  # pixels a compact Gantt aims for, so the whole run shows at once
TOP_ACTIVITIES = 20  # small multiples shown
BINS = 150  # time buckets of the whole-workflow resource chart
_LIVE = {"SUBMITTING", "QUEUED", "RUNNING"}


def _axis(x0: float, span: float, scale: float, y_top: int, y_bottom: int) -> str:
    """Vertical grid lines with time labels above them."""
    out = []
    for t in nice_ticks(span):
        x = x0 + t * scale
        out.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{y_top}" '
                   f'y2="{y_bottom}"/><text class="axis" x="{x:.1f}" y="{y_top - 4}" '
                   f'text-anchor="middle">{fmt_tick(t)}</text>')
    return "".join(out)


def render_timeline(d: ReportData) -> str:
    """One row per activity that was ever submitted, one bar per attempt."""
    t0, span = d.t0, max(d.t1 - d.t0, 1e-3)
    by_act: dict[str, list[Bar]] = defaultdict(list)
    for b in d.bars:
        by_act[b.activity].append(b)
    seq = {n: i for i, n in enumerate(d.order)}
    rows = sorted(by_act, key=lambda n: (min(b.submitted for b in by_act[n]), seq.get(n, 0)))
    compact = len(rows) > COMPACT_ROWS
    # Compact: rows of 1-5 px, so the picture shows the run's shape (parallelism over time).
    row_h, bar_h = ((max(1.0, min(5.0, COMPACT_HEIGHT / len(rows))),) * 2 if compact
                    else (18.0, 12.0))
    label_w = 0 if compact else LABEL_W
    scale = PLOT_W / span
    top = 22
    height = int(top + len(rows) * row_h + 8)
    width = label_w + PLOT_W + 20
    parts = [_axis(label_w, span, scale, top, height - 4)]
    for i, name in enumerate(rows):
        y = top + i * row_h
        if not compact:
            parts.append(f'<text class="label" x="{label_w - 6}" y="{y + 12:.0f}" '
                         f'text-anchor="end">{esc(truncate(name, 26))}<title>{esc(name)}'
                         '</title></text>')
        for b in sorted(by_act[name], key=lambda b: b.number):
            parts.append(_bar(b, d.now, t0, scale, label_w, y + (row_h - bar_h) / 2, bar_h))
    never = len(d.order) - len(rows)
    note = (f"{plural(len(d.bars), 'attempt')} of {plural(len(rows), 'activity')} over "
            f"{fmt_duration(span)}."
            + (f" {plural(never, 'activity')} never started (skipped, cancelled or pending)."
               if never else "")
            + (" Compact view: hover a bar for its activity." if compact else ""))
    svg = (f'<svg class="gantt" xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}"{attrs(data_rows=len(rows))}>'
           f'{"".join(parts)}</svg>')
    outcomes = sorted({b.status for b in d.bars})
    return (f'<p class="note"{attrs(data_attempts=len(d.bars))}>{esc(note)} Light segments: '
            f'waiting in a queue.</p>{legend(outcomes)}<div class="scroll gantt-box">{svg}</div>')


def _bar(b: Bar, now: float, t0: float, scale: float, x0: float, y: float, h: float) -> str:
    start = b.started if b.started is not None else b.submitted
    end = b.finished if b.finished is not None else (now if b.status in _LIVE else start)
    out = ""
    if b.started is not None and b.started > b.submitted:
        qx, qw = x0 + (b.submitted - t0) * scale, (b.started - b.submitted) * scale
        out += (f'<rect class="queue" x="{qx:.1f}" y="{y:.1f}" width="{qw:.1f}" '
                f'height="{h:.2f}"/>')
    x, w = x0 + (start - t0) * scale, max((end - start) * scale, 1.5)
    why = f", {b.reason}" if b.reason else ""
    code = f", exit {b.exit_code}" if b.exit_code is not None else ""
    return out + (
        f'<rect class="bar {state_class(b.status)}" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" '
        f'height="{h:.2f}"{attrs(data_activity=b.activity, data_attempt=b.number)}'
        f'{attrs(data_outcome=b.status, data_start=round(start - t0, 3))}'
        f'{attrs(data_duration=round(end - start, 3))}><title>{esc(b.activity)} '
        f'#{b.number}: {esc(b.status)}{esc(why)}{code}, {fmt_duration(end - start)}'
        f'{esc(" on " + b.node) if b.node else ""}</title></rect>')


def _line(points: Sequence[tuple[float, float]], colour: str) -> str:
    if len(points) < 3:
        return "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill="{colour}"/>'
                       for x, y in points)
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return f'<polyline class="series" stroke="{colour}" points="{pts}"/>'


def _panel(title: str, series: list[list[tuple[float, float]]], x0: float, span: float,
           width: int, height: int, y_off: int, fmt: Callable[[float], str],
           peak: float | None = None, kind: str = "") -> str:
    """One chart: a frame, its peak label, and one line per series ((t, value) points).
    `peak` is the figure the tables show, when known: the label says it and the scale
    reaches it (the kernel's peak rss can be above every sample)."""
    drawn = max((v for s in series for _, v in s), default=0.0)
    shown = drawn if peak is None else peak
    top = max(drawn, shown) or 1.0
    out = [f'<rect class="frame" x="0" y="{y_off}" width="{width}" height="{height}"/>',
           f'<text class="axis peak"{attrs(data_kind=kind or None, data_peak=round(shown, 1))}'
           f' x="4" y="{y_off + 11}">{esc(title)} (peak {fmt(shown)})</text>']
    for i, s in enumerate(series):
        pts = [((t - x0) / span * (width - 8) + 4,
                y_off + height - 3 - v / top * (height - 18)) for t, v in s]
        out.append(_line(pts, SERIES_COLOURS[i % len(SERIES_COLOURS)]))
    return "".join(out)


def _percent(v: float) -> str:
    return f"{v:.1f}%"


def _overview(d: ReportData) -> str:
    """Whole-workflow cpu % and rss: per time bucket, each attempt's highest sample, summed."""
    t0, span = d.t0, max(d.t1 - d.t0, 1e-3)
    cpu: dict[int, dict[tuple[str, int], float]] = defaultdict(dict)
    rss: dict[int, dict[tuple[str, int], float]] = defaultdict(dict)
    for name, samples in [*d.series.items(), *d.exits.items()]:
        for s in samples:
            k, key = min(int((s.ts - t0) / span * BINS), BINS - 1), (name, s.attempt)
            cpu[k][key] = max(cpu[k].get(key, 0.0), s.cpu_percent)
            if s.source == "psutil":
                rss[k][key] = max(rss[k].get(key, 0.0), float(s.rss))
    if not cpu:
        return '<p class="note">No resource samples were recorded.</p>'
    step = span / BINS
    cpu_pts = [(t0 + (k + 0.5) * step, sum(cpu[k].values())) for k in sorted(cpu)]
    rss_pts = [(t0 + (k + 0.5) * step, sum(rss[k].values())) for k in sorted(rss)
               if rss[k]]
    w, h = PLOT_W, 90
    body = (_panel("all activities: cpu %", [cpu_pts], t0, span, w, h, 20, _percent)
            + _panel("all activities: rss", [rss_pts], t0, span, w, h, 20 + h + 8, fmt_bytes)
            + _axis(4, span, (w - 8) / span, 20, 20 + 2 * h + 8))
    return (f'<svg class="overview" xmlns="http://www.w3.org/2000/svg" width="{w}" '
            f'height="{2 * h + 30}" viewBox="0 0 {w} {2 * h + 30}">{body}</svg>')


def top_by_resources(stats: dict[str, Stats], sampled: set[str]) -> list[Stats]:
    """Up to TOP_ACTIVITIES sampled activities: the heaviest by peak memory and by peak cpu,
    ordered by peak memory (so one cpu-bound task is not hidden by twenty big readers)."""
    cand = [s for s in stats.values() if s.name in sampled]
    by_rss = sorted(cand, key=lambda s: -(s.peak_rss or 0))
    by_cpu = sorted(cand, key=lambda s: -(s.peak_cpu or 0.0))
    half = TOP_ACTIVITIES // 2
    chosen = {s.name for s in by_rss[:half]} | {s.name for s in by_cpu[:half]}
    for s in by_rss:
        if len(chosen) >= TOP_ACTIVITIES:
            break
        chosen.add(s.name)
    return [s for s in by_rss if s.name in chosen]


def _cpu_points(d: ReportData) -> dict[str, list[query.MetricRecord]]:
    """Every cpu reading per activity, in time order: the samples and each attempt's exit
    sample (its last stretch), so a task shorter than the interval still draws a line."""
    out: dict[str, list[query.MetricRecord]] = {}
    for name in {*d.series, *d.exits}:
        out[name] = sorted([*d.series.get(name, []), *d.exits.get(name, [])],
                           key=lambda r: r.ts)
    return out


def render_resources(d: ReportData) -> str:
    """The overview chart, then small multiples (cpu % above rss) for the top activities.
    Each panel's peak label is the figure of the tables below (same numbers, same
    rounding); the lines are the readings it comes from."""
    cpu_points = _cpu_points(d)
    top = top_by_resources(d.stats, {n for n, s in cpu_points.items() if len(s) > 1})
    cards = []
    for s in top:
        points = cpu_points[s.name]
        cpu_runs: dict[int, list[tuple[float, float]]] = defaultdict(list)
        rss_runs: dict[int, list[tuple[float, float]]] = defaultdict(list)
        for r in points:
            cpu_runs[r.attempt].append((r.ts, r.cpu_percent))
            if r.source == "psutil":
                rss_runs[r.attempt].append((r.ts, float(r.rss)))
        lo = min(r.ts for r in points)
        span = max(max(r.ts for r in points) - lo, 1e-3)
        runs = [cpu_runs[a] for a in sorted(cpu_runs)]
        samples = d.series.get(s.name, [])
        w, h = 300, 64
        rss_title = "rss" if s.rss_source != "kernel" else "rss; peak from the kernel"
        svg = (_panel("cpu %", runs, lo, span, w, h, 0, _percent, s.peak_cpu, "cpu")
               + _panel(rss_title, [rss_runs[a] for a in sorted(rss_runs)], lo, span, w, h,
                        h + 4, fmt_bytes, s.peak_rss, "rss"))
        cards.append(
            f'<figure class="mini"{attrs(data_activity=s.name, data_peak_rss=s.peak_rss)}'
            f'{attrs(data_peak_cpu=s.peak_cpu, data_samples=len(samples))}>'
            f'<figcaption title="{esc(s.name)}">{esc(truncate(s.name, 40))}'
            f'<span> {len(samples)} samples over {fmt_duration(span)}'
            f'{", " + plural(len(runs), "attempt") if len(runs) > 1 else ""}</span>'
            f'</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="{w}" '
            f'height="{2 * h + 4}" viewBox="0 0 {w} {2 * h + 4}">{svg}</svg></figure>')
    sampled = sum(1 for s in cpu_points.values() if s)
    lines = sum(1 for s in cpu_points.values() if len(s) > 1)
    note = (f"Above: the whole workflow (per time bucket, each attempt's highest sample, "
            f"summed). {plural(sampled, 'activity')} sampled, {lines} at least twice; "
            f"below, {len(top)} of those, the heaviest by peak memory and by peak cpu "
            "(cpu % is of one core; one line per attempt).")
    return (f'{_overview(d)}<p class="note"{attrs(data_shown=len(top))}>{esc(note)}</p>'
            f'<div class="minis">{"".join(cards)}</div>')

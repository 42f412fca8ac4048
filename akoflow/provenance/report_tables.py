"""The report's text sections: summary, slowest and most memory-hungry activities, failures
with their output tails, and the files table.

Key figures carry `id`s and `data-*` attributes with raw, unformatted values, so scripts and
tests can read numbers without parsing `1.2 GiB` back.
"""

from __future__ import annotations

from akoflow.provenance.report_base import (
    DASH,
    STATE_ORDER,
    attrs,
    esc,
    fmt_bytes,
    fmt_duration,
    fmt_num,
    fmt_time,
    plural,
    state_class,
    table,
)
from akoflow.provenance.report_data import MAX_FAILURES, MAX_FILES, Bar, ReportData, Stats

MAX_ATTEMPTS = 2000  # rows of the attempts table

TOP_ROWS = 20  # rows of the slowest / memory tables


def _item(label: str, ident: str, value: object, shown: str) -> str:
    return (f"<div><dt>{esc(label)}</dt><dd{attrs(id=ident, data_value=value)}>"
            f"{esc(shown)}</dd></div>")


def render_summary(d: ReportData) -> str:
    w = d.workflow
    end = w.finished_at if w.finished_at is not None else (d.now if w.started_at else None)
    elapsed = None if w.started_at is None or end is None else max(end - w.started_at, 0.0)
    items = [
        _item("workflow", "summary-name", w.name, w.name),
        _item("id", "summary-id", w.id, str(w.id)),
        _item("status", "summary-status", w.status, w.status),
        _item("site", "summary-site", w.site or w.runtime, w.site or w.runtime),
        _item("namespace", "summary-namespace", w.namespace, w.namespace),
        _item("owner", "summary-owner", w.owner or "", w.owner or DASH),
        _item("created", "summary-created", w.created_at, fmt_time(w.created_at)),
        _item("started", "summary-started", w.started_at or "", fmt_time(w.started_at)),
        _item("finished", "summary-finished", w.finished_at or "", fmt_time(w.finished_at)),
        _item("elapsed", "summary-elapsed", "" if elapsed is None else round(elapsed, 3),
              fmt_duration(elapsed) + ("" if w.finished_at is not None or elapsed is None
                                       else " (so far)")),
        _item("activities", "summary-activities", len(d.order), str(len(d.order))),
        _item("attempts", "summary-attempts", len(d.bars), str(len(d.bars))),
        _item("failed attempts", "summary-failures", d.failed_attempts, str(d.failed_attempts)),
        _item("of them recovered", "summary-recovered", _recovered(d), str(_recovered(d))),
        _item("files recorded", "summary-files", d.file_total, str(d.file_total)),
    ]
    states = [s for s in STATE_ORDER if d.counts.get(s)] + sorted(
        s for s in d.counts if s not in STATE_ORDER)
    chips = "".join(
        f'<li class="chip"{attrs(id=f"count-{s}", data_state=s, data_count=d.counts[s])}>'
        f'<span class="sw {state_class(s)}"></span>{esc(s.lower())} <b>{d.counts[s]}</b></li>'
        for s in states)
    message = f'<p class="message">{esc(w.message)}</p>' if w.message else ""
    return (f'<dl class="facts">{"".join(items)}</dl><ul class="counts">{chips}</ul>'
            f"{message}")


def _sorted(stats: dict[str, Stats], key: str) -> list[Stats]:
    if key == "wall":
        rows = [s for s in stats.values() if s.wall is not None]
        return sorted(rows, key=lambda s: -(s.wall or 0.0))[:TOP_ROWS]
    # Sampled peaks first: the exit (rusage) figure of a short task can reflect its parent.
    rows = [s for s in stats.values() if s.peak_rss is not None or s.exit_rss is not None]
    return sorted(rows, key=lambda s: (s.peak_rss is None, -(s.peak_rss or s.exit_rss or 0))
                  )[:TOP_ROWS]


def _name_cell(s: Stats) -> str:
    return (f'<td class="name">{esc(s.name)}</td>'
            f'<td><span class="tag {state_class(s.status)}">{esc(s.status.lower())}</span></td>')


def render_slowest(d: ReportData) -> str:
    rows = [
        f'<tr{attrs(data_activity=s.name, data_wall=round(s.wall or 0.0, 3))}>'
        f'<td class="num">{i}</td>{_name_cell(s)}<td class="num">{fmt_duration(s.wall)}</td>'
        f'<td class="num">{fmt_duration(s.total)}</td><td class="num">{s.attempts}</td>'
        f'<td class="num">{fmt_duration(s.cpu_time)}</td></tr>'
        for i, s in enumerate(_sorted(d.stats, "wall"), 1)]
    if not rows:
        return '<p class="note">No activity has run to completion yet.</p>'
    cols = [("#", "num"), ("activity", ""), ("state", ""), ("run time", "num"),
            ("incl. queue & retries", "num"), ("attempts", "num"), ("cpu time", "num")]
    return ('<p class="note">Run time is the final attempt\'s, start to end.</p>'
            + table(cols, rows, id="slowest-table", class_="data"))


def render_memory(d: ReportData) -> str:
    rows = [
        f'<tr{attrs(data_activity=s.name, data_peak_rss=s.peak_rss or s.exit_rss or 0)}'
        f'{attrs(data_peak_cpu=s.peak_cpu, data_rss_source=s.rss_source)}>'
        f'<td class="num">{i}</td>{_name_cell(s)}<td class="num">{fmt_bytes(s.peak_rss)}</td>'
        f'<td>{esc(s.rss_source or DASH)}</td><td class="num">{fmt_bytes(s.mean_rss)}</td>'
        f'<td class="num peak-cpu">{fmt_num(s.peak_cpu)}</td>'
        f'<td class="num">{fmt_num(s.mean_cpu)}</td>'
        f'<td class="num">{fmt_bytes(s.exit_rss)}</td><td class="num">{s.samples}</td></tr>'
        for i, s in enumerate(_sorted(d.stats, "rss"), 1)]
    if not rows:
        return '<p class="note">No memory figures were recorded.</p>'
    cols = [("#", "num"), ("activity", ""), ("state", ""), ("peak rss", "num"),
            ("peak from", ""), ("mean rss", "num"), ("peak cpu %", "num"),
            ("mean cpu %", "num"), ("kernel rss at exit", "num"), ("samples", "num")]
    return ('<p class="note">Peaks over all attempts. Peak rss is the kernel\'s figure at exit '
            '(<i>kernel</i>: exact) where the process that waits on the task can read it, else '
            '<i>sampled</i>: the tree\'s rss, or a process\'s high-water mark, at a sample '
            '(samples come 0.5, 1, 2, 4 s ... after a start, then every sampling interval). '
            'Peak cpu % is the busiest stretch between two samples (cpu time over wall '
            'time).</p>' + table(cols, rows, id="memory-table", class_="data"))


def _recovered(d: ReportData) -> int:
    """Failed attempts whose activity did not fail in the end (a later attempt finished)."""
    return sum(1 for b in d.bars if b.status == "FAILED" and d.status.get(b.activity) != "FAILED")


def _ran(b: Bar) -> float | None:
    return None if b.started is None or b.finished is None else b.finished - b.started


def render_attempts(d: ReportData) -> str:
    """Every attempt, one row each (the timeline draws quick ones on top of each other)."""
    rows = [
        f'<tr{attrs(data_activity=b.activity, data_attempt=b.number, data_outcome=b.status)}>'
        f'<td class="name">{esc(b.activity)}</td><td class="num">{b.number}</td>'
        f'<td><span class="tag {state_class(b.status)}">{esc(b.status.lower())}</span></td>'
        f'<td>{esc(b.reason or DASH)}</td>'
        f'<td class="num">{DASH if b.exit_code is None else b.exit_code}</td>'
        f'<td>{esc(b.node or DASH)}</td><td class="num">{fmt_time(b.started)}</td>'
        f'<td class="num">{fmt_duration(_ran(b))}</td>'
        f'<td class="message">{esc(b.message or "")}</td></tr>'
        for b in sorted(d.bars, key=lambda b: (b.submitted, b.activity, b.number))[:MAX_ATTEMPTS]]
    if not rows:
        return '<p class="note">No attempt was made yet.</p>'
    note = f"{plural(len(d.bars), 'attempt')}, in the order they were submitted"
    note += (f"; the first {MAX_ATTEMPTS} are listed." if len(d.bars) > MAX_ATTEMPTS else ".")
    cols = [("activity", ""), ("#", "num"), ("outcome", ""), ("reason", ""), ("exit", "num"),
            ("node", ""), ("started", "num"), ("ran", "num"), ("message", "")]
    return (f'<p class="note">{esc(note)}</p><div class="scroll files-box">'
            + table(cols, rows, id="attempts-table", class_="data", data_total=len(d.bars))
            + "</div>")


def render_failures(d: ReportData) -> str:
    if not d.failures:
        return f'<p class="note" data-count="{d.failed_attempts}">No attempt failed.</p>'
    more = d.failed_attempts - len(d.failures)
    note = (f"{plural(d.failed_attempts, 'failed attempt')}"
            + (f"; the first {MAX_FAILURES} are listed." if more > 0 else ".")
            + " Retried attempts are listed too.")
    items = []
    for e in d.failures:
        recovered = e.final_status not in (None, "FAILED")
        head = (f"{e.activity} #{e.attempt}: {e.reason or 'failed'}"
                + (f", exit code {e.exit_code}" if e.exit_code is not None else "")
                + (f": {e.message}" if e.message else "")
                + (" (recovered: a later attempt finished)" if recovered else ""))
        stdout = (f"<details><summary>stdout tail</summary><pre class=\"stdout\">"
                  f"{esc(e.stdout_tail)}</pre></details>" if e.stdout_tail else "")
        path = (f'<p class="path">stderr: <code>{esc(e.stderr_path)}</code></p>'
                if e.stderr_path else "")
        items.append(
            f'<article class="failure"{attrs(data_activity=e.activity, data_attempt=e.attempt)}'
            f'{attrs(data_exit_code=e.exit_code, data_reason=e.reason)}'
            f'{attrs(data_recovered=str(recovered).lower())}><h3>{esc(head)}</h3>'
            f'{path}<pre class="stderr">{esc(e.stderr_tail) or "(stderr was empty)"}</pre>'
            f"{stdout}</article>")
    return f'<p class="note" data-count="{d.failed_attempts}">{esc(note)}</p>{"".join(items)}'


def render_files(d: ReportData) -> str:
    roles = ", ".join(f"{n} {r} ({fmt_bytes(d.file_bytes.get(r, 0))})"
                      for r, n in sorted(d.file_roles.items()))
    shown = len(d.files)
    note = f"{plural(d.file_total, 'file record')}" + (f": {roles}." if roles else ".")
    if d.file_total > shown:
        note += (f" Showing the first {shown} (generated, then used, then pre-existing);"
                 f" the table is capped at {MAX_FILES} rows ('akoflow files' lists them all).")
    if any(f.ambiguous for f in d.files):
        note += (" A role marked ? is ambiguous: snapshots (used where syscalls could not be"
                 " traced) cannot see reads, nor tell apart tasks that ran at once in one"
                 " directory.")
    rows = [
        f'<tr{attrs(data_role=f.role, data_ambiguous="1" if f.ambiguous else None)}>'
        f'<td class="path">{esc(f.path)}</td>'
        f'<td class="num"{attrs(data_size=f.size)}>{fmt_bytes(f.size)}</td>'
        f'<td>{esc(f.role)}{"?" if f.ambiguous else ""}</td><td>{esc(f.observed)}</td>'
        f'<td class="name">{esc(f.activity)}</td>'
        f'<td class="num">{f.attempt}</td></tr>' for f in d.files]
    cols = [("path", ""), ("size", "num"), ("role", ""), ("seen by", ""), ("activity", ""),
            ("attempt", "num")]
    body = ('<div class="scroll files-box">' + table(
        cols, rows, id="files-table", class_="data", data_total=d.file_total,
        data_shown=shown) + "</div>") if rows else ""
    return f'<p class="note">{esc(note)}</p>{body}'

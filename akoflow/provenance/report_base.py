"""Small pieces every part of the HTML report shares: escaping, formatting, colours, axes.

The report is built as plain strings rather than through a template engine: it is mostly SVG
computed from numbers, and string building keeps rendering of a 600-activity workflow well
under a second. The price is that escaping is manual, so every user-controlled value goes
through `esc()` (text) or `attrs()` (attributes) — nothing is interpolated raw.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable
from datetime import datetime
from typing import Final

# Final activity / attempt states -> fill colours (also emitted as `.s-<STATE>` CSS classes,
# so SVG elements carry a short class instead of repeating the colour).
STATE_COLOURS: Final[dict[str, str]] = {
    "FINISHED": "#2e9e5b",
    "FAILED": "#d64545",
    "CANCELLED": "#8a8a8a",
    "SKIPPED": "#c4c4c4",
    "RUNNING": "#3a7bd5",
    "QUEUED": "#8fb3e8",
    "SUBMITTING": "#b9cff0",
    "READY": "#e0c341",
    "PENDING": "#e6e6e6",
}
STATE_ORDER: Final[tuple[str, ...]] = tuple(STATE_COLOURS)
DASH: Final = "\u2013"  # en dash: "no value" in tables, ranges in labels
TIMES: Final = "\u00d7"  # multiplication sign: "mProject x 64"
SERIES_COLOURS: Final[tuple[str, ...]] = (
    "#3a7bd5", "#e07b39", "#7a4fc9", "#2e9e5b", "#c9427a", "#1f9eaa",
)


def esc(value: object) -> str:
    """HTML-escape anything for element text (quotes too, so it is also attribute-safe)."""
    return html.escape(str(value), quote=True)


def attrs(**values: object) -> str:
    """` name="value"` pairs, escaped; `data_x` becomes `data-x`; None values are left out."""
    return "".join(
        f' {k.rstrip("_").replace("_", "-")}="{esc(v)}"' for k, v in values.items()
        if v is not None
    )


def state_class(state: str | None) -> str:
    """A CSS class for a state; unknown states fall back to PENDING's look, never raw text."""
    s = (state or "PENDING").upper()
    return f"s-{s if s in STATE_COLOURS else 'PENDING'}"


def state_css() -> str:
    return "".join(
        f".s-{s}{{fill:{c};background:{c}}}" for s, c in STATE_COLOURS.items()
    )


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return DASH
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - loop always returns


def fmt_duration(seconds: float | None) -> str:
    """`0.42s`, `12.3s`, `4m05s`, `2h03m`: short enough for a table cell or an axis tick."""
    if seconds is None:
        return DASH
    s = max(float(seconds), 0.0)
    if s < 10:
        return f"{s:.2f}s"
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def fmt_tick(seconds: float) -> str:
    """Axis labels: as short as possible (`0`, `1.5s`, `2m`, `1h30m`)."""
    if seconds == 0:
        return "0"
    if seconds < 60:
        return f"{seconds:g}s"
    if seconds < 3600:
        m, s = divmod(round(seconds), 60)
        return f"{m}m" if s == 0 else f"{m}m{s:02d}s"
    h, m = divmod(round(seconds) // 60, 60)
    return f"{h}h" if m == 0 else f"{h}h{m:02d}m"


def fmt_time(ts: float | None) -> str:
    """Local wall-clock time with its UTC offset (runs are read on the machine that ran them)."""
    if ts is None:
        return DASH
    return datetime.fromtimestamp(ts).astimezone().isoformat(sep=" ", timespec="seconds")


def fmt_num(value: float | None, digits: int = 1) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def nice_ticks(span: float, target: int = 8) -> list[float]:
    """Round tick positions from 0 to `span` (steps of 1, 2 or 5 times a power of ten)."""
    if span <= 0 or not math.isfinite(span):
        return [0.0]
    raw = span / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    count = int(span / step + 1e-9)
    return [round(i * step, 10) for i in range(count + 1)]


def table(columns: Iterable[tuple[str, str]], rows: Iterable[str], **table_attrs: object) -> str:
    """A `<table>` from (header text, css class) pairs and already-rendered `<tr>` rows."""
    head = "".join(f"<th{attrs(class_=cls or None)}>{esc(h)}</th>" for h, cls in columns)
    body = "".join(rows)
    return (f"<table{attrs(**table_attrs)}><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>")


def legend(states: Iterable[str]) -> str:
    items = "".join(
        f'<li><span class="sw {state_class(s)}"></span>{esc(s.lower())}</li>' for s in states
    )
    return f'<ul class="legend">{items}</ul>'


def plural(n: int, noun: str) -> str:
    """`1 activity`, `2 activities`, `1 attempt`, `3 attempts`."""
    if n == 1:
        return f"{n} {noun}"
    return f"{n} {noun[:-1]}ies" if noun.endswith("y") else f"{n} {noun}s"


def truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 1)] + "…"

"""Console output: aligned tables for people, JSON for scripts. Only the CLI prints."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import click

from akoflow.port.names import printable


def ts(value: float | None) -> str:
    if value is None:
        return "-"
    return dt.datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def iso(value: float | None) -> str | None:
    if value is None:
        return None
    return dt.datetime.fromtimestamp(value, tz=dt.timezone.utc).isoformat()


def epoch(value: str | None) -> float | None:
    """Seconds since the epoch from the ISO-8601 times that data carries (see iso)."""
    return None if value is None else dt.datetime.fromisoformat(value).timestamp()


def duration(start: float | None, end: float | None) -> str:
    if start is None:
        return "-"
    import time

    secs = (end or time.time()) - start
    if secs < 60:
        return f"{secs:.1f}s"
    if secs < 3600:
        return f"{int(secs // 60)}m{int(secs % 60):02d}s"
    return f"{int(secs // 3600)}h{int(secs % 3600 // 60):02d}m"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[("-" if c is None else printable(str(c))) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in cells:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(click.unstyle(c)))

    def pad(text: str, width: int) -> str:  # colour codes take no room on screen
        return text + " " * (width - len(click.unstyle(text)))

    click.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths)).rstrip())
    for r in cells:
        click.echo("  ".join(pad(c, w) for c, w in zip(r, widths)).rstrip())


def to_jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: to_jsonable(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "value") and hasattr(obj, "name"):  # enums
        return obj.value
    return obj


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(to_jsonable(obj), indent=2, default=str))


STATUS_COLORS = {
    "FINISHED": "green", "FAILED": "red", "CANCELLED": "yellow", "SKIPPED": "yellow",
    "RUNNING": "cyan", "QUEUED": "blue", "SUBMITTING": "blue",
}


def status_text(status: str) -> str:
    color = STATUS_COLORS.get(status)
    return click.style(status, fg=color) if color else status

"""Live progress line during `akoflow run`, and the summary printed at the end."""

from __future__ import annotations

import sys
import time

import click

from akoflow.cli import render
from akoflow.dispatch.types import CycleReport
from akoflow.manifest import Manifest


class ProgressLine:
    """Redraws one status line on a terminal; prints a line every few seconds otherwise."""

    def __init__(self, m: Manifest, wf_id: int) -> None:
        self.m = m
        self.wf_id = wf_id
        self.start = time.time()
        self.tty = sys.stderr.isatty()
        self.every = 0.25 if self.tty else 5.0
        self.last = 0.0
        self.drawn = False

    def __call__(self, report: CycleReport | None) -> None:
        now = time.time()
        if now - self.last < self.every:
            return
        self.last = now
        c = self.m.status_counts(self.wf_id)
        total = sum(c.values())
        running = c.get("RUNNING", 0)
        queued = c.get("QUEUED", 0) + c.get("SUBMITTING", 0)
        failed = c.get("FAILED", 0)
        text = (f"[{now - self.start:6.1f}s] {c.get('FINISHED', 0)}/{total} done, "
                f"{running} running, {queued} queued, {failed} failed")
        if c.get("SKIPPED"):
            text += f", {c['SKIPPED']} skipped"
        if report is None:
            text += " (another dispatcher is active; watching)"
        if self.tty:
            click.echo("\r\033[K" + text, nl=False, err=True)
            self.drawn = True
        else:
            click.echo(text, err=True)

    def close(self) -> None:
        if self.drawn:
            click.echo("\r\033[K", nl=False, err=True)


def print_summary(m: Manifest, wf_id: int, elapsed: float | None) -> None:
    """The end of a run: activities counted by their final state, failed attempts that a
    retry recovered listed apart from the failures that stand."""
    from akoflow import service
    from akoflow.cli.commands_inspect import failure_line

    wf = m.get_workflow(wf_id)
    if elapsed is None:
        elapsed = max(0.0, (wf.finished_at or time.time()) - (wf.started_at or wf.created_at))
    data = service.status_report(m, wf_id)
    parts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(data["counts"].items()))
    recovered = data["recovered"]
    if recovered:
        parts += (f" ({len(recovered)} failed attempt{'s' if len(recovered) > 1 else ''}"
                  " recovered by a retry)")
    click.echo(f"workflow {wf.id} ({wf.name}) {render.status_text(wf.status)} in "
               f"{elapsed:.2f}s: {parts}")
    shown: set[str] = set()
    for f in reversed(data["failures"]):  # the last failure of each activity that failed
        if f["activity"] in shown:
            continue
        shown.add(f["activity"])
        click.echo(f"  {render.status_text('FAILED')} {failure_line(f)}")
        for line in f["stderr_tail"].strip().splitlines()[-5:]:
            click.echo(f"    | {line}")
    if wf.status != "FINISHED":
        click.echo(f"  inspect: akoflow status {wf.id}; akoflow logs {wf.id}; "
                   f"retry: akoflow retry {wf.id}")

"""Declared files (`inputs:` / `outputs:` of an activity), checked where they are due.

Declarations are promises the dispatcher holds a task to, not the source of lineage (that
is observed): an input missing when the task is about to start fails the attempt with
`MISSING_INPUT` without running it; an output missing when it ended successfully fails it
with `MISSING_OUTPUT`. Each is a glob relative to the task's work directory; it holds when
it matches at least one existing path.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable


def first_missing(work_dir: str | os.PathLike[str], patterns: Iterable[str]) -> str | None:
    """The first pattern that matches nothing under `work_dir`, or None."""
    root = os.fspath(work_dir)
    for pattern in patterns:
        if not glob.glob(os.path.join(glob.escape(root), pattern), recursive=True):
            return pattern
    return None


def message(kind: str, pattern: str, work_dir: str | os.PathLike[str]) -> str:
    return f"declared {kind} {pattern!r} matches nothing in {os.fspath(work_dir)}"

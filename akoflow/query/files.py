"""The files attempts touched, and what a run wrote: stdout/stderr tails, recorded files."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path

from akoflow.manifest import Manifest, ManifestError
from akoflow.port.protocol import STDERR, STDOUT
from akoflow.query.common import FileRecord, WorkflowRef, opened, workflow_of


def files(wf: WorkflowRef, role: str | Sequence[str] | None = None,
          activity: str | None = None, *, manifest: Manifest | None = None
          ) -> list[FileRecord]:
    """Files each attempt saw: `generated`, `used` or `pre-existing` (one or several)."""
    roles = [role] if isinstance(role, str) else list(role) if role else None
    with opened(manifest) as m:
        rows = m.files(workflow_of(m, wf).id, roles, activity)
        return [FileRecord(r.activity, r.attempt, r.entry.path, r.entry.size, r.entry.mtime,
                           r.entry.role, r.entry.hash, r.entry.observed, r.entry.ambiguous,
                           base64.b64encode(r.entry.raw).decode() if r.entry.raw else None)
                for r in rows]


def output_tail(wf: WorkflowRef, activity: str, stream: str = "stdout",
                attempt: int | None = None, max_bytes: int = 64 * 1024, *,
                manifest: Manifest | None = None) -> tuple[int, str]:
    """(attempt number, the last `max_bytes` of its stdout or stderr so far): the live log
    of an activity, readable while it runs. (0, "") before any attempt started."""
    name = {"stdout": STDOUT, "stderr": STDERR}[stream]
    with opened(manifest) as m:
        w = workflow_of(m, wf)
        act = m.activity_named(w.id, activity)
        if act is None:
            raise ManifestError(f"workflow {w.id} has no activity {activity!r}")
        tries = [t for t in m.attempts(w.id, act.id) if attempt in (None, t.number)]
        if not tries:
            if attempt is not None:
                raise ManifestError(f"activity {activity!r} has no attempt {attempt}")
            return 0, ""
        t = tries[-1]
        try:
            with open(Path(t.attempt_dir) / name, "rb") as fh:
                fh.seek(0, 2)
                fh.seek(max(fh.tell() - max_bytes, 0))
                return t.number, fh.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return t.number, ""


def work_file(wf: WorkflowRef, path: str, *, manifest: Manifest | None = None) -> Path:
    """A file the workflow's provenance records (a used, generated or pre-existing file),
    resolved inside its work directory; ValueError for anything else. Only recorded files
    are served, so no path can reach the manifest, tokens or other users' data."""
    with opened(manifest) as m:
        w = workflow_of(m, wf)
        if path not in {r.entry.path for r in m.files(w.id)}:
            raise ValueError(f"workflow {w.id} records no file {path!r}")
        root = Path(w.work_dir).resolve()
        full = (root / path).resolve()
        db = Path(m.path).resolve()
        forbidden = {db, *(db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal"))}
        if not full.is_relative_to(root) or full in forbidden or not full.is_file():
            raise ValueError(f"{path!r} is not a regular file inside the work directory")
        return full

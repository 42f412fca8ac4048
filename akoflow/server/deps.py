"""Per-thread manifest handles and common lookups for the routes.

FastAPI runs plain `def` routes in a thread pool; a SQLite connection belongs to the thread
that opened it, so each worker thread opens the manifest once and keeps it. In WAL mode
(local disks) readers never block the dispatchers that write.
"""

from __future__ import annotations

import threading
from typing import Any

from akoflow import service
from akoflow.manifest import Manifest, WorkflowRecord
from akoflow.server.errors import ApiError

_local = threading.local()
# Page cache per connection: the dispatcher's 64 MB would be paid once per worker thread.
CACHE_KIB = 8192
THREADS = 8  # worker threads for routes: each holds one connection


def manifest() -> Manifest:
    m: Manifest | None = getattr(_local, "manifest", None)
    if m is None:
        m = Manifest(service.home() / "manifest.db", cache_kib=CACHE_KIB)
        _local.manifest = m
    return m


def workflow(m: Manifest, wf_id: int) -> WorkflowRecord:
    """The workflow, without its spec texts; 404 when there is none."""
    if wf_id < 1 or wf_id > 2**62:
        raise ApiError(404, f"no workflow with id {wf_id}")
    return m.get_workflow(wf_id, texts=False)


def one_of(value: str, allowed: tuple[str, ...] | list[str], what: str) -> str:
    if value not in allowed:
        raise ApiError(422, f"{what} {value!r} is not one of: {', '.join(allowed)}")
    return value


def records(objs: Any) -> list[dict[str, Any]]:
    """A list of records as JSON objects."""
    out: list[dict[str, Any]] = jsonable(list(objs))
    return out


def jsonable(obj: Any) -> Any:
    """Dataclass records (as `akoflow.query` returns them) as plain JSON values."""
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: jsonable(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj

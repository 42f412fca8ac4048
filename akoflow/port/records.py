"""What adapters, the worker and the core exchange about one attempt: its outcome, the
samples of its process tree, the files it touched. Plain records: the manifest stores them,
result.json carries them, and neither the worker nor an adapter needs the SQL layer to
make one."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class MetricSample:
    """One psutil sample of a task's whole process tree."""

    ts: float
    cpu_percent: float
    rss: int
    vms: int
    read_bytes: int
    write_bytes: int
    threads: int
    processes: int


@dataclass(frozen=True)
class FileEntry:
    """A file an attempt touched. role: used | generated | pre-existing | invalidated;
    observed: how it was learnt (trace | snapshot | cache); ambiguous: the attribution may
    be wrong (a snapshot cannot tell two concurrent tasks apart). `path` is text; when the
    name's bytes are not UTF-8, `raw` holds them and `path` shows them escaped (`\\xff`)."""

    path: str
    size: int | None
    mtime: float | None
    role: str
    hash: str | None = None
    observed: str = "snapshot"
    ambiguous: bool = False
    # Not in the attempt files' compact form (protocol.wire): JSON has no bytes.
    raw: bytes | None = field(default=None, metadata={"wire": False})

    @property
    def fs_path(self) -> str:
        """The name as the file system has it (undoes the escaping of non-UTF-8 bytes)."""
        return os.fsdecode(self.raw) if self.raw is not None else self.path


def text_path(path: str) -> tuple[str, bytes | None]:
    """(text, raw) of a path from the file system (os.fsdecode, surrogate-escaped): text that
    SQLite, JSON and terminals take, and the original bytes when it needed escaping."""
    try:
        path.encode("utf-8")
        return path, None
    except UnicodeEncodeError:
        raw = path.encode("utf-8", "surrogateescape") if _escaped_only(path) else \
            path.encode("utf-8", "surrogatepass")
        return raw.decode("utf-8", "backslashreplace"), raw


def _escaped_only(path: str) -> bool:
    return all(not 0xD800 <= ord(ch) <= 0xDFFF or 0xDC80 <= ord(ch) <= 0xDCFF for ch in path)


@dataclass
class AttemptOutcome:
    """What a worker reports about one attempt (result.json, or the in-process monitor)."""

    exit_code: int | None
    reason: str | None  # None on success; a Reason value otherwise
    started_at: float | None
    finished_at: float | None
    node: str | None = None
    cpu_time: float | None = None
    peak_rss: int | None = None
    image_id: str | None = None
    message: str | None = None
    stdout_path: str | None = None
    stderr_path: str | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    metrics: list[MetricSample] = field(default_factory=list)
    files: list[FileEntry] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.reason is None and self.exit_code == 0

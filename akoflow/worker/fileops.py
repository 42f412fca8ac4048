"""An attempt's traced file operations as lineage rows (used / generated / invalidated).

Semantics (README, "Provenance semantics"):
- *used*: the task opened for reading a file that existed before it did so (its first
  operation on the path was a read);
- *generated*: created or modified by the task (opened for writing, truncated, linked,
  touched, or the new name of a rename) and still there at its end;
- *invalidated*: it existed before the task and the task removed it (unlink, or the old
  name of a rename): PROV's wasInvalidatedBy;
- a file the task created and removed itself (a temporary file) leaves no row.

Only paths inside the attempt's data roots count (its work directory, `mountPath`,
`volumes`, a site's `data_roots`): a task also opens its libraries, its locale and /proc.
Inside a container a path is the container's; `mounts` maps it back to the host's.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from akoflow.port import FileEntry

Mount = tuple[str, str]  # (path inside the container, path on the host)


class Roots:
    """Where an attempt's data lives, and how its paths are written in rows: relative to
    the work directory when inside it, absolute otherwise."""

    def __init__(self, work_dir: str, extra: Iterable[str] = (),
                 mounts: Sequence[Mount] = ()) -> None:
        self.work = os.path.realpath(work_dir)
        dirs = {self.work, *(os.path.realpath(d) for d in extra if d)}
        self.dirs = tuple(sorted(dirs, key=len, reverse=True))
        self._dirs: dict[str, str] = {}  # directory -> its real path (this attempt's rows)
        # the longest container prefix first: `/data/sub` before `/data`
        self.mounts = tuple(sorted(((os.path.normpath(c), os.path.realpath(h))
                                    for c, h in mounts), key=lambda m: -len(m[0])))

    @classmethod
    def of(cls, work_dir: str | os.PathLike[str], observe: Mapping[str, Any]) -> Roots:
        """From a launch's `observe` settings (port/protocol.observation)."""
        return cls(str(work_dir), [str(r) for r in observe.get("roots") or []],
                   [(str(c), str(h)) for c, h in observe.get("mounts") or []])

    def host(self, path: str) -> str:
        for inside, outside in self.mounts:
            if path == inside or path.startswith(inside + "/"):
                return outside + path[len(inside):]
        return path

    def label(self, path: str) -> str | None:
        """The row's path for `path` (already a host path), or None outside the roots."""
        head, tail = os.path.split(path)
        real_head = self._dirs.get(head)
        if real_head is None:  # symlinks in the directory part resolved, once per directory
            real_head = self._dirs[head] = os.path.realpath(head)
        real = os.path.join(real_head, tail)
        for d in self.dirs:
            if real == d:
                return None  # the directory itself
            if real.startswith(d + "/"):
                return real[len(self.work) + 1:] if d == self.work else real
        return None


def summarize(ops: Sequence[tuple[str, str]], roots: Roots) -> list[FileEntry]:
    """Rows for one attempt from its operations, in order of first appearance."""
    seq: dict[str, list[str]] = {}
    absolute: dict[str, str] = {}
    for kind, path in ops:
        host = roots.host(path)
        label = roots.label(host)
        if label is None:
            continue
        seq.setdefault(label, []).append(kind)
        absolute.setdefault(label, host)
    rows: list[FileEntry] = []
    for label, kinds in seq.items():
        first, last = kinds[0], kinds[-1]
        read_first = first in ("R", "RW")
        existed = read_first or first == "D"
        wrote = any(k in ("W", "RW") for k in kinds)
        size, mtime = _stat(absolute[label])
        if size is None and mtime is None and last != "D" and not read_first:
            continue  # never a regular file we could see (a directory, a device)
        if read_first:
            rows.append(FileEntry(label, size, mtime, "used", observed="trace"))
        if last == "D":
            if existed:
                rows.append(FileEntry(label, None, None, "invalidated", observed="trace"))
        elif wrote:
            rows.append(FileEntry(label, size, mtime, "generated", observed="trace"))
    return rows


def _stat(path: str) -> tuple[int | None, float | None]:
    try:
        st = os.stat(path)
    except OSError:
        return None, None
    if not stat.S_ISREG(st.st_mode):
        return None, None
    return st.st_size, st.st_mtime

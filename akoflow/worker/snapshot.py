"""File snapshots of a task's working directory, before and after it runs."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import replace
from pathlib import Path

from akoflow.port import FileEntry

log = logging.getLogger(__name__)
Snapshot = dict[str, tuple[int, float]]  # relative path -> (size, mtime)
DEFAULT_LIMIT = 100_000


def take(root: Path, limit: int = DEFAULT_LIMIT) -> Snapshot:
    """(size, mtime) of every regular file under `root`, up to `limit` entries.

    Uses scandir's cached stat results: one system call per file, no hashing.
    """
    out: Snapshot = {}
    stack = [str(root)]
    base = len(str(root)) + 1
    while stack:
        current = stack.pop()
        try:
            it = os.scandir(current)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        with it:
            for entry in it:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        out[entry.path[base:]] = (st.st_size, st.st_mtime)
                except OSError:
                    continue
                if len(out) >= limit:
                    log.warning("snapshot of %s stopped at %d files", root, limit)
                    return out
    return out


def diff(before: Snapshot, after: Snapshot) -> tuple[list[FileEntry], list[FileEntry]]:
    """(generated, present): new or changed files, and files there before and unchanged.

    The dispatcher later sorts `present` into `used` (made by an upstream activity) and
    `pre-existing`; the worker cannot know the workflow's lineage.
    """
    generated: list[FileEntry] = []
    present: list[FileEntry] = []
    for path, (size, mtime) in after.items():
        old = before.get(path)
        if old is None or old != (size, mtime):
            generated.append(FileEntry(path, size, mtime, "generated"))
        else:
            present.append(FileEntry(path, size, mtime, "present"))
    return generated, present


def with_hashes(root: Path, entries: list[FileEntry], max_bytes: int) -> list[FileEntry]:
    """sha256 of files up to `max_bytes` (content hashes are opt-in: they cost I/O)."""
    out = []
    for e in entries:
        h = None
        if e.size is not None and e.size <= max_bytes:
            try:
                digest = hashlib.sha256()
                with open(root / e.path, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        digest.update(chunk)
                h = "sha256:" + digest.hexdigest()
            except OSError:
                h = None
        out.append(replace(e, hash=h))
    return out

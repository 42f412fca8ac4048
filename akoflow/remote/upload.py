"""Sending files to the cluster's content-addressed store: hash here, ask which blobs are
missing there, send only those, from where a broken upload stopped. An unchanged input
directory costs one round trip and no file content."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from akoflow.remote.agent import CHUNK
from akoflow.remote.client import Session
from akoflow.remote.config import RemoteError


@dataclass(frozen=True)
class Blob:
    rel: str  # where it goes, relative to the work directory (or a wheel's file name)
    path: Path  # where it is here
    digest: str
    size: int
    mode: int


class HashCache:
    """sha256 of local files by (path, size, mtime, inode), kept between commands, so a
    second upload of 1,000 unchanged files reads none of them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data: dict[str, list[object]] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.data = {}
        self.changed = False

    def digest(self, path: Path, st: os.stat_result) -> str:
        key = str(path)
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        hit = self.data.get(key)
        if hit is not None and hit[:3] == stamp:
            return str(hit[3])
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(CHUNK), b""):
                h.update(block)
        self.data[key] = [*stamp, h.hexdigest()]
        self.changed = True
        return h.hexdigest()

    def save(self) -> None:
        if not self.changed:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(self.data))
        tmp.replace(self.path)


def collect(paths: Iterable[tuple[str, Path]], cache: HashCache) -> list[Blob]:
    """Blobs for (relative destination, local file or directory) pairs, directories
    walked (symlinks followed), each file hashed once."""
    out: list[Blob] = []
    for rel, path in paths:
        if not path.exists():
            raise RemoteError(f"cannot upload {path}: no such file or directory")
        if path.is_dir():
            for root, dirs, names in os.walk(path, followlinks=True):
                dirs.sort()
                for name in sorted(names):
                    full = Path(root) / name
                    sub = full.relative_to(path).as_posix()
                    out.append(_blob(f"{rel}/{sub}" if rel else sub, full, cache))
        else:
            out.append(_blob(rel, path, cache))
    return out


def _blob(rel: str, path: Path, cache: HashCache) -> Blob:
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise RemoteError(f"cannot upload {path}: not a regular file")
    return Blob(rel, path, cache.digest(path, st), st.st_size, stat.S_IMODE(st.st_mode))


def upload(session: Session, blobs: list[Blob]) -> int:
    """Send what the cluster lacks; the payload bytes sent."""
    unique = {b.digest: b for b in blobs}
    missing = session.request("have", {"blobs": [[d, b.size] for d, b in unique.items()]})
    before = session.channel.sent
    for digest, offset in missing["missing"]:
        blob = unique[digest]
        _send_blob(session, blob, int(offset))
    session.request("flush")
    return session.channel.sent - before


def _send_blob(session: Session, blob: Blob, offset: int) -> None:
    if offset > blob.size:
        offset = 0
    with open(blob.path, "rb") as fh:
        fh.seek(offset)
        pos = offset
        while True:
            data = fh.read(CHUNK)
            if not data and pos > offset:
                break
            try:
                session.channel.send({"op": "put", "hash": blob.digest, "offset": pos,
                                      "size": blob.size}, data, flush=False)
            except (OSError, EOFError, ValueError):
                raise session.lost("during the upload") from None
            pos += len(data)
            if not data:
                break

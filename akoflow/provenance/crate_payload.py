"""What goes inside the RO-Crate zip besides its metadata, and the zip itself.

Data files are copied in under `data/` up to a size cap (one file, and all of them together);
what is left out is still described, as a contextual entity saying why and where it was, so
a crate unzipped anywhere resolves every file it lists. stdout/stderr are capped too: a long
log keeps its head and its end with a marker line between them, read with two seeks, so a
67 MB log costs the same as a 1 MB one.

The zip is written here with `zipfile` rather than by `rocrate`'s writer, which streams
through a memory buffer in 8 KiB reads and took 34 s for one 67 MB log.
"""

from __future__ import annotations

import os
import socket
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Size caps of a crate (bytes); `akoflow crate` takes each as an option."""

    max_file_bytes: int = 64 * MiB  # a data file larger than this is left out
    max_data_bytes: int = 256 * MiB  # data files in all: the rest is left out, in path order
    max_log_bytes: int = 1 * MiB  # of each stdout/stderr: its head and end are kept


@dataclass(frozen=True)
class Member:
    """One file of the zip: copied from `source` (its first `head` and last `tail` bytes
    with `marker` between them when cut), or `data` as given."""

    arcname: str
    source: Path | None = None
    data: bytes | None = None
    head: int = -1  # -1: the whole file
    tail: int = 0
    marker: bytes = b""

    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        if self.head < 0:
            assert self.source is not None
            return self.source.stat().st_size
        return self.head + len(self.marker) + self.tail


@dataclass
class LeftOut:
    path: str
    size: int | None
    why: str


@dataclass
class Payload:
    limits: Limits = field(default_factory=Limits)
    members: list[Member] = field(default_factory=list)
    left_out: list[LeftOut] = field(default_factory=list)
    data_bytes: int = 0

    def add_bytes(self, arcname: str, data: bytes) -> Member:
        m = Member(arcname, data=data)
        self.members.append(m)
        return m

    def add_data_file(self, path: str, full: Path) -> tuple[Member | None, LeftOut | None]:
        """A file of the work directory, copied in when it exists and fits the caps."""
        try:
            size = full.stat().st_size if full.is_file() else None
        except OSError:
            size = None
        why = None
        if size is None:
            why = "no longer on disk when the crate was made"
        elif size > self.limits.max_file_bytes:
            why = f"larger than the {self.limits.max_file_bytes:,}-byte cap per file"
        elif self.data_bytes + size > self.limits.max_data_bytes:
            why = f"data files would pass the {self.limits.max_data_bytes:,}-byte cap"
        if why is not None:
            gone = LeftOut(path, size, why)
            self.left_out.append(gone)
            return None, gone
        assert size is not None
        self.data_bytes += size
        m = Member(data_arcname(path), source=full)
        self.members.append(m)
        return m, None

    def add_log(self, arcname: str, source: Path) -> tuple[Member, int]:
        """A stdout/stderr file, cut to its head and end past `max_log_bytes`; returns the
        member and the file's full size."""
        size = source.stat().st_size
        cap = self.limits.max_log_bytes
        if size <= cap:
            m = Member(arcname, source=source)
        else:
            head = cap // 4
            tail = cap - head
            marker = (f"\n[akoflow: {size - cap:,} of {size:,} bytes cut here; the whole log "
                      f"is {source} on {socket.gethostname()}]\n").encode()
            m = Member(arcname, source=source, head=head, tail=tail, marker=marker)
        self.members.append(m)
        return m, size


def data_arcname(path: str) -> str:
    """Where a work-directory file goes in the crate (absolute paths keep their structure)."""
    return "data/" + (path.lstrip("/") if path.startswith("/") else path)


def _chunks(m: Member) -> Iterator[bytes]:
    if m.data is not None:
        yield m.data
        return
    assert m.source is not None
    with open(m.source, "rb") as fh:
        if m.head < 0:
            while chunk := fh.read(MiB):
                yield chunk
            return
        yield fh.read(m.head)
        yield m.marker
        fh.seek(-m.tail, os.SEEK_END)
        yield fh.read(m.tail)


def write_zip(out: Path, metadata: bytes, members: list[Member]) -> Path:
    """The crate as a zip at `out`, written to a temporary file and renamed (a reader never
    sees half a crate). Deflate level 1: logs and text data still shrink several times, and
    a big payload is not held up by compression."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
            z.writestr("ro-crate-metadata.json", metadata)
            for m in members:
                with z.open(m.arcname, "w", force_zip64=True) as dst:
                    for chunk in _chunks(m):
                        dst.write(chunk)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out

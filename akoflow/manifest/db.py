"""Connection handling for the shared manifest: pragmas, migrations, short transactions."""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from akoflow.manifest.schema import MIGRATIONS, migrate, schema_version
from akoflow.port.home import akoflow_home

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_BUSY_TIMEOUT_MS = 30_000


class ManifestError(Exception):
    """A manifest lookup the user asked for failed (unknown id, bad state)."""


NETWORK_FS = frozenset({
    "nfs", "nfs4", "lustre", "gpfs", "beegfs", "cifs", "smb3", "smbfs", "glusterfs",
    "fuse.glusterfs", "ceph", "fuse.ceph", "cephfs", "panfs", "fuse.sshfs", "9p", "afs",
    "fuse.beegfs", "wekafs", "fuse.juicefs",
})


def filesystem_type(path: Path) -> str:
    """The type of the file system holding `path` (longest mount point in /proc/mounts)."""
    target = str(path.resolve())
    best, kind = "", "unknown"
    try:
        with open("/proc/mounts") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mount = parts[1].replace("\\040", " ")
                inside = target == mount or target.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best):
                    best, kind = mount, parts[2]
    except OSError:
        pass
    return kind


def default_journal_mode(path: Path) -> str:
    """WAL on a local disk; a rollback journal (PERSIST) on network and parallel file
    systems, where WAL's shared-memory index is unsafe."""
    return "PERSIST" if filesystem_type(path.parent) in NETWORK_FS else "WAL"


class ManifestBase:
    """One SQLite connection in autocommit mode; writes go through `transaction()`.

    Journal mode: WAL when the manifest is on a local disk (commits need no fsync, readers
    never block the dispatcher); PERSIST, a rollback journal that is not re-created for
    every transaction, on NFS/Lustre/GPFS, where WAL is unsafe. `AKOFLOW_JOURNAL_MODE`
    overrides. `synchronous=NORMAL` keeps a process crash (kill -9) safe; only a power loss
    on the machine holding the file could lose the last transactions.
    """

    def __init__(self, path: str | Path, *, journal_mode: str | None = None,
                 cache_kib: int = 65536) -> None:
        self.path = Path(path)
        self.readonly = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(
                str(self.path), isolation_level=None, timeout=DEFAULT_BUSY_TIMEOUT_MS / 1000
            )
            mode = journal_mode or os.environ.get("AKOFLOW_JOURNAL_MODE")
            self.conn.execute(f"PRAGMA busy_timeout = {DEFAULT_BUSY_TIMEOUT_MS}")
            self._set_journal_mode(mode)
            self.conn.execute(
                f"PRAGMA synchronous = {os.environ.get('AKOFLOW_SYNC', 'NORMAL')}")
            self.conn.execute("PRAGMA foreign_keys = OFF")
            self.conn.execute(f"PRAGMA cache_size = -{int(cache_kib)}")
            _retry_locked(lambda: migrate(self.conn))
        except (OSError, sqlite3.OperationalError) as exc:
            if not (self.path.exists() and _read_only_problem(exc)):
                raise
            self._open_read_only()  # a read-only home: reading commands still work
        self._depth = 0

    def _open_read_only(self) -> None:
        """Open the manifest for reading where nothing may be written (a read-only file
        system or home). A WAL database normally needs its -shm file written even to read;
        `immutable` reads the file as it is, which is right when nobody can write it."""
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        if (os.access(self.path.parent, os.W_OK) or
                Path(f"{self.path}-shm").exists()) and _wal_ok(self.path):
            conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        else:
            conn = sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None)
        version = schema_version(conn)
        if version < len(MIGRATIONS):
            conn.close()
            raise ManifestError(f"manifest {self.path} is read-only and older than this "
                                "akoflow: open it once where it can be written to upgrade it")
        self.conn = conn
        self.readonly = True

    def _set_journal_mode(self, mode: str | None) -> None:
        """Switching the journal mode needs the database to itself for an instant, and
        SQLite reports "locked" at once rather than waiting: retry while other processes
        (a `list`, a second dispatcher) have it open."""

        def switch() -> None:
            current = str(self.conn.execute("PRAGMA journal_mode").fetchone()[0]).upper()
            # WAL is a property of the file: once chosen, every process keeps it.
            wanted = mode or ("WAL" if current == "WAL" else default_journal_mode(self.path))
            if wanted.upper() != current:
                self.conn.execute(f"PRAGMA journal_mode = {_checked_mode(wanted)}")

        try:
            _retry_locked(switch)
        except sqlite3.OperationalError as exc:  # keep the file's mode; it still works
            # info, not warning: if the file cannot be used at all, the next statement says
            # so in one line of its own (read-only, full disk)
            log.info("could not set the manifest's journal mode: %s", exc)

    @classmethod
    def open_default(cls: type[T]) -> T:
        return cls(akoflow_home() / "manifest.db")  # type: ignore[call-arg]

    def close(self) -> None:
        self.conn.close()

    def instance_id(self) -> str:
        """This manifest's random id (8 hex digits), fixed at creation."""
        row = self.conn.execute("SELECT value FROM meta WHERE key='instance'").fetchone()
        return str(row[0]) if row else "0"

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE); nested calls join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield self.conn
            finally:
                self._depth -= 1
            return
        self._begin()
        self._depth = 1
        try:
            yield self.conn
        except BaseException:
            self._depth = 0
            self.conn.execute("ROLLBACK")
            raise
        self._depth = 0
        self.conn.execute("COMMIT")

    def _begin(self) -> None:
        # busy_timeout covers most contention; loop for the rare "database is locked"
        # that BEGIN IMMEDIATE raises when another writer holds the lock past it.
        for delay in (0.05, 0.1, 0.2, 0.5, 1.0, 2.0):
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                log.debug("manifest busy, retrying in %.2fs", delay)
                time.sleep(delay)
        self.conn.execute("BEGIN IMMEDIATE")

    def _rows(self, cls: type[T], sql: str, params: Any = ()) -> list[T]:
        """Rows as records, each column given to the field of its name (`select_list`)."""
        return [cls(**row) for row in self._dicts(sql, params)]

    def _dicts(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column name."""
        cur = self.conn.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur]

    def _one(self, cls: type[T], sql: str, params: Any = ()) -> T | None:
        cur = self.conn.execute(sql, params)
        row = cur.fetchone()
        return None if row is None else cls(**{d[0]: v for d, v in zip(cur.description, row)})


def select_list(record: type, table: str = "", exprs: Mapping[str, str] | None = None) -> str:
    """The SELECT list of a record: one column per dataclass field, named as the field
    (`exprs` gives a field another column or an expression, `AS` its name), so rows become
    records by name and one list per record is all there is to keep."""
    prefix, exprs = (f"{table}." if table else ""), exprs or {}
    return ", ".join(f"{exprs[f.name]} AS {f.name}" if f.name in exprs else f"{prefix}{f.name}"
                     for f in fields(record))


def _read_only_problem(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
    text = str(exc).lower()
    return "readonly" in text or "read-only" in text or "unable to open" in text


def _wal_ok(path: Path) -> bool:
    """A plain read-only connection works unless the file is in WAL mode without its -shm."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(20)
    except OSError:
        return False
    return len(header) < 20 or header[18:20] != b"\x02\x02"


def _checked_mode(mode: str) -> str:
    mode = mode.upper()
    if mode not in {"DELETE", "WAL", "TRUNCATE", "PERSIST", "MEMORY"}:
        raise ManifestError(f"unsupported journal mode {mode!r}")
    return mode


def _retry_locked(action: Callable[[], None], attempts: int = 12) -> None:
    """Run `action`, retrying with backoff while SQLite says the database is locked."""
    delay = 0.02
    for attempt in range(attempts):
        try:
            action()
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or attempt == attempts - 1:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

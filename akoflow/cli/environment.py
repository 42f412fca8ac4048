"""Problems of the machine, not of akoflow: one line that names the path and what to do.

A full disk, an unreadable or corrupt manifest, a read-only home or a path too long are the
user's to fix; they must never look like a bug (`internal error`, exit 70).
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

_HINTS = {
    errno.ENOSPC: "no space left on the device: free some space there, then `akoflow run "
                  "--resume ID` or `akoflow retry ID` carries on where it stopped",
    errno.EDQUOT: "disk quota exceeded: free some space or ask for more quota",
    errno.EROFS: "read-only file system: set AKOFLOW_HOME to a writable directory (reading "
                 "commands work on a read-only home)",
    errno.EACCES: "permission denied: check its owner and mode, or set AKOFLOW_HOME to a "
                  "directory you can write",
    errno.EPERM: "operation not permitted: check its owner and mode",
    errno.ENAMETOOLONG: "path too long: use a shorter AKOFLOW_HOME or workflow directory",
    errno.ENOTDIR: "a part of this path is a file, not a directory: move that file away",
    errno.EEXIST: "it exists and is not what akoflow expects there (a file where a "
                  "directory belongs?): move it away",
    errno.EISDIR: "it is a directory where akoflow expects a file: move it away",
    errno.EMFILE: "too many open files: raise `ulimit -n`",
}


SQLITE_MAX_PATH = 512  # SQLite's default SQLITE_MAX_PATHNAME


def describe_os_error(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else ""
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    hint = _HINTS.get(exc.errno or 0) or (exc.strerror or str(exc))
    return f"{where}: {hint}" if where else hint


def describe_sqlite_error(exc: sqlite3.Error, manifest: Path) -> str:
    text = str(exc).lower()
    if "unable to open" in text and len(str(manifest)) > SQLITE_MAX_PATH:
        return (f"manifest {manifest}: path too long for SQLite (over {SQLITE_MAX_PATH} "
                "characters): use a shorter AKOFLOW_HOME")
    if "disk is full" in text or "disk i/o" in text:
        why = "cannot write (disk full or I/O error): free some space on that device"
    elif "not a database" in text or "malformed" in text:
        why = ("is not a readable manifest (corrupt or not a database): move it away to start "
               "a new one, or put back a backup")
    elif "readonly" in text or "read-only" in text:
        why = "is read-only here: set AKOFLOW_HOME to a writable directory"
    elif "unable to open" in text:
        why = ("cannot be opened: check that its directory exists and that you may read and "
               "write it, or set AKOFLOW_HOME")
    elif "locked" in text or "busy" in text:
        why = "stayed locked by another process for too long: try again"
    else:
        why = f"failed: {exc}"
    return f"manifest {manifest}: {why}"

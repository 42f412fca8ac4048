"""The per-workflow dispatch lock: at most one dispatcher acts on a workflow at a time."""

from __future__ import annotations

import fcntl
import math
import os
import time
from pathlib import Path


class DispatchLock:
    """A non-blocking `flock` on `$AKOFLOW_HOME/locks/workflow-<id>.lock`.

    The kernel drops it when the holder dies, however it dies, so a killed dispatcher never
    leaves a stale lock behind; a lock object that is dropped without `release()` lets go
    when it is collected. On local file systems two opens exclude each other even within one
    process (a flock belongs to the open file); on NFS, where Linux emulates flock with
    per-process POSIX locks, only other processes are excluded, which is all akoflow needs
    (one dispatcher per process). Not re-entrant: acquiring a held lock is a no-op, and one
    `release()` lets it go.
    """

    def __init__(self, home: Path, wf_id: int) -> None:
        locks = home / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        self._path = str(locks / f"workflow-{wf_id}.lock")
        self._fd: int | None = None

    def acquire(self, timeout: float = 0.0) -> bool:
        """Take the lock, waiting up to `timeout` seconds (forever if negative); False if
        another holder keeps it. A file system without locks raises OSError."""
        if self._fd is not None:
            return True
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = math.inf if timeout < 0 else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
                continue
            except OSError:
                os.close(fd)
                raise
            self._fd = fd
            return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the only descriptor of the open file drops the lock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:  # interpreter shutdown: the process exit drops it anyway
            pass

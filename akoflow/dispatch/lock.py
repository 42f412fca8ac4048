"""The per-workflow dispatch lock: at most one dispatcher acts on a workflow at a time."""

from __future__ import annotations

from pathlib import Path

from filelock import FileLock, Timeout


class DispatchLock:
    """A non-blocking file lock under `$AKOFLOW_HOME/locks/`."""

    def __init__(self, home: Path, wf_id: int) -> None:
        locks = home / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(locks / f"workflow-{wf_id}.lock"))

    def acquire(self, timeout: float = 0.0) -> bool:
        try:
            self._lock.acquire(timeout=timeout)
        except Timeout:
            return False
        return True

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release()

    @property
    def held(self) -> bool:
        return bool(self._lock.is_locked)

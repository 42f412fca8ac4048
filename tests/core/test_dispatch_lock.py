"""The dispatch lock: one holder at a time, released by death as well as by release()."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from akoflow.dispatch.lock import DispatchLock


def test_one_holder_at_a_time_even_within_a_process(tmp_path: Path) -> None:
    first, second = DispatchLock(tmp_path, 7), DispatchLock(tmp_path, 7)
    assert first.acquire() and first.held
    assert not second.acquire(timeout=0.1) and not second.held
    assert DispatchLock(tmp_path, 8).acquire()  # another workflow's lock is independent
    first.release()
    assert second.acquire()


def test_a_dropped_lock_object_lets_go(tmp_path: Path) -> None:
    held = DispatchLock(tmp_path, 3)
    assert held.acquire()
    del held  # e.g. a dispatcher that raised before its `finally`
    assert DispatchLock(tmp_path, 3).acquire()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    code = ("import sys, time; from pathlib import Path; from akoflow.dispatch.lock import "
            "DispatchLock; lock = DispatchLock(Path(sys.argv[1]), 1); assert lock.acquire(); "
            "print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        lock = DispatchLock(tmp_path, 1)
        assert not lock.acquire()
        proc.kill()
        proc.wait()
        assert lock.acquire(timeout=5)
    finally:
        proc.kill()
        proc.wait()

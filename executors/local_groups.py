"""Attempt claims and process groups for the local executor: who owns an attempt, and
stopping a task with everything it started (SIGTERM to its group, SIGKILL after a grace)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil

from akoflow.port import protocol
from akoflow.worker.monitor import TaskProcess

CANCEL_CLAIM = b"cancelled\n143\n"  # no pid: no task ever ran under this claim


def claim_for_cancel(adir: Path) -> int | None:
    """Write the attempt's pid file as a cancelled claim (exit code 143) unless a task has
    claimed it already; then that task's pid."""
    try:
        fd = os.open(adir / protocol.PID, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return claim_owner(adir)
    except OSError:
        return None
    try:
        os.write(fd, CANCEL_CLAIM)
    finally:
        os.close(fd)
    return None


def claim_owner(adir: Path, patience: float = 1.0) -> int | None:
    """The pid that claimed the attempt (None for a cancel's claim); the claim file may be
    caught mid-write."""
    end = time.time() + patience
    while True:
        try:
            text = (adir / protocol.PID).read_bytes()
        except OSError:
            text = b""
        first, newline, _ = text.partition(b"\n")
        if newline and first == CANCEL_CLAIM.partition(b"\n")[0]:
            return None
        if newline and first.isdigit():
            return int(first)
        if time.time() >= end:
            return None
        time.sleep(0.01)


def wait_then_kill(tasks: list[TaskProcess], grace: float = 2.0) -> None:
    """SIGTERM was sent; give process groups `grace` seconds, then SIGKILL what is left."""
    end = time.time() + grace
    pending = list(tasks)
    while pending and time.time() < end:
        pending = [t for t in pending if group_alive(t.pid)]
        if pending:
            for t in pending:
                if t.child:
                    try:
                        os.waitpid(t.pid, os.WNOHANG)
                    except ChildProcessError:
                        pass
            time.sleep(0.05)
    for t in pending:
        t.kill(9)
    for t in tasks:
        t.stop_leftovers()  # what left the group (a cgroup reaches it)


def group_alive(pgid: int) -> bool:
    if pgid <= 0:  # never started (killpg(0) would mean our own group)
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return False
